// Counter-based random fills that reproduce the CPU backend bit for bit (uniform,
// bernoulli) or to f32 rounding (normal). `bits` mirrors plies_core::rng::bits.
//   extra(0), extra(1): the key's low and high words.
// uniform: the CPU computes lo + (hi - lo) * u in f64 and rounds to f32, where
// u = (2 * (bits >> 8) + 1) / 2^25. Doing that in f32 would differ in the last bit (often:
// half of the values of uniform(0, 1) sit exactly between two f32s), so it is redone here
// in integer arithmetic: the f64 product, its rounding, the f64 sum, its rounding, and the
// final rounding to f32, each round-to-nearest-even. The tail holds lo and A = hi - lo as
// [sign, mantissa low, mantissa high, exponent] (value = mantissa * 2^exponent).
// bernoulli: 1 when 2 * (bits >> 8) + 1 < extra(2) (the host's exact threshold for p).
// normal: Box-Muller on the pair (2i, 2i + 1), with scalar(0) = mean, scalar(1) = std.

@group(0) @binding(1) var<storage, read_write> out: array<f32>;

fn lowbias32(v: u32) -> u32 {
    var x = v;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    return x ^ (x >> 16u);
}

fn bits(i: u32) -> u32 {
    return lowbias32(lowbias32(i + extra(0u)) ^ extra(1u));
}

// === 128-bit unsigned integers as four u32 limbs, least significant first ===

fn limbs(v: vec4<u32>) -> array<u32, 4> {
    return array<u32, 4>(v.x, v.y, v.z, v.w);
}

fn shl(v: vec4<u32>, n: u32) -> vec4<u32> {
    var a = limbs(v);
    var o = array<u32, 4>(0u, 0u, 0u, 0u);
    let k = i32(n / 32u);
    let r = n % 32u;
    for (var i = 3; i >= 0; i = i - 1) {
        let s = i - k;
        if (s >= 0) {
            var w = a[s] << r;
            if (r != 0u && s >= 1) {
                w = w | (a[s - 1] >> (32u - r));
            }
            o[i] = w;
        }
    }
    return vec4<u32>(o[0], o[1], o[2], o[3]);
}

fn shr(v: vec4<u32>, n: u32) -> vec4<u32> {
    var a = limbs(v);
    var o = array<u32, 4>(0u, 0u, 0u, 0u);
    let k = i32(n / 32u);
    let r = n % 32u;
    for (var i = 0; i < 4; i = i + 1) {
        let s = i + k;
        if (s <= 3) {
            var w = a[s] >> r;
            if (r != 0u && s <= 2) {
                w = w | (a[s + 1] << (32u - r));
            }
            o[i] = w;
        }
    }
    return vec4<u32>(o[0], o[1], o[2], o[3]);
}

fn bit(v: vec4<u32>, n: u32) -> bool {
    var a = limbs(v);
    return ((a[n / 32u] >> (n % 32u)) & 1u) == 1u;
}

// Any of the bits below position n set?
fn low_nonzero(v: vec4<u32>, n: u32) -> bool {
    var a = limbs(v);
    let k = n / 32u;
    for (var i = 0u; i < k; i = i + 1u) {
        if (a[i] != 0u) {
            return true;
        }
    }
    let r = n % 32u;
    return r != 0u && (a[k] & ((1u << r) - 1u)) != 0u;
}

fn bitlen(v: vec4<u32>) -> u32 {
    var a = limbs(v);
    for (var i = 3; i >= 0; i = i - 1) {
        if (a[i] != 0u) {
            return u32(i) * 32u + 32u - countLeadingZeros(a[i]);
        }
    }
    return 0u;
}

fn add128(x: vec4<u32>, y: vec4<u32>) -> vec4<u32> {
    var a = limbs(x);
    var b = limbs(y);
    var o = array<u32, 4>(0u, 0u, 0u, 0u);
    var carry = 0u;
    for (var i = 0; i < 4; i = i + 1) {
        let s = a[i] + b[i];
        let s2 = s + carry;
        carry = select(0u, 1u, s < a[i]) + select(0u, 1u, s2 < s);
        o[i] = s2;
    }
    return vec4<u32>(o[0], o[1], o[2], o[3]);
}

// x - y for x >= y.
fn sub128(x: vec4<u32>, y: vec4<u32>) -> vec4<u32> {
    var a = limbs(x);
    var b = limbs(y);
    var o = array<u32, 4>(0u, 0u, 0u, 0u);
    var borrow = 0u;
    for (var i = 0; i < 4; i = i + 1) {
        let d = a[i] - b[i];
        let d2 = d - borrow;
        borrow = select(0u, 1u, a[i] < b[i]) + select(0u, 1u, d < borrow);
        o[i] = d2;
    }
    return vec4<u32>(o[0], o[1], o[2], o[3]);
}

fn less128(x: vec4<u32>, y: vec4<u32>) -> bool {
    var a = limbs(x);
    var b = limbs(y);
    for (var i = 3; i >= 0; i = i - 1) {
        if (a[i] != b[i]) {
            return a[i] < b[i];
        }
    }
    return false;
}

// 32 x 32 -> 64 bits as (low, high).
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    return vec2<u32>((p00 & 0xffffu) | (mid << 16u), p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u));
}

// === Binary floating point on those integers: value = (-1)^neg * m * 2^e ===

struct Float {
    neg: bool,
    m: vec4<u32>,
    e: i32,
}

// Round m to at most `bits` significant bits, to nearest, ties to even.
fn round_sig(f: Float, bits: u32) -> Float {
    let l = bitlen(f.m);
    if (l <= bits) {
        return f;
    }
    let s = l - bits;
    var q = shr(f.m, s);
    let half = bit(f.m, s - 1u);
    let sticky = low_nonzero(f.m, s - 1u);
    var e = f.e + i32(s);
    if (half && (sticky || (q.x & 1u) == 1u)) {
        q = add128(q, vec4<u32>(1u, 0u, 0u, 0u));
        if (bitlen(q) > bits) {
            q = shr(q, 1u);
            e = e + 1;
        }
    }
    return Float(f.neg, q, e);
}

// The f64 sum of two f64 values (53-bit mantissas), rounded to 53 bits.
fn add_f64(x: Float, y: Float) -> Float {
    if (bitlen(x.m) == 0u) {
        return y;
    }
    if (bitlen(y.m) == 0u) {
        return x;
    }
    var big = x;
    var small = y;
    if (y.e > x.e) {
        big = y;
        small = x;
    }
    let d = u32(big.e - small.e);
    var wide: vec4<u32>;
    var tiny: vec4<u32>;
    var e: i32;
    if (d <= 64u) {
        wide = shl(big.m, d);
        tiny = small.m;
        e = small.e;
    } else {
        // Far below the rounding position: only its sign and non-zeroness matter.
        wide = shl(big.m, 64u);
        tiny = vec4<u32>(1u, 0u, 0u, 0u);
        e = big.e - 64;
    }
    var r: Float;
    if (big.neg == small.neg) {
        r = Float(big.neg, add128(wide, tiny), e);
    } else if (less128(wide, tiny)) {
        r = Float(small.neg, sub128(tiny, wide), e);
    } else {
        r = Float(big.neg, sub128(wide, tiny), e);
    }
    if (bitlen(r.m) == 0u) {
        return Float(false, vec4<u32>(0u), 0);
    }
    return round_sig(r, 53u);
}

// Round an exact value to the nearest f32 (ties to even), with subnormals and overflow.
fn to_f32(f: Float) -> f32 {
    let sgn = select(0u, 0x80000000u, f.neg);
    let l = bitlen(f.m);
    if (l == 0u) {
        return bitcast<f32>(sgn);
    }
    let top = f.e + i32(l) - 1;
    if (top < -126) {
        // Subnormal: a multiple of 2^-149.
        let shift = -149 - f.e;
        if (shift <= 0) {
            return bitcast<f32>(sgn | shl(f.m, u32(-shift)).x);
        }
        if (shift > 120) {
            return bitcast<f32>(sgn);
        }
        let s = u32(shift);
        var q = shr(f.m, s).x;
        if (bit(f.m, s - 1u) && (low_nonzero(f.m, s - 1u) || (q & 1u) == 1u)) {
            q = q + 1u;
        }
        return bitcast<f32>(sgn | q);
    }
    let r = round_sig(f, 24u);
    let lr = bitlen(r.m);
    let mant = shl(r.m, 24u - lr).x;
    let ex = r.e + i32(lr) - 1;
    if (ex > 127) {
        return bitcast<f32>(sgn | 0x7f800000u);
    }
    return bitcast<f32>(sgn | (u32(ex + 127) << 23u) | (mant & 0x7fffffu));
}

fn param_float(at: u32) -> Float {
    return Float(prm[at] == 1u, vec4<u32>(prm[at + 1u], prm[at + 2u], 0u, 0u), bitcast<i32>(prm[at + 3u]));
}

@compute @workgroup_size(256)
fn uniform_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let lo = param_float(HEADER);
    let a = param_float(HEADER + 4u);
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let u = ((bits(i) >> 8u) << 1u) | 1u;
        // A * u exactly (53 x 25 bits), then rounded as the f64 product.
        let w0 = mul_wide(a.m.x, u);
        let w1 = mul_wide(a.m.y, u);
        let prod = add128(vec4<u32>(w0.x, w0.y, 0u, 0u), vec4<u32>(0u, w1.x, w1.y, 0u));
        let p = round_sig(Float(a.neg, prod, a.e - 25), 53u);
        out[i] = to_f32(add_f64(lo, p));
    }
}

@compute @workgroup_size(256)
fn bernoulli(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let threshold = extra(2u);
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let u = ((bits(i) >> 8u) << 1u) | 1u;
        out[i] = select(0.0, 1.0, u < threshold);
    }
}

// ln of u = (k + 0.5) / 2^24 for k = bits >> 8: near 1 through a series in w = 1 - u
// (exact in f32 there), where log(u) would lose its digits to cancellation.
fn ln_unit(k: u32) -> f32 {
    if (k < 8388608u) {
        return log((f32(k) + 0.5) * (1.0 / 16777216.0));
    }
    let w = f32(2u * (16777216u - k) - 1u) * (1.0 / 33554432.0);
    if (w < 0.0625) {
        return -w * (1.0 + w * (0.5 + w * (1.0 / 3.0 + w * (0.25 + w * (0.2 + w * (1.0 / 6.0))))));
    }
    return log(1.0 - w);
}

@compute @workgroup_size(256)
fn normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let mean = scalar(0u);
    let sd = scalar(1u);
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let k1 = bits(2u * i) >> 8u;
        let u2 = (f32(bits(2u * i + 1u) >> 8u) + 0.5) * (1.0 / 16777216.0);
        // cos(2 pi u2) = -cos(2 pi u2 - pi), evaluated on [-pi, pi].
        let c = -cos(6.283185307179586 * u2 - 3.141592653589793);
        out[i] = mean + sd * sqrt(-2.0 * ln_unit(k1)) * c;
    }
}

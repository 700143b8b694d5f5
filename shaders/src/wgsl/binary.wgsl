// Elementwise ops of two operands (broadcasting arrives as stride-0 views) and `where`.
// Comparisons give 1 or 0 in the operands' type.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> ai: array<i32>;
@group(0) @binding(5) var<storage, read> bi: array<i32>;
@group(0) @binding(6) var<storage, read_write> outi: array<i32>;
@group(0) @binding(7) var<storage, read> cond: array<u32>;
@group(0) @binding(8) var<storage, read> on_true: array<u32>;
@group(0) @binding(9) var<storage, read> on_false: array<u32>;
@group(0) @binding(10) var<storage, read_write> outu: array<u32>;

fn is_int(e: f32) -> bool {
    return floor(e) == e;
}

fn pow_ff(v: f32, e: f32) -> f32 {
    if (e == 0.0) {
        return 1.0;
    }
    if (is_nan(v) || is_nan(e)) {
        return nan();
    }
    let m = abs(v);
    var r: f32;
    if (m == 0.0) {
        r = select(0.0, inf(), e < 0.0);
    } else if (e == 1.0) {
        r = m;
    } else if (e == 2.0) {
        r = m * m;
    } else {
        r = exp2(e * log2(m));
    }
    if (v < 0.0) {
        if (!is_int(e)) {
            return nan();
        }
        if (abs(e) < 16777216.0 && (i32(abs(e)) & 1) == 1) {
            r = -r;
        }
    }
    return r;
}

fn binary_f(op: u32, p: f32, q: f32) -> f32 {
    switch op {
        case BIN_ADD: { return p + q; }
        case BIN_SUB: { return p - q; }
        case BIN_MUL: { return p * q; }
        case BIN_DIV: { return p / q; }
        case BIN_POW: { return pow_ff(p, q); }
        case BIN_MAXIMUM: { return select(q, p, p >= q || is_nan(q)); }
        case BIN_MINIMUM: { return select(q, p, p <= q || is_nan(q)); }
        case BIN_EQ: { return select(0.0, 1.0, p == q); }
        case BIN_NE: { return select(0.0, 1.0, p != q); }
        case BIN_LT: { return select(0.0, 1.0, p < q); }
        case BIN_LE: { return select(0.0, 1.0, p <= q); }
        case BIN_GT: { return select(0.0, 1.0, p > q); }
        case BIN_GE: { return select(0.0, 1.0, p >= q); }
        default: { return nan(); }
    }
}

// Wrapping integer power; negative exponents give 0 (as the CPU backend).
fn pow_i(base: i32, e: i32) -> i32 {
    if (e < 0) {
        return 0;
    }
    var r = 1;
    var p = base;
    var k = u32(e);
    loop {
        if (k == 0u) {
            break;
        }
        if ((k & 1u) == 1u) {
            r = r * p;
        }
        p = p * p;
        k = k >> 1u;
    }
    return r;
}

fn binary_i(op: u32, p: i32, q: i32) -> i32 {
    switch op {
        case BIN_ADD: { return p + q; }
        case BIN_SUB: { return p - q; }
        case BIN_MUL: { return p * q; }
        // WGSL defines p / 0 as p; the CPU backend gives 0. MIN / -1 wraps to MIN in both.
        case BIN_DIV: { return select(p / q, 0, q == 0); }
        case BIN_POW: { return pow_i(p, q); }
        case BIN_MAXIMUM: { return max(p, q); }
        case BIN_MINIMUM: { return min(p, q); }
        case BIN_EQ: { return select(0, 1, p == q); }
        case BIN_NE: { return select(0, 1, p != q); }
        case BIN_LT: { return select(0, 1, p < q); }
        case BIN_LE: { return select(0, 1, p <= q); }
        case BIN_GT: { return select(0, 1, p > q); }
        case BIN_GE: { return select(0, 1, p >= q); }
        default: { return 0; }
    }
}

@compute @workgroup_size(256)
fn binary_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[2];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        out[i] = binary_f(op, a[strided(i, 0u)], b[strided(i, 1u)]);
    }
}

@compute @workgroup_size(256)
fn binary_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[2];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        outi[i] = binary_i(op, ai[strided(i, 0u)], bi[strided(i, 1u)]);
    }
}

// Operands: condition, on_true, on_false. flags bit 0: the condition is f32 (so -0.0 is
// false), else i32. Values move as bit patterns, so f32 and i32 share the kernel.
@compute @workgroup_size(256)
fn where_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let float_cond = (prm[3] & 1u) == 1u;
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let c = cond[strided(i, 0u)];
        let t = select(c != 0u, (c & 0x7fffffffu) != 0u, float_cond);
        outu[i] = select(on_false[strided(i, 2u)], on_true[strided(i, 1u)], t);
    }
}

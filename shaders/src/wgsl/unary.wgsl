// Elementwise ops of one operand, the value and the derivative side by side (as in the CPU
// backend's elementwise.rs). The op code selects the function; it is uniform across the
// dispatch, so the switch costs no divergence. The codes (OP_NEG ...) and GELU_TANH_K /
// GELU_TANH_C are generated from core's op table (core/src/op.rs) and prepended; an op
// missing from a switch fails the test `every_unary_op_has_both_wgsl_cases`.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gr: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> xi: array<i32>;
@group(0) @binding(5) var<storage, read_write> outi: array<i32>;

const FRAC_1_SQRT_2: f32 = 0.7071067811865476;
const FRAC_1_SQRT_2PI: f32 = 0.3989422804014327;

fn sigmoid(v: f32) -> f32 {
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

// tanh from exp(-2|v|), which never overflows (a plain tanh may give NaN for large |v|).
fn tanh_s(v: f32) -> f32 {
    let t = exp(-2.0 * abs(v));
    return sign(v) * (1.0 - t) / (1.0 + t);
}

// Abramowitz and Stegun 7.1.26: absolute error below 1.5e-7, enough for f32.
fn erf_f(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-z * z));
}

// log(1 + e) accurate for small e (WGSL has no log1p): the rounding of 1 + e cancels in
// log(u) * e / (u - 1).
fn log1p_s(e: f32) -> f32 {
    let u = 1.0 + e;
    if (u == 1.0) {
        return e;
    }
    return log(u) * e / (u - 1.0);
}

fn is_int(e: f32) -> bool {
    return floor(e) == e;
}

fn is_odd_int(e: f32) -> bool {
    return is_int(e) && abs(e) < 16777216.0 && (i32(abs(e)) & 1) == 1;
}

// x^e with the real-valued cases of Rust's powf: negative bases with integer exponents.
fn pow_f(v: f32, e: f32) -> f32 {
    if (e == 0.0) {
        return 1.0;
    }
    if (is_nan(v) || is_nan(e)) {
        return nan();
    }
    let a = abs(v);
    var r: f32;
    if (a == 0.0) {
        r = select(0.0, inf(), e < 0.0);
    } else if (e == 1.0) {
        r = a;
    } else if (e == 2.0) {
        r = a * a;
    } else if (e == 0.5) {
        r = sqrt(a);
    } else {
        r = exp2(e * log2(a));
    }
    if (v < 0.0 || (v == 0.0 && bitcast<u32>(v) != 0u)) {
        if (!is_int(e)) {
            return nan();
        }
        if (is_odd_int(e)) {
            r = -r;
        }
    }
    return r;
}

fn unary_f(op: u32, v: f32) -> f32 {
    switch op {
        case OP_NEG: { return -v; }
        case OP_ABS: { return abs(v); }
        case OP_SIGN: { return select(select(0.0, -1.0, v < 0.0), 1.0, v > 0.0); }
        case OP_EXP: { return exp(v); }
        case OP_LOG: { return log(v); }
        case OP_SQRT: { return sqrt(v); }
        case OP_RSQRT: { return 1.0 / sqrt(v); }
        case OP_RECIP: { return 1.0 / v; }
        case OP_SQR: { return v * v; }
        case OP_SIN: { return sin(v); }
        case OP_COS: { return cos(v); }
        case OP_TANH: { return tanh_s(v); }
        case OP_SIGMOID: { return sigmoid(v); }
        case OP_RELU: { return select(0.0, v, v > 0.0); }
        case OP_GELU_TANH: {
            let inner = GELU_TANH_K * (v + GELU_TANH_C * v * v * v);
            return 0.5 * v * (1.0 + tanh_s(inner));
        }
        case OP_GELU_ERF: { return 0.5 * v * (1.0 + erf_f(v * FRAC_1_SQRT_2)); }
        case OP_SILU: { return v * sigmoid(v); }
        case OP_SOFTPLUS: { return max(v, 0.0) + log1p_s(exp(-abs(v))); }
        case OP_AFFINE: { return v * scalar(0u) + scalar(1u); }
        case OP_POWF: { return pow_f(v, scalar(0u)); }
        case OP_MAX_SCALAR: { return select(scalar(0u), v, v > scalar(0u)); }
        case OP_MIN_SCALAR: { return select(scalar(0u), v, v < scalar(0u)); }
        default: { return nan(); }
    }
}

// The derivative at v (subgradient 0 at kinks, like PyTorch).
fn unary_df(op: u32, v: f32) -> f32 {
    switch op {
        case OP_NEG: { return -1.0; }
        case OP_ABS: { return unary_f(OP_SIGN, v); }
        case OP_SIGN: { return 0.0; }
        case OP_EXP: { return exp(v); }
        case OP_LOG: { return 1.0 / v; }
        case OP_SQRT: { return 0.5 / sqrt(v); }
        case OP_RSQRT: { return -0.5 / (v * sqrt(v)); }
        case OP_RECIP: { return -1.0 / (v * v); }
        case OP_SQR: { return v + v; }
        case OP_SIN: { return cos(v); }
        case OP_COS: { return -sin(v); }
        case OP_TANH: {
            let t = tanh_s(v);
            return 1.0 - t * t;
        }
        case OP_SIGMOID: {
            let s = sigmoid(v);
            return s * (1.0 - s);
        }
        case OP_RELU: { return select(0.0, 1.0, v > 0.0); }
        case OP_GELU_TANH: {
            let t = tanh_s(GELU_TANH_K * (v + GELU_TANH_C * v * v * v));
            return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_TANH_K * (1.0 + 3.0 * GELU_TANH_C * v * v);
        }
        case OP_GELU_ERF: {
            let cdf = 0.5 * (1.0 + erf_f(v * FRAC_1_SQRT_2));
            let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * v * v);
            return cdf + v * pdf;
        }
        case OP_SILU: {
            let s = sigmoid(v);
            return s * (1.0 + v * (1.0 - s));
        }
        case OP_SOFTPLUS: { return sigmoid(v); }
        case OP_AFFINE: { return scalar(0u); }
        case OP_POWF: { return scalar(0u) * pow_f(v, scalar(0u) - 1.0); }
        case OP_MAX_SCALAR: { return select(0.0, 1.0, v > scalar(0u)); }
        case OP_MIN_SCALAR: { return select(0.0, 1.0, v < scalar(0u)); }
        default: { return nan(); }
    }
}

@compute @workgroup_size(256)
fn unary_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[2];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        out[i] = unary_f(op, x[strided(i, 0u)]);
    }
}

// Operand 0 is x, operand 1 the upstream gradient.
@compute @workgroup_size(256)
fn unary_grad_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[2];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        out[i] = gr[strided(i, 1u)] * unary_df(op, x[strided(i, 0u)]);
    }
}

// Integer neg and abs, wrapping like Rust's wrapping_neg / wrapping_abs.
@compute @workgroup_size(256)
fn unary_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let op = prm[2];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let v = xi[strided(i, 0u)];
        let neg = bitcast<i32>(0u - bitcast<u32>(v));
        outi[i] = select(select(v, neg, v < 0), neg, op == OP_NEG);
    }
}

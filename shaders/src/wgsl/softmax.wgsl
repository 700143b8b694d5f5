// Softmax and log-softmax over the last axis, and their backward, one workgroup per row.
// Rows are read through strides: `strided(row, k)` is operand k's row start (outer dims in
// the layout), extra(1) / extra(2) the column strides of operands 0 and 1, extra(0) = C.
// flags bit 0: log-softmax.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn softmax_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) tid: u32) {
    let rows = prm[0];
    let c = extra(0u);
    let cs = extra(1u);
    let log_out = (prm[3] & 1u) == 1u;
    for (var row = group_index(wg, nwg); row < rows; row = row + nwg.x * nwg.y) {
        let base = strided(row, 0u);
        var m = -inf();
        for (var j = tid; j < c; j = j + WG) {
            m = max(m, x[base + j * cs]);
        }
        m = wg_max(tid, m);
        var s = 0.0;
        for (var j = tid; j < c; j = j + WG) {
            s = s + exp(x[base + j * cs] - m);
        }
        s = wg_sum(tid, s);
        let lse = m + log(s);
        let inv = 1.0 / s;
        for (var j = tid; j < c; j = j + WG) {
            let v = x[base + j * cs];
            out[row * c + j] = select(exp(v - m) * inv, v - lse, log_out);
        }
    }
}

// Operand 0 is the saved output y, operand 1 the upstream gradient.
@compute @workgroup_size(256)
fn softmax_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) tid: u32) {
    let rows = prm[0];
    let c = extra(0u);
    let ys = extra(1u);
    let gs = extra(2u);
    let log_out = (prm[3] & 1u) == 1u;
    for (var row = group_index(wg, nwg); row < rows; row = row + nwg.x * nwg.y) {
        let yb = strided(row, 0u);
        let gb = strided(row, 1u);
        var s = 0.0;
        for (var j = tid; j < c; j = j + WG) {
            let gv = g[gb + j * gs];
            s = s + select(gv * x[yb + j * ys], gv, log_out);
        }
        s = wg_sum(tid, s);
        for (var j = tid; j < c; j = j + WG) {
            let y = x[yb + j * ys];
            let gv = g[gb + j * gs];
            // log-softmax: g - softmax * sum(g); softmax: y * (g - sum(g * y)).
            out[row * c + j] = select(y * (gv - s), gv - exp(y) * s, log_out);
        }
    }
}

// Cross-entropy of logit rows against i32 targets, with ignore_index and label smoothing,
// and its gradient. Logit rows are strided (operand 0; extra(0) = C, extra(1) = column
// stride). Targets, lse and the upstream gradient are dense at offsets prm[5], prm[6],
// prm[7]. scalar(0) = label smoothing, extra(2) = ignore_index (as i32 bits),
// flags bit 0: ignore_index is an i32 (else no target can equal it).
// A target outside 0..C (and not ignored) is reported as an index error (code 5).

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> lse_in: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;
@group(0) @binding(7) var<storage, read_write> lse_out: array<f32>;

fn ignored(t: i32) -> bool {
    return (prm[3] & 1u) == 1u && t == bitcast<i32>(extra(2u));
}

@compute @workgroup_size(256)
fn ce_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) tid: u32) {
    let rows = prm[0];
    let c = extra(0u);
    let cs = extra(1u);
    let eps = scalar(0u);
    for (var row = group_index(wg, nwg); row < rows; row = row + nwg.x * nwg.y) {
        let base = strided(row, 0u);
        var m = -inf();
        for (var j = tid; j < c; j = j + WG) {
            m = max(m, x[base + j * cs]);
        }
        m = wg_max(tid, m);
        var s = 0.0;
        var total = 0.0;
        for (var j = tid; j < c; j = j + WG) {
            let v = x[base + j * cs];
            s = s + exp(v - m);
            total = total + v;
        }
        let lse = m + log(wg_sum(tid, s));
        let mean = wg_sum(tid, total) / f32(c);
        if (tid == 0u) {
            let t = targets[prm[5] + row];
            var l = 0.0;
            if (!ignored(t)) {
                if (t < 0 || u32(t) >= c) {
                    report(5u, t, c);
                } else {
                    let nll = lse - x[base + u32(t) * cs];
                    l = select((1.0 - eps) * nll + eps * (lse - mean), nll, eps == 0.0);
                }
            }
            loss[row] = l;
            lse_out[row] = lse;
        }
    }
}

@compute @workgroup_size(256)
fn ce_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0] * extra(0u);
    let c = extra(0u);
    let cs = extra(1u);
    let eps = scalar(0u);
    let uniform_part = eps / f32(c);
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let row = i / c;
        let j = i % c;
        let t = targets[prm[5] + row];
        var d = 0.0;
        if (!ignored(t)) {
            if (t < 0 || u32(t) >= c) {
                report(5u, t, c);
            } else {
                let onehot = select(0.0, 1.0 - eps, u32(t) == j);
                let v = x[strided(row, 0u) + j * cs];
                d = g[prm[7] + row] * (exp(v - lse_in[prm[6] + row]) - onehot - uniform_part);
            }
        }
        out[i] = d;
    }
}

// LayerNorm and RMSNorm over the last axis, with backward. Rows of x (operand 0) and of
// the upstream gradient (operand 1) are strided as in softmax.wgsl; weight, bias, mean and
// rstd are dense: mean and rstd at offsets prm[6] and prm[7], weight at extra(2), bias at
// extra(3) (forward) while norm_bwd_params uses extra(3) for its rows per chunk.
// extra(0) = C, extra(1) = column stride of x, prm[10] = column stride of the gradient,
// scalar(0) = eps. flags: bit 0 weight, bit 1 bias, bit 2 LayerNorm (else RMSNorm).

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rstd_out: array<f32>;
@group(0) @binding(7) var<storage, read> g: array<f32>;
@group(0) @binding(8) var<storage, read> mean_in: array<f32>;
@group(0) @binding(9) var<storage, read> rstd_in: array<f32>;
@group(0) @binding(10) var<storage, read_write> dw: array<f32>;
@group(0) @binding(11) var<storage, read_write> db: array<f32>;

fn has_w() -> bool {
    return (prm[3] & 1u) == 1u;
}

fn has_b() -> bool {
    return (prm[3] & 2u) == 2u;
}

fn layer() -> bool {
    return (prm[3] & 4u) == 4u;
}

@compute @workgroup_size(256)
fn norm_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) tid: u32) {
    let rows = prm[0];
    let c = extra(0u);
    let cs = extra(1u);
    let n = f32(c);
    for (var row = group_index(wg, nwg); row < rows; row = row + nwg.x * nwg.y) {
        let base = strided(row, 0u);
        var mean = 0.0;
        if (layer()) {
            var s = 0.0;
            for (var j = tid; j < c; j = j + WG) {
                s = s + x[base + j * cs];
            }
            mean = wg_sum(tid, s) / n;
        }
        var q = 0.0;
        for (var j = tid; j < c; j = j + WG) {
            let d = x[base + j * cs] - mean;
            q = q + d * d;
        }
        let rstd = 1.0 / sqrt(wg_sum(tid, q) / n + scalar(0u));
        for (var j = tid; j < c; j = j + WG) {
            var h = (x[base + j * cs] - mean) * rstd;
            if (has_w()) {
                h = h * weight[extra(2u) + j];
            }
            if (has_b()) {
                h = h + bias[extra(3u) + j];
            }
            y[row * c + j] = h;
        }
        if (tid == 0u) {
            rstd_out[row] = rstd;
            if (layer()) {
                mean_out[row] = mean;
            }
        }
    }
}

fn row_mean(row: u32) -> f32 {
    return select(0.0, mean_in[prm[6] + row], layer());
}

@compute @workgroup_size(256)
fn norm_bwd_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) tid: u32) {
    let rows = prm[0];
    let c = extra(0u);
    let cs = extra(1u);
    let gs = prm[10];
    let n = f32(c);
    for (var row = group_index(wg, nwg); row < rows; row = row + nwg.x * nwg.y) {
        let xb = strided(row, 0u);
        let gb = strided(row, 1u);
        let mean = row_mean(row);
        let rstd = rstd_in[prm[7] + row];
        var s1 = 0.0;
        var s2 = 0.0;
        for (var j = tid; j < c; j = j + WG) {
            var gh = g[gb + j * gs];
            if (has_w()) {
                gh = gh * weight[extra(2u) + j];
            }
            s1 = s1 + gh;
            s2 = s2 + gh * (x[xb + j * cs] - mean) * rstd;
        }
        let m1 = wg_sum(tid, s1) / n;
        let m2 = wg_sum(tid, s2) / n;
        for (var j = tid; j < c; j = j + WG) {
            var gh = g[gb + j * gs];
            if (has_w()) {
                gh = gh * weight[extra(2u) + j];
            }
            let xhat = (x[xb + j * cs] - mean) * rstd;
            let centred = select(gh, gh - m1, layer());
            y[row * c + j] = rstd * (centred - xhat * m2);
        }
    }
}

// Partial column sums for dweight and dbias: thread (chunk, column) sums `extra(3)` rows.
// Output layout [chunks, C]; a reduction over the chunks follows.
@compute @workgroup_size(256)
fn norm_bwd_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rows = prm[0];
    let c = extra(0u);
    let cs = extra(1u);
    let gs = prm[10];
    let per = extra(3u);
    let chunks = (rows + per - 1u) / per;
    for (var t = gid.x; t < chunks * c; t = t + grid_step(nwg)) {
        let chunk = t / c;
        let j = t % c;
        var sw = 0.0;
        var sb = 0.0;
        for (var row = chunk * per; row < min(rows, (chunk + 1u) * per); row = row + 1u) {
            let gv = g[strided(row, 1u) + j * gs];
            let xhat = (x[strided(row, 0u) + j * cs] - row_mean(row)) * rstd_in[prm[7] + row];
            sw = sw + gv * xhat;
            sb = sb + gv;
        }
        if (has_w()) {
            dw[t] = sw;
        }
        if (has_b()) {
            db[t] = sb;
        }
    }
}

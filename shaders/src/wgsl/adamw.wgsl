// One AdamW update over contiguous parameter, gradient and moment buffers (offsets in
// prm[4..8]), in the same order of f32 operations as the CPU kernel.
// scalar(0..4) = beta1, beta2, lr, eps; extra(0..3) = f32 bits of (1 - lr * weight_decay),
// 1 / bias_correction1, 1 / sqrt(bias_correction2).

@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> m_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> v_out: array<f32>;

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let b1 = scalar(0u);
    let b2 = scalar(1u);
    let lr = scalar(2u);
    let eps = scalar(3u);
    let decay = bitcast<f32>(extra(0u));
    let inv_bc1 = bitcast<f32>(extra(1u));
    let inv_sqrt_bc2 = bitcast<f32>(extra(2u));
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let gi = g[prm[5] + i];
        let mi = b1 * m[prm[6] + i] + (1.0 - b1) * gi;
        let vi = b2 * v[prm[7] + i] + (1.0 - b2) * gi * gi;
        let denom = sqrt(vi) * inv_sqrt_bc2 + eps;
        p_out[i] = p[prm[4] + i] * decay - lr * (mi * inv_bc1) / denom;
        m_out[i] = mi;
        v_out[i] = vi;
    }
}

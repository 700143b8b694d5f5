// Layout and type moves: fills, strided copies, scatter into a strided destination, casts.
// Copies move 32-bit patterns, so one kernel serves f32 and i32.

@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let v = extra(0u);
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        dst[i] = v;
    }
}

@compute @workgroup_size(256)
fn copy_strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        dst[i] = src[strided(i, 0u)];
    }
}

// Operand 0 is the source view, operand 1 the destination view.
@compute @workgroup_size(256)
fn copy_into(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        dst[strided(i, 1u)] = src[strided(i, 0u)];
    }
}

// Rust's `as i32`: truncate toward zero, saturate, NaN to 0.
fn f32_to_i32(x: f32) -> i32 {
    if (is_nan(x)) {
        return 0;
    }
    if (x >= 2147483648.0) {
        return 2147483647;
    }
    if (x <= -2147483648.0) {
        return i32(-2147483647) - 1;
    }
    return i32(x);
}

@compute @workgroup_size(256)
fn cast_f32_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        dst[i] = bitcast<u32>(f32_to_i32(bitcast<f32>(src[strided(i, 0u)])));
    }
}

@compute @workgroup_size(256)
fn cast_i32_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        dst[i] = bitcast<u32>(f32(bitcast<i32>(src[strided(i, 0u)])));
    }
}

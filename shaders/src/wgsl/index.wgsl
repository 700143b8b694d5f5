// Indexing along one axis with i32 indices; one kernel reads (gather), one adds (scatter).
// index_select is a gather whose index view has stride 0 on every axis but `axis`, and
// index_add is the matching scatter, so four ops share two kernels.
//   [0] n  [1] rank  [2] op code for errors (1 index_select, 2 index_add, 3 gather,
//   4 scatter_add)  [4] data offset  [5] index offset
//   [12] axis  [13] size of the indexed axis
//   [16..] dims, data strides (gather: the source; scatter: the source values),
//          index strides, and for scatter the output strides.
// Out-of-range indices are reported (see common.wgsl) and skipped.

@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
@group(0) @binding(4) var<storage, read_write> acc_f: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> acc_i: array<atomic<i32>>;
@group(0) @binding(6) var<storage, read> srcf: array<f32>;
@group(0) @binding(7) var<storage, read> srci: array<i32>;

struct Place {
    data: u32,
    index: u32,
    dest: u32,
    axis_coord: u32,
}

// Offsets of element i in the data view, the index view, and (scatter) the output, with
// the data/output offsets leaving out the indexed axis.
fn place(i: u32) -> Place {
    let r = prm[1];
    let axis = extra(0u);
    var rem = i;
    var p = Place(prm[4], prm[5], 0u, 0u);
    for (var d = r; d > 0u; d = d - 1u) {
        let size = prm[HEADER + d - 1u];
        let c = rem % size;
        rem = rem / size;
        p.index = p.index + c * prm[HEADER + 2u * r + d - 1u];
        if (d - 1u == axis) {
            p.axis_coord = c;
        } else {
            p.data = p.data + c * prm[HEADER + r + d - 1u];
            p.dest = p.dest + c * prm[HEADER + 3u * r + d - 1u];
        }
    }
    return p;
}

fn checked(op: u32, t: i32) -> bool {
    if (t < 0 || u32(t) >= extra(1u)) {
        report(op, t, extra(1u));
        return false;
    }
    return true;
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let r = prm[1];
    let axis_stride = prm[HEADER + r + extra(0u)];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let p = place(i);
        let t = idx[p.index];
        var v = 0u;
        if (checked(prm[2], t)) {
            v = src[p.data + u32(t) * axis_stride];
        }
        out[i] = v;
    }
}

// Adds a float with a compare-and-swap loop: WGSL has no float atomics. The order of
// additions to one element varies, so sums agree with the CPU to rounding, not bitwise.
fn atomic_add_f32(at: u32, v: f32) {
    var old = atomicLoad(&acc_f[at]);
    loop {
        let r = atomicCompareExchangeWeak(&acc_f[at], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (r.exchanged) {
            break;
        }
        old = r.old_value;
    }
}

@compute @workgroup_size(256)
fn scatter_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let r = prm[1];
    let axis_stride = prm[HEADER + 3u * r + extra(0u)];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let p = place(i);
        let t = idx[p.index];
        if (checked(prm[2], t)) {
            let v = srcf[p.data + p.axis_coord * prm[HEADER + r + extra(0u)]];
            atomic_add_f32(p.dest + u32(t) * axis_stride, v);
        }
    }
}

@compute @workgroup_size(256)
fn scatter_i32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = prm[0];
    let r = prm[1];
    let axis_stride = prm[HEADER + 3u * r + extra(0u)];
    for (var i = gid.x; i < n; i = i + grid_step(nwg)) {
        let p = place(i);
        let t = idx[p.index];
        if (checked(prm[2], t)) {
            let v = srci[p.data + p.axis_coord * prm[HEADER + r + extra(0u)]];
            atomicAdd(&acc_i[p.dest + u32(t) * axis_stride], v);
        }
    }
}

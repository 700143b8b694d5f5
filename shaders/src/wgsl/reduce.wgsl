// Reductions over any set of axes of a strided view. The prelude defines the element type
// T (f32 or i32) with t_low(), t_high() and t_nan(). The kept dims ("outer") and reduced
// dims ("inner") are two merged index spaces:
//   [0] outputs   [2] op (0 sum, 1 max, 2 min, 3 argmax, 4 argmin)   [4] x offset
//   [12] R = reduced count   [13] outer rank   [14] inner rank   [15] chunks per output
//   [16..] outer dims, outer strides, inner dims, inner strides.
// reduce_wg: one workgroup per (output, chunk of R), a tree in workgroup memory; partial
// results [outputs, chunks]. reduce_thread: one thread per (output, chunk), for short
// reductions, very many outputs, or columns; partial results [chunks, outputs].

@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> out: array<T>;
@group(0) @binding(3) var<storage, read_write> outi: array<i32>;

var<workgroup> sv: array<T, 256>;
var<workgroup> si: array<u32, 256>;

fn outer_base(o: u32) -> u32 {
    let r = prm[13];
    var rem = o;
    var off = prm[4];
    for (var d = r; d > 0u; d = d - 1u) {
        let size = prm[HEADER + d - 1u];
        off = off + (rem % size) * prm[HEADER + r + d - 1u];
        rem = rem / size;
    }
    return off;
}

fn inner_off(i: u32) -> u32 {
    let ro = prm[13];
    let r = prm[14];
    let base = HEADER + 2u * ro;
    if (r == 1u) {
        return i * prm[base + 1u];
    }
    var rem = i;
    var off = 0u;
    for (var d = r; d > 0u; d = d - 1u) {
        let size = prm[base + d - 1u];
        off = off + (rem % size) * prm[base + r + d - 1u];
        rem = rem / size;
    }
    return off;
}

fn identity(op: u32) -> T {
    switch op {
        case 1u, 3u: { return t_low(); }
        case 2u, 4u: { return t_high(); }
        default: { return T(0); }
    }
}

fn combine(op: u32, acc: T, v: T) -> T {
    switch op {
        case 1u: { return select(acc, v, v > acc || t_nan(v)); }
        case 2u: { return select(acc, v, v < acc || t_nan(v)); }
        default: { return acc + v; }
    }
}

// Arg reductions keep the first index of the extreme value; NaNs never win.
fn better(op: u32, v: T, i: u32, bv: T, bi: u32) -> bool {
    if (op == 3u) {
        return v > bv || (v == bv && i < bi);
    }
    return v < bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn reduce_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) tid: u32) {
    let chunks = prm[15];
    let w = wg.y * nwg.x + wg.x;
    let total = prm[0] * chunks;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    let in_range = w < total;
    let op = prm[2];
    let big_r = prm[12];
    let o = w / chunks;
    let c = w % chunks;
    let per = (big_r + chunks - 1u) / chunks;
    let start = c * per;
    let end = min(big_r, start + per);
    let base = select(0u, outer_base(o), in_range);
    var acc = identity(op);
    var best = 0xffffffffu;
    if (in_range) {
        for (var i = start + tid; i < end; i = i + WG) {
            let v = x[base + inner_off(i)];
            if (op >= 3u) {
                if (better(op, v, i, acc, best)) {
                    acc = v;
                    best = i;
                }
            } else {
                acc = combine(op, acc, v);
            }
        }
    }
    sv[tid] = acc;
    si[tid] = best;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (tid < s) {
            if (op >= 3u) {
                if (better(op, sv[tid + s], si[tid + s], sv[tid], si[tid])) {
                    sv[tid] = sv[tid + s];
                    si[tid] = si[tid + s];
                }
            } else {
                sv[tid] = combine(op, sv[tid], sv[tid + s]);
            }
        }
        workgroupBarrier();
    }
    if (tid == 0u && in_range) {
        if (op >= 3u) {
            outi[w] = i32(select(si[0], 0u, si[0] == 0xffffffffu));
        } else {
            out[w] = sv[0];
        }
    }
}

// One thread per (output, chunk of R), output-major within a chunk: neighbouring threads
// take neighbouring outputs, which is what makes column sums read memory in order.
// Partial results are laid out [chunks, outputs].
@compute @workgroup_size(256)
fn reduce_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let outs = prm[0];
    let op = prm[2];
    let big_r = prm[12];
    let chunks = prm[15];
    let per = (big_r + chunks - 1u) / chunks;
    for (var t = gid.x; t < outs * chunks; t = t + grid_step(nwg)) {
        let o = t % outs;
        let c = t / outs;
        let base = outer_base(o);
        var acc = identity(op);
        var best = 0xffffffffu;
        for (var i = c * per; i < min(big_r, (c + 1u) * per); i = i + 1u) {
            let v = x[base + inner_off(i)];
            if (op >= 3u) {
                if (better(op, v, i, acc, best)) {
                    acc = v;
                    best = i;
                }
            } else {
                acc = combine(op, acc, v);
            }
        }
        if (op >= 3u) {
            outi[t] = i32(select(best, 0u, best == 0xffffffffu));
        } else {
            out[t] = acc;
        }
    }
}

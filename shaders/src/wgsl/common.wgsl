// Prepended to every kernel family. The parameter block `prm` (u32 words) is written by
// params.rs; its layout is fixed so that every family can read strided views the same way:
//   [0] n (elements or rows)   [1] rank   [2] op code   [3] flags
//   [4..8]   storage offsets of up to four operands (in elements)
//   [8..12]  f32 scalars, as bit patterns
//   [12..16] u32 extras
//   [16..16+rank] dims, then `rank` strides for each operand in turn, then any
//   family-specific words.
// Element indices are u32: the backend refuses buffers of 2^32 elements or more.

@group(0) @binding(0) var<storage, read> prm: array<u32>;

const HEADER: u32 = 16u;
const WG: u32 = 256u;

fn scalar(k: u32) -> f32 {
    return bitcast<f32>(prm[8u + k]);
}

fn extra(k: u32) -> u32 {
    return prm[12u + k];
}

// Storage offset of element `i` (row-major over the dims) of operand `k`.
fn strided(i: u32, k: u32) -> u32 {
    let r = prm[1];
    var off = prm[4u + k];
    if (r == 1u) {
        return off + i * prm[HEADER + 1u + k];
    }
    var rem = i;
    let sbase = HEADER + r * (k + 1u);
    for (var d = r; d > 0u; d = d - 1u) {
        let size = prm[HEADER + d - 1u];
        off = off + (rem % size) * prm[sbase + d - 1u];
        rem = rem / size;
    }
    return off;
}

// NaN tests on bit patterns: WGSL lets compilers assume floats are never NaN.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

// Grid-stride loops: a dispatch has at most 65535 workgroups in x, so threads step by the
// whole grid.
fn grid_step(nwg: vec3<u32>) -> u32 {
    return nwg.x * WG;
}

// Index errors: a kernel that meets an out-of-range index records the first one in its
// status slot (word 15 of the parameter block) and skips the access; the host reads the
// slot with the next readback and returns an IndexOutOfRange error naming the op to the
// thread that issued it (codes and bookkeeping in status.rs).
@group(0) @binding(15) var<storage, read_write> status: array<atomic<u32>>;

fn report(op: u32, index: i32, size: u32) {
    let at = prm[15] * 4u;
    if (atomicAdd(&status[at], 1u) == 0u) {
        atomicStore(&status[at + 1u], op);
        atomicStore(&status[at + 2u], bitcast<u32>(index));
        atomicStore(&status[at + 3u], size);
    }
}

// Shared-memory tree reductions over a workgroup of WG threads. Call from uniform
// control flow; every thread gets the result.
var<workgroup> red_f: array<f32, 256>;

fn wg_sum(tid: u32, v: f32) -> f32 {
    red_f[tid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (tid < s) {
            red_f[tid] = red_f[tid] + red_f[tid + s];
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}

fn wg_max(tid: u32, v: f32) -> f32 {
    red_f[tid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (tid < s) {
            red_f[tid] = max(red_f[tid], red_f[tid + s]);
        }
        workgroupBarrier();
    }
    let r = red_f[0];
    workgroupBarrier();
    return r;
}

// Row kernels take one workgroup per row over a 2-d grid of workgroups.
fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

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

// Batched f32 matmul, tiled and register-blocked. The prelude sets the tile: BM x BN
// outputs per workgroup, BK deep, TM x TN outputs per thread (TM, TN multiples of 4).
// Operands are read through their strides, so transposed views cost no copy; the load
// pattern follows whichever stride is 1 so that neighbouring threads read neighbouring
// addresses. A's tile is stored transposed ([k][m]) so that both register loads are
// vec4 reads along the tile, and the next tile is prefetched into registers.
//   [0] batches  [1] batch rank  [3] flags: bit 0 A's k-stride is 1, bit 1 B's n-stride is 1
//   [4] A offset  [5] B offset  [12] M  [13] N  [14] K
//   [16] A row stride, A k stride, B k stride, B col stride, then batch dims,
//        A batch strides, B batch strides.

@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const THREADS: u32 = (BM / TM) * (BN / TN);
const COLS4: u32 = TN / 4u;

var<workgroup> tile_a: array<vec4<f32>, BK * BM / 4u>;
var<workgroup> tile_b: array<vec4<f32>, BK * BN / 4u>;

fn batch_offsets(z: u32) -> vec2<u32> {
    let r = prm[1];
    var rem = z;
    var oa = prm[4];
    var ob = prm[5];
    let base = HEADER + 4u;
    for (var d = r; d > 0u; d = d - 1u) {
        let size = prm[base + d - 1u];
        let c = rem % size;
        rem = rem / size;
        oa = oa + c * prm[base + r + d - 1u];
        ob = ob + c * prm[base + 2u * r + d - 1u];
    }
    return vec2<u32>(oa, ob);
}

const LOADS_A: u32 = BM * BK / THREADS;
const LOADS_B: u32 = BN * BK / THREADS;

struct Tile {
    m: u32,
    n: u32,
    k: u32,
    a_rs: u32,
    a_ks: u32,
    b_ks: u32,
    b_cs: u32,
    a_k_dense: bool,
    b_n_dense: bool,
    row0: u32,
    col0: u32,
}

// Element l of this thread's share of A's tile at depth k0: (row, depth) in the tile.
fn a_slot(t: Tile, tid: u32, l: u32) -> vec2<u32> {
    let e = tid + l * THREADS;
    return select(vec2<u32>(e % BM, e / BM), vec2<u32>(e / BK, e % BK), t.a_k_dense);
}

// (column, depth) in B's tile.
fn b_slot(t: Tile, tid: u32, l: u32) -> vec2<u32> {
    let e = tid + l * THREADS;
    return select(vec2<u32>(e / BK, e % BK), vec2<u32>(e % BN, e / BN), t.b_n_dense);
}

fn load_a(t: Tile, base: u32, tid: u32, l: u32, k0: u32) -> f32 {
    let s = a_slot(t, tid, l);
    let gm = t.row0 + s.x;
    let gk = k0 + s.y;
    if (gm < t.m && gk < t.k) {
        return lhs[base + gm * t.a_rs + gk * t.a_ks];
    }
    return 0.0;
}

fn load_b(t: Tile, base: u32, tid: u32, l: u32, k0: u32) -> f32 {
    let s = b_slot(t, tid, l);
    let gn = t.col0 + s.x;
    let gk = k0 + s.y;
    if (gn < t.n && gk < t.k) {
        return rhs[base + gk * t.b_ks + gn * t.b_cs];
    }
    return 0.0;
}

// Each workgroup computes a BM x BN block of one batch entry. The next depth step's
// operands are fetched into registers while the current one is multiplied out of
// workgroup memory, so global loads overlap the arithmetic.
@compute @workgroup_size(THREADS)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) tid: u32) {
    let t = Tile(extra(0u), extra(1u), extra(2u), prm[HEADER], prm[HEADER + 1u], prm[HEADER + 2u],
                 prm[HEADER + 3u], (prm[3] & 1u) == 1u, (prm[3] & 2u) == 2u, wg.y * BM, wg.x * BN);
    let tx = tid % (BN / TN);
    let ty = tid / (BN / TN);
    for (var z = wg.z; z < prm[0]; z = z + nwg.z) {
        let bo = batch_offsets(z);
        var acc: array<vec4<f32>, TM * COLS4>;
        for (var i = 0u; i < TM * COLS4; i = i + 1u) {
            acc[i] = vec4<f32>(0.0);
        }
        var next_a: array<f32, LOADS_A>;
        var next_b: array<f32, LOADS_B>;
        for (var l = 0u; l < LOADS_A; l = l + 1u) {
            next_a[l] = load_a(t, bo.x, tid, l, 0u);
        }
        for (var l = 0u; l < LOADS_B; l = l + 1u) {
            next_b[l] = load_b(t, bo.y, tid, l, 0u);
        }
        for (var k0 = 0u; k0 < t.k; k0 = k0 + BK) {
            for (var l = 0u; l < LOADS_A; l = l + 1u) {
                let s = a_slot(t, tid, l);
                let at = s.y * BM + s.x;
                tile_a[at / 4u][at % 4u] = next_a[l];
            }
            for (var l = 0u; l < LOADS_B; l = l + 1u) {
                let s = b_slot(t, tid, l);
                let at = s.y * BN + s.x;
                tile_b[at / 4u][at % 4u] = next_b[l];
            }
            workgroupBarrier();
            if (k0 + BK < t.k) {
                for (var l = 0u; l < LOADS_A; l = l + 1u) {
                    next_a[l] = load_a(t, bo.x, tid, l, k0 + BK);
                }
                for (var l = 0u; l < LOADS_B; l = l + 1u) {
                    next_b[l] = load_b(t, bo.y, tid, l, k0 + BK);
                }
            }
            for (var kk = 0u; kk < BK; kk = kk + 1u) {
                var ar: array<vec4<f32>, TM / 4u>;
                var br: array<vec4<f32>, COLS4>;
                for (var i = 0u; i < TM / 4u; i = i + 1u) {
                    ar[i] = tile_a[(kk * BM + ty * TM) / 4u + i];
                }
                for (var j = 0u; j < COLS4; j = j + 1u) {
                    br[j] = tile_b[(kk * BN + tx * TN) / 4u + j];
                }
                for (var i = 0u; i < TM; i = i + 1u) {
                    let a = ar[i / 4u][i % 4u];
                    for (var j = 0u; j < COLS4; j = j + 1u) {
                        acc[i * COLS4 + j] = acc[i * COLS4 + j] + a * br[j];
                    }
                }
            }
            workgroupBarrier();
        }
        let obase = z * t.m * t.n;
        for (var i = 0u; i < TM; i = i + 1u) {
            let gm = t.row0 + ty * TM + i;
            if (gm >= t.m) {
                continue;
            }
            for (var j = 0u; j < TN; j = j + 1u) {
                let gn = t.col0 + tx * TN + j;
                if (gn < t.n) {
                    out[obase + gm * t.n + gn] = acc[i * COLS4 + j / 4u][j % 4u];
                }
            }
        }
    }
}

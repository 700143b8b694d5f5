// Batched f32 matmul, tiled and register-blocked. The prelude sets the tile: BM x BN
// outputs per workgroup, BK deep, TM x TN outputs per thread (TM, TN multiples of 4).
// Operands are read through their strides, so transposed views cost no copy; the load
// pattern follows whichever stride is 1 so that neighbouring threads read neighbouring
// addresses. A's tile is stored transposed ([k][m]) so that both register loads are
// vec4 reads along the tile.
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

@compute @workgroup_size(THREADS)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) tid: u32) {
    let m = extra(0u);
    let n = extra(1u);
    let k = extra(2u);
    let a_rs = prm[HEADER];
    let a_ks = prm[HEADER + 1u];
    let b_ks = prm[HEADER + 2u];
    let b_cs = prm[HEADER + 3u];
    let a_k_dense = (prm[3] & 1u) == 1u;
    let b_n_dense = (prm[3] & 2u) == 2u;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let tx = tid % (BN / TN);
    let ty = tid / (BN / TN);
    for (var z = wg.z; z < prm[0]; z = z + nwg.z) {
        let bo = batch_offsets(z);
        var acc: array<vec4<f32>, TM * COLS4>;
        for (var i = 0u; i < TM * COLS4; i = i + 1u) {
            acc[i] = vec4<f32>(0.0);
        }
        for (var k0 = 0u; k0 < k; k0 = k0 + BK) {
            for (var l = 0u; l < BM * BK / THREADS; l = l + 1u) {
                let e = tid + l * THREADS;
                var mm = e / BK;
                var kk = e % BK;
                if (!a_k_dense) {
                    mm = e % BM;
                    kk = e / BM;
                }
                let gm = row0 + mm;
                let gk = k0 + kk;
                var v = 0.0;
                if (gm < m && gk < k) {
                    v = lhs[bo.x + gm * a_rs + gk * a_ks];
                }
                let t = kk * BM + mm;
                tile_a[t / 4u][t % 4u] = v;
            }
            for (var l = 0u; l < BN * BK / THREADS; l = l + 1u) {
                let e = tid + l * THREADS;
                var nn = e % BN;
                var kk = e / BN;
                if (!b_n_dense) {
                    nn = e / BK;
                    kk = e % BK;
                }
                let gn = col0 + nn;
                let gk = k0 + kk;
                var v = 0.0;
                if (gn < n && gk < k) {
                    v = rhs[bo.y + gk * b_ks + gn * b_cs];
                }
                let t = kk * BN + nn;
                tile_b[t / 4u][t % 4u] = v;
            }
            workgroupBarrier();
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
        let obase = z * m * n;
        for (var i = 0u; i < TM; i = i + 1u) {
            let gm = row0 + ty * TM + i;
            if (gm >= m) {
                continue;
            }
            for (var j = 0u; j < TN; j = j + 1u) {
                let gn = col0 + tx * TN + j;
                if (gn < n) {
                    out[obase + gm * n + gn] = acc[i * COLS4 + j / 4u][j % 4u];
                }
            }
        }
    }
}

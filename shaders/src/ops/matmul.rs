//! Batched matmul through the tiled kernel of matmul.wgsl. The tile shape is a
//! compile-time choice (`MatmulConfig`), picked per shape class by the autotuner.

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::backend::View;
use plies_core::layout::Coalesced;
use plies_core::{DType, Layout, Result, Shape};

/// A tile configuration of the matmul kernel: `bm x bn` outputs per workgroup, `bk`
/// deep, `tm x tn` outputs per thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulConfig {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl MatmulConfig {
    pub const fn new(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Self {
        MatmulConfig { bm, bn, bk, tm, tn }
    }

    /// The configurations the autotuner chooses among, largest tiles first.
    pub const CANDIDATES: [MatmulConfig; 7] = [
        MatmulConfig::new(128, 128, 16, 8, 8),
        MatmulConfig::new(128, 128, 8, 8, 8),
        MatmulConfig::new(128, 64, 16, 8, 8),
        MatmulConfig::new(64, 128, 16, 8, 8),
        MatmulConfig::new(64, 64, 16, 8, 8),
        MatmulConfig::new(64, 64, 16, 4, 4),
        MatmulConfig::new(32, 32, 16, 4, 4),
    ];

    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// Whether the kernel can be built with this tile on a device with these limits.
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        let t = self.threads();
        self.tm.is_multiple_of(4)
            && self.tn.is_multiple_of(4)
            && self.bm.is_multiple_of(self.tm)
            && self.bn.is_multiple_of(self.tn)
            && (self.bm * self.bk).is_multiple_of(t)
            && (self.bn * self.bk).is_multiple_of(t)
            && t <= limits.max_compute_invocations_per_workgroup
            && t <= limits.max_compute_workgroup_size_x
            && (self.bm + self.bn) * self.bk * 4 <= limits.max_compute_workgroup_storage_size
    }

    pub(crate) fn prelude(&self) -> String {
        format!(
            "const BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst BK: u32 = {}u;\nconst TM: u32 = {}u;\nconst TN: u32 = {}u;\n",
            self.bm, self.bn, self.bk, self.tm, self.tn
        )
    }

    /// The choice without measurements: the largest tile that still gives the device
    /// enough workgroups.
    pub fn heuristic(m: usize, n: usize, batch: usize) -> MatmulConfig {
        let work = m * n * batch;
        if work >= 512 * 512 {
            MatmulConfig::new(128, 128, 16, 8, 8)
        } else if work >= 128 * 128 {
            MatmulConfig::new(64, 64, 16, 4, 4)
        } else {
            MatmulConfig::new(32, 32, 16, 4, 4)
        }
    }
}

impl std::fmt::Display for MatmulConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}/{}x{}", self.bm, self.bn, self.bk, self.tm, self.tn)
    }
}

/// Everything the kernel needs about one matmul, independent of the tile choice.
pub(crate) struct MatmulProblem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a_t: bool,
    pub b_t: bool,
    params: Params,
}

impl MatmulProblem {
    pub(crate) fn new(la: &Layout, lb: &Layout) -> Self {
        let r = la.rank();
        let (m, k, n) = (la.dims()[r - 2], la.dims()[r - 1], lb.dims()[r - 1]);
        let batch_shape = Shape::new(la.dims()[..r - 2].to_vec());
        let ba = Layout::new(batch_shape.clone(), la.strides()[..r - 2].to_vec(), la.offset());
        let bb = Layout::new(batch_shape.clone(), lb.strides()[..r - 2].to_vec(), lb.offset());
        let c = Coalesced::new(&[&ba, &bb]);
        let (a_rs, a_ks) = (la.strides()[r - 2], la.strides()[r - 1]);
        let (b_ks, b_cs) = (lb.strides()[r - 2], lb.strides()[r - 1]);
        // Which stride is 1 decides the coalesced load order (a size-1 dim counts as dense).
        let a_k_dense = a_ks == 1 || k == 1 || (a_rs != 1 && a_ks < a_rs);
        let b_n_dense = b_cs == 1 || n == 1 || (b_ks != 1 && b_cs < b_ks);
        let batch = batch_shape.elem_count();
        let mut words: Vec<u32> = vec![a_rs as u32, a_ks as u32, b_ks as u32, b_cs as u32];
        words.extend(c.dims.iter().map(|&d| d as u32));
        words.extend(c.strides[0].iter().map(|&d| d as u32));
        words.extend(c.strides[1].iter().map(|&d| d as u32));
        let mut params = Params::new(batch)
            .flags(a_k_dense as u32 | (b_n_dense as u32) << 1)
            .offset(0, c.offsets[0])
            .offset(1, c.offsets[1])
            .extra(0, m as u32)
            .extra(1, n as u32)
            .extra(2, k as u32)
            .push(words);
        params = params.rank(c.dims.len());
        MatmulProblem { m, n, k, batch, a_t: !a_k_dense, b_t: !b_n_dense, params }
    }
}

impl GpuBackend {
    pub(crate) fn matmul_view(&self, lhs: View, rhs: View) -> Result<GpuStorage> {
        self.float_only("matmul", lhs.dtype())?;
        self.float_only("matmul", rhs.dtype())?;
        let (sa, sb) = (self.storage_of("matmul", lhs)?, self.storage_of("matmul", rhs)?);
        let p = MatmulProblem::new(lhs.layout, rhs.layout);
        let out = self.output("matmul", p.batch * p.m * p.n, DType::F32)?;
        if p.batch * p.m * p.n == 0 {
            return Ok(out);
        }
        let cfg = self.matmul_config(&p, sa.buffer(), sb.buffer())?;
        self.matmul_run(&p, cfg, sa.buffer(), sb.buffer(), out.buffer())?;
        Ok(out)
    }

    pub(crate) fn matmul_run(
        &self,
        p: &MatmulProblem,
        cfg: MatmulConfig,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<()> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let gx = p.n.div_ceil(cfg.bn as usize);
        let gy = p.m.div_ceil(cfg.bm as usize);
        if gx > max || gy > max {
            return Err(plies_core::Error::TooLarge {
                op: "matmul",
                bytes: (p.m * p.n * 4) as u64,
                limit: (max as u64 * cfg.bm as u64).pow(2) * 4,
                what: "max_compute_workgroups_per_dimension times the tile size",
            });
        }
        let k = Kernel::new(Family::Matmul, "matmul").with(cfg.prelude());
        self.run(&k, &p.params, &[(1, a), (2, b), (3, out)], [gx as u32, gy as u32, p.batch.min(max) as u32])
    }
}

impl GpuBackend {
    /// `lhs.matmul(rhs)` with a given tile, bypassing the autotuner (for tests and tuning
    /// experiments). Shapes as in `Array::matmul` for rank >= 2 with equal batch dims.
    pub fn matmul_with(
        &self,
        cfg: MatmulConfig,
        lhs: &plies_core::Array,
        rhs: &plies_core::Array,
    ) -> Result<plies_core::Array> {
        if !cfg.fits(&self.limits) {
            return Err(plies_core::Error::invalid("matmul_with", format!("tile {cfg} does not fit this device")));
        }
        let (la, lb) = (lhs.layout(), rhs.layout());
        let r = la.rank();
        if r < 2 || lb.rank() != r || la.dims()[..r - 2] != lb.dims()[..r - 2] || la.dims()[r - 1] != lb.dims()[r - 2] {
            return Err(plies_core::Error::ShapeMismatch {
                op: "matmul_with",
                lhs: lhs.shape().clone(),
                rhs: rhs.shape().clone(),
            });
        }
        let (sa, sb) = (self.storage_of("matmul", lhs.view())?, self.storage_of("matmul", rhs.view())?);
        let p = MatmulProblem::new(la, lb);
        let out = self.output("matmul", p.batch * p.m * p.n, DType::F32)?;
        if p.batch * p.m * p.n > 0 {
            self.matmul_run(&p, cfg, sa.buffer(), sb.buffer(), out.buffer())?;
        }
        let mut dims = la.dims()[..r - 2].to_vec();
        dims.extend([p.m, p.n]);
        Ok(plies_core::Array::from_storage(Box::new(out), dims))
    }
}

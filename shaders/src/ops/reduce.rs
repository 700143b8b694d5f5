//! Reductions: the kept and the reduced axes become two merged index spaces read straight
//! through the input's strides. Short reductions (or very many outputs) take one thread per
//! output; long ones a workgroup per output, split into chunks with a second pass when
//! there are too few outputs to fill the device.

use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::{coalesce_one, Params};
use crate::storage::GpuStorage;
use plies_core::backend::View;
use plies_core::{DType, Error, ReduceOp, Result};

pub(crate) fn type_prelude(dtype: DType) -> &'static str {
    match dtype {
        DType::I32 => {
            "alias T = i32;\nfn t_low() -> i32 { return bitcast<i32>(0x80000000u); }\n\
             fn t_high() -> i32 { return 2147483647; }\nfn t_nan(v: i32) -> bool { return false; }\n"
        }
        _ => {
            "alias T = f32;\nfn t_low() -> f32 { return bitcast<f32>(0xff800000u); }\n\
             fn t_high() -> f32 { return bitcast<f32>(0x7f800000u); }\nfn t_nan(v: f32) -> bool { return is_nan(v); }\n"
        }
    }
}

fn code(op: ReduceOp) -> u32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
        ReduceOp::Min => 2,
        ReduceOp::ArgMax => 3,
        ReduceOp::ArgMin => 4,
    }
}

/// Workgroups of a 2-d grid covering `n` (x capped at the device limit).
pub(crate) fn grid2(gpu: &GpuBackend, n: usize) -> [u32; 3] {
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    let x = n.clamp(1, max);
    [x as u32, n.div_ceil(x).max(1) as u32, 1]
}

/// One strided reduction problem: `outs` outputs, each over `r` elements.
struct Space {
    outer: (Vec<usize>, Vec<usize>),
    inner: (Vec<usize>, Vec<usize>),
    offset: usize,
    outs: usize,
    r: usize,
}

impl GpuBackend {
    pub(crate) fn reduce_view(&self, op: ReduceOp, x: View, axes: &[usize]) -> Result<GpuStorage> {
        self.supported(op.name(), x.dtype())?;
        let s = self.storage_of(op.name(), x)?;
        let dims = x.layout.dims();
        let strides = x.layout.strides();
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        if arg && axes.len() != 1 {
            return Err(Error::invalid(op.name(), format!("takes exactly one axis, got {axes:?}")));
        }
        let pick = |keep: bool| -> (Vec<usize>, Vec<usize>) {
            let idx: Vec<usize> = (0..dims.len()).filter(|d| axes.contains(d) != keep).collect();
            let d: Vec<usize> = idx.iter().map(|&i| dims[i]).collect();
            let st: Vec<usize> = idx.iter().map(|&i| strides[i]).collect();
            (d, st)
        };
        let (od, os) = pick(true);
        let (rd, rs) = pick(false);
        let outs: usize = od.iter().product();
        let r: usize = rd.iter().product();
        if arg && r == 0 {
            return Err(Error::invalid(op.name(), "cannot reduce an empty axis"));
        }
        let space =
            Space { outer: coalesce_one(&od, &os), inner: coalesce_one(&rd, &rs), offset: x.layout.offset(), outs, r };
        self.reduce_space(op, s.buffer(), x.dtype(), space)
    }

    fn reduce_space(&self, op: ReduceOp, x: &wgpu::Buffer, dtype: DType, sp: Space) -> Result<GpuStorage> {
        let arg = matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin);
        // Columns: neighbouring outputs are neighbours in memory while the reduced axis is
        // strided, so one thread per output reads in order; chunks of R add parallelism.
        let column = sp.outer.1.last() == Some(&1) && sp.inner.1.last() != Some(&1) && sp.outs > 1;
        let threaded = column || sp.r <= 32 || (sp.outs >= 8192 && sp.r <= 4096) || (arg && sp.outs >= 4096);
        let chunks = if arg || sp.r <= 64 {
            1
        } else if threaded {
            sp.r.div_ceil(64).min((16_384 / sp.outs).max(1))
        } else if sp.outs >= 1024 {
            1
        } else {
            sp.r.div_ceil(2048).min((1024 / sp.outs).max(1))
        };
        let n_out = sp.outs * chunks;
        let out = self.output(op.name(), n_out, if arg { DType::I32 } else { dtype })?;
        if sp.outs == 0 {
            return Ok(out);
        }
        let mut words = Vec::new();
        words.extend(sp.outer.0.iter().map(|&v| v as u32));
        words.extend(sp.outer.1.iter().map(|&v| v as u32));
        words.extend(sp.inner.0.iter().map(|&v| v as u32));
        words.extend(sp.inner.1.iter().map(|&v| v as u32));
        let p = Params::new(sp.outs)
            .op(code(op))
            .offset(0, sp.offset)
            .extra(0, sp.r as u32)
            .extra(1, sp.outer.0.len() as u32)
            .extra(2, sp.inner.0.len() as u32)
            .extra(3, chunks as u32)
            .push(words);
        let (entry, groups) =
            if threaded { ("reduce_thread", [self.groups(n_out), 1, 1]) } else { ("reduce_wg", grid2(self, n_out)) };
        let k = Kernel::new(Family::Reduce, entry).with(type_prelude(dtype));
        self.run(&k, &p, &[(1, x), (2, out.buffer()), (3, out.buffer())], groups)?;
        if chunks == 1 {
            return Ok(out);
        }
        // Second pass over the partials: [chunks, outs] from threads, [outs, chunks] from
        // workgroups.
        let (outer_stride, inner_stride) = if threaded { (1, sp.outs) } else { (chunks, 1) };
        let sp2 = Space {
            outer: (vec![sp.outs], vec![outer_stride]),
            inner: (vec![chunks], vec![inner_stride]),
            offset: 0,
            outs: sp.outs,
            r: chunks,
        };
        self.reduce_space(op, out.buffer(), dtype, sp2)
    }
}

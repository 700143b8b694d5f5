//! Row-wise fused kernels over the last axis (softmax, layer/RMS norm, cross-entropy, each
//! with its backward) and the AdamW update. Rows are read through strides: the dims before
//! the last are the "outer" layout of each operand (merged where possible) and the last
//! axis has one column stride per operand. Small per-row or per-column operands (weights,
//! statistics, targets) are made dense first.

use super::reduce::grid2;
use crate::gpu::GpuBackend;
use crate::kernels::{Family, Kernel};
use crate::params::Params;
use crate::storage::GpuStorage;
use plies_core::backend::{AdamWStep, CrossEntropyOpts, NormGradInputs, NormGrads, NormOut, View};
use plies_core::{DType, Error, Layout, NormKind, Result, Shape};

/// (rows, cols, params with the outer layouts and column strides of `views`).
fn rows_params(views: &[&Layout]) -> (usize, usize, Params) {
    let l0 = views[0];
    let r = l0.rank();
    let cols = if r == 0 { 1 } else { l0.dims()[r - 1] };
    let outer_shape = Shape::new(if r == 0 { vec![] } else { l0.dims()[..r - 1].to_vec() });
    let outer: Vec<Layout> = views
        .iter()
        .map(|l| {
            let st = if r == 0 { vec![] } else { l.strides()[..r - 1].to_vec() };
            Layout::new(outer_shape.clone(), st, l.offset())
        })
        .collect();
    let refs: Vec<&Layout> = outer.iter().collect();
    let col_stride = |l: &Layout| if r == 0 { 1 } else { l.strides()[r - 1] as u32 };
    let mut p = Params::new(outer_shape.elem_count()).extra(0, cols as u32).views(&refs);
    for (k, l) in views.iter().enumerate().take(2) {
        p = p.extra(1 + k, col_stride(l));
    }
    (outer_shape.elem_count(), cols, p)
}

impl GpuBackend {
    fn rows_check(&self, op: &'static str, views: &[View]) -> Result<()> {
        for v in views {
            self.float_only(op, v.dtype())?;
        }
        Ok(())
    }

    pub(crate) fn softmax_view(&self, x: View, log: bool) -> Result<GpuStorage> {
        self.rows_check("softmax", &[x])?;
        let s = self.storage_of("softmax", x)?;
        let (rows, cols, p) = rows_params(&[x.layout]);
        let out = self.output("softmax", rows * cols, DType::F32)?;
        let p = p.flags(log as u32);
        self.run(
            &Kernel::new(Family::Softmax, "softmax_fwd"),
            &p,
            &[(1, s.buffer()), (3, out.buffer())],
            grid2(self, rows),
        )?;
        Ok(out)
    }

    pub(crate) fn softmax_grad_view(&self, y: View, grad: View, log: bool) -> Result<GpuStorage> {
        self.rows_check("softmax_grad", &[y, grad])?;
        let (sy, sg) = (self.storage_of("softmax_grad", y)?, self.storage_of("softmax_grad", grad)?);
        let (rows, cols, p) = rows_params(&[y.layout, grad.layout]);
        let out = self.output("softmax_grad", rows * cols, DType::F32)?;
        let p = p.flags(log as u32);
        self.run(
            &Kernel::new(Family::Softmax, "softmax_bwd"),
            &p,
            &[(1, sy.buffer()), (2, sg.buffer()), (3, out.buffer())],
            grid2(self, rows),
        )?;
        Ok(out)
    }

    pub(crate) fn norm_view(
        &self,
        kind: NormKind,
        x: View,
        weight: Option<View>,
        bias: Option<View>,
        eps: f64,
    ) -> Result<NormOut> {
        let op = "norm";
        self.rows_check(op, &[x])?;
        let sx = self.storage_of(op, x)?;
        let w = weight.map(|w| self.dense(op, w)).transpose()?;
        let b = bias.map(|b| self.dense(op, b)).transpose()?;
        let (rows, cols, p) = rows_params(&[x.layout]);
        let y = self.output(op, rows * cols, DType::F32)?;
        let rstd = self.output(op, rows, DType::F32)?;
        let mean = if kind == NormKind::Layer { Some(self.output(op, rows, DType::F32)?) } else { None };
        let flags = w.is_some() as u32 | (b.is_some() as u32) << 1 | ((kind == NormKind::Layer) as u32) << 2;
        let p = p
            .flags(flags)
            .scalar(0, eps as f32)
            .extra(2, w.as_ref().map_or(0, |w| w.offset() as u32))
            .extra(3, b.as_ref().map_or(0, |b| b.offset() as u32));
        // Absent operands are bound to a buffer the kernel then never touches.
        let wb = w.as_ref().map_or(sx.buffer(), |w| w.buffer());
        let bb = b.as_ref().map_or(sx.buffer(), |b| b.buffer());
        let mb = mean.as_ref().map_or(rstd.buffer(), |m| m.buffer());
        self.run(
            &Kernel::new(Family::Norm, "norm_fwd"),
            &p,
            &[(1, sx.buffer()), (2, wb), (3, bb), (4, y.buffer()), (5, mb), (6, rstd.buffer())],
            grid2(self, rows),
        )?;
        Ok(NormOut { y: Box::new(y), mean: mean.map(|m| Box::new(m) as _), rstd: Box::new(rstd) })
    }

    pub(crate) fn norm_grad_view(&self, a: NormGradInputs<'_>) -> Result<NormGrads> {
        let NormGradInputs { kind, x, weight, has_bias, mean, rstd, grad } = a;
        let op = "norm_grad";
        self.rows_check(op, &[x, grad, rstd])?;
        let (sx, sg) = (self.storage_of(op, x)?, self.storage_of(op, grad)?);
        let w = weight.map(|w| self.dense(op, w)).transpose()?;
        let layer = kind == NormKind::Layer;
        let mean = if layer {
            Some(self.dense(op, mean.ok_or_else(|| Error::invalid(op, "LayerNorm backward needs the saved mean"))?)?)
        } else {
            None
        };
        let rs = self.dense(op, rstd)?;
        let (rows, cols, p) = rows_params(&[x.layout, grad.layout]);
        let flags = w.is_some() as u32 | (has_bias as u32) << 1 | (layer as u32) << 2;
        let gs = if grad.layout.rank() == 0 { 1 } else { *grad.layout.strides().last().unwrap() };
        let p = p
            .flags(flags)
            .offset(2, mean.as_ref().map_or(0, |m| m.offset()))
            .offset(3, rs.offset())
            .scalar(2, f32::from_bits(gs as u32))
            .extra(2, w.as_ref().map_or(0, |w| w.offset() as u32));
        let wb = w.as_ref().map_or(sx.buffer(), |w| w.buffer());
        let mb = mean.as_ref().map_or(rs.buffer(), |m| m.buffer());
        let dx = self.output(op, rows * cols, DType::F32)?;
        self.run(
            &Kernel::new(Family::Norm, "norm_bwd_dx"),
            &p,
            &[(1, sx.buffer()), (2, wb), (4, dx.buffer()), (7, sg.buffer()), (8, mb), (9, rs.buffer())],
            grid2(self, rows),
        )?;
        if w.is_none() && !has_bias {
            return Ok(NormGrads { dx: Box::new(dx), dweight: None, dbias: None });
        }
        // Column sums over rows: partials per chunk of rows, then a reduction over chunks.
        let per = 64usize;
        let chunks = rows.div_ceil(per).max(1);
        let pdw = if w.is_some() { Some(self.output(op, chunks * cols, DType::F32)?) } else { None };
        let pdb = if has_bias { Some(self.output(op, chunks * cols, DType::F32)?) } else { None };
        let p = p.extra(3, per as u32);
        let dwb = pdw.as_ref().or(pdb.as_ref()).unwrap().buffer();
        let dbb = pdb.as_ref().or(pdw.as_ref()).unwrap().buffer();
        self.run(
            &Kernel::new(Family::Norm, "norm_bwd_params"),
            &p,
            &[(1, sx.buffer()), (7, sg.buffer()), (8, mb), (9, rs.buffer()), (10, dwb), (11, dbb)],
            [self.groups(chunks * cols), 1, 1],
        )?;
        let sum_chunks = |s: GpuStorage| -> Result<GpuStorage> {
            if rows == 0 {
                return self.fill(cols, DType::F32, 0.0);
            }
            let l = Layout::contiguous([chunks, cols]);
            self.reduce_view(plies_core::ReduceOp::Sum, View::new(&s, &l), &[0])
        };
        Ok(NormGrads {
            dx: Box::new(dx),
            dweight: pdw.map(sum_chunks).transpose()?.map(|s| Box::new(s) as _),
            dbias: pdb.map(sum_chunks).transpose()?.map(|s| Box::new(s) as _),
        })
    }

    fn ce_params(&self, logits: View, opts: &CrossEntropyOpts) -> (usize, usize, Params) {
        let (rows, cols, p) = rows_params(&[logits.layout]);
        let ignore = i32::try_from(opts.ignore_index).ok();
        let p = p
            .flags(ignore.is_some() as u32)
            .extra(2, ignore.unwrap_or(0) as u32)
            .scalar(0, opts.label_smoothing as f32);
        (rows, cols, p)
    }

    pub(crate) fn cross_entropy_view(
        &self,
        logits: View,
        targets: View,
        opts: CrossEntropyOpts,
    ) -> Result<(GpuStorage, GpuStorage)> {
        let op = "cross_entropy";
        self.float_only(op, logits.dtype())?;
        if targets.dtype() != DType::I32 {
            return Err(Error::invalid(op, format!("targets must be i32, got {}", targets.dtype())));
        }
        let sx = self.storage_of(op, logits)?;
        let t = self.dense(op, targets)?;
        let (rows, _, p) = self.ce_params(logits, &opts);
        let loss = self.output(op, rows, DType::F32)?;
        let lse = self.output(op, rows, DType::F32)?;
        let p = p.offset(1, t.offset());
        self.run_checked(
            &Kernel::new(Family::CrossEntropy, "ce_fwd"),
            &p,
            &[(1, sx.buffer()), (2, t.buffer()), (6, loss.buffer()), (7, lse.buffer())],
            grid2(self, rows),
        )?;
        Ok((loss, lse))
    }

    pub(crate) fn cross_entropy_grad_view(
        &self,
        logits: View,
        targets: View,
        lse: View,
        grad: View,
        opts: CrossEntropyOpts,
    ) -> Result<GpuStorage> {
        let op = "cross_entropy_grad";
        self.rows_check(op, &[logits, lse, grad])?;
        let sx = self.storage_of(op, logits)?;
        let t = self.dense(op, targets)?;
        let l = self.dense(op, lse)?;
        let g = self.dense(op, grad)?;
        let (rows, cols, p) = self.ce_params(logits, &opts);
        let out = self.output(op, rows * cols, DType::F32)?;
        let p = p.offset(1, t.offset()).offset(2, l.offset()).offset(3, g.offset());
        self.run_checked(
            &Kernel::new(Family::CrossEntropy, "ce_bwd"),
            &p,
            &[(1, sx.buffer()), (2, t.buffer()), (3, l.buffer()), (4, g.buffer()), (5, out.buffer())],
            [self.groups(rows * cols), 1, 1],
        )?;
        Ok(out)
    }

    pub(crate) fn adamw_view(
        &self,
        param: View,
        grad: View,
        m: View,
        v: View,
        hp: AdamWStep,
    ) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
        let op = "adamw";
        for x in [param, grad, m, v] {
            self.float_only(op, x.dtype())?;
        }
        let d: Vec<_> = [param, grad, m, v].into_iter().map(|x| self.dense(op, x)).collect::<Result<_>>()?;
        let n = param.layout.elem_count();
        let bc1 = 1.0 - hp.beta1.powi(hp.step as i32);
        let bc2 = 1.0 - hp.beta2.powi(hp.step as i32);
        let mut p = Params::new(n)
            .scalar(0, hp.beta1 as f32)
            .scalar(1, hp.beta2 as f32)
            .scalar(2, hp.lr as f32)
            .scalar(3, hp.eps as f32)
            .extra(0, ((1.0 - hp.lr * hp.weight_decay) as f32).to_bits())
            .extra(1, ((1.0 / bc1) as f32).to_bits())
            .extra(2, ((1.0 / bc2.sqrt()) as f32).to_bits());
        for (k, x) in d.iter().enumerate() {
            p = p.offset(k, x.offset());
        }
        let (po, mo, vo) =
            (self.output(op, n, DType::F32)?, self.output(op, n, DType::F32)?, self.output(op, n, DType::F32)?);
        self.run(
            &Kernel::new(Family::AdamW, "adamw"),
            &p,
            &[
                (1, d[0].buffer()),
                (2, d[1].buffer()),
                (3, d[2].buffer()),
                (4, d[3].buffer()),
                (5, po.buffer()),
                (6, mo.buffer()),
                (7, vo.buffer()),
            ],
            [self.groups(n), 1, 1],
        )?;
        Ok((po, mo, vo))
    }
}

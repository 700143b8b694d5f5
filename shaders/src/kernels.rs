//! The WGSL sources, one file per kernel family, and the cache of compiled pipelines.
//! A family's module is `prelude + op constants + common.wgsl + <family>.wgsl`; the prelude carries
//! compile-time choices (element type aliases, tile sizes), so one source serves several
//! variants. Each (family, prelude, entry point) is compiled once per device, with an
//! explicit layout of the bindings its dispatches bind (see bindings.rs).

use crate::bindings::{layout_entries, storage_access};
use plies_core::{Device, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const COMMON: &str = include_str!("wgsl/common.wgsl");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Copy,
    Unary,
    Binary,
    Reduce,
    Matmul,
    Softmax,
    Norm,
    CrossEntropy,
    Index,
    Random,
    AdamW,
}

impl Family {
    pub(crate) fn source(self) -> &'static str {
        match self {
            Family::Copy => include_str!("wgsl/copy.wgsl"),
            Family::Unary => include_str!("wgsl/unary.wgsl"),
            Family::Binary => include_str!("wgsl/binary.wgsl"),
            Family::Reduce => include_str!("wgsl/reduce.wgsl"),
            Family::Matmul => include_str!("wgsl/matmul.wgsl"),
            Family::Softmax => include_str!("wgsl/softmax.wgsl"),
            Family::Norm => include_str!("wgsl/norm.wgsl"),
            Family::CrossEntropy => include_str!("wgsl/cross_entropy.wgsl"),
            Family::Index => include_str!("wgsl/index.wgsl"),
            Family::Random => include_str!("wgsl/random.wgsl"),
            Family::AdamW => include_str!("wgsl/adamw.wgsl"),
        }
    }

    /// Declarations generated from core's op tables (`OP_SILU`, `BIN_ADD`, the GELU
    /// constants), so that the shaders' switches name their ops instead of numbering them.
    pub(crate) fn constants(self) -> String {
        match self {
            Family::Unary => plies_core::UnaryOp::wgsl_constants(),
            Family::Binary => plies_core::BinaryOp::wgsl_constants(),
            _ => String::new(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Copy => "copy",
            Family::Unary => "unary",
            Family::Binary => "binary",
            Family::Reduce => "reduce",
            Family::Matmul => "matmul",
            Family::Softmax => "softmax",
            Family::Norm => "norm",
            Family::CrossEntropy => "cross_entropy",
            Family::Index => "index",
            Family::Random => "random",
            Family::AdamW => "adamw",
        }
    }
}

/// A kernel to run: family, entry point and prelude.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Kernel {
    pub family: Family,
    pub entry: &'static str,
    pub prelude: String,
}

impl Kernel {
    pub(crate) fn new(family: Family, entry: &'static str) -> Self {
        Kernel { family, entry, prelude: String::new() }
    }

    pub(crate) fn with(mut self, prelude: impl Into<String>) -> Self {
        self.prelude = prelude.into();
        self
    }
}

/// A compiled entry point with its bind group layout and the bindings (sorted) that
/// layout holds.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub bindings: Arc<[u32]>,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<(Family, String), wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Kernel, Compiled>>,
    /// Held while compiling, so that threads asking for the same kernel at once wait for
    /// one compilation instead of each running their own (slow on software adapters).
    compiling: Mutex<()>,
}

impl PipelineCache {
    pub(crate) fn compiled(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }

    /// The pipeline of `k`, compiled on first use for a layout of `bindings` (sorted,
    /// binding 0 first): every dispatch of a kernel binds the same set.
    pub(crate) fn get(&self, device: &wgpu::Device, dev: Device, k: &Kernel, bindings: &[u32]) -> Result<Compiled> {
        let found = self.pipelines.lock().unwrap().get(k).cloned();
        if let Some(p) = found {
            if *p.bindings != *bindings {
                return Err(Error::Backend {
                    device: dev,
                    msg: format!(
                        "{}::{} bound at {bindings:?}, but its layout holds {:?}",
                        k.family.name(),
                        k.entry,
                        p.bindings
                    ),
                });
            }
            return Ok(p);
        }
        let _one_at_a_time = self.compiling.lock().unwrap();
        let compiled_meanwhile = self.pipelines.lock().unwrap().contains_key(k);
        if compiled_meanwhile {
            drop(_one_at_a_time);
            return self.get(device, dev, k, bindings);
        }
        let fail = |what: &str, e: wgpu::Error| Error::Backend {
            device: dev,
            msg: format!("compiling {}::{} ({what}): {e}", k.family.name(), k.entry),
        };
        let module = {
            let mut modules = self.modules.lock().unwrap();
            match modules.get(&(k.family, k.prelude.clone())) {
                Some(m) => m.clone(),
                None => {
                    let src = format!("{}\n{}\n{}\n{}", k.prelude, k.family.constants(), COMMON, k.family.source());
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(k.family.name()),
                        source: wgpu::ShaderSource::Wgsl(src.into()),
                    });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(fail("module", e));
                    }
                    modules.insert((k.family, k.prelude.clone()), m.clone());
                    m
                }
            }
        };
        let access = storage_access(&format!("{COMMON}\n{}", k.family.source()));
        let entries =
            layout_entries(k.family, &access, k.entry, bindings).map_err(|msg| Error::Backend { device: dev, msg })?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(k.entry), entries: &entries });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(k.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(k.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(k.entry),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fail("pipeline", e));
        }
        let c = Compiled { layout, pipeline: p, bindings: bindings.into() };
        self.pipelines.lock().unwrap().insert(k.clone(), c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plies_core::{BINARY_OPS, UNARY_OPS};

    /// The text of WGSL function `name`, up to the next top-level item.
    fn body<'a>(src: &'a str, name: &str) -> &'a str {
        let start = src.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("no fn {name}"));
        let rest = &src[start..];
        let end = rest[1..].find("\nfn ").or_else(|| rest[1..].find("\n@compute")).map_or(rest.len(), |e| e + 1);
        &rest[..end]
    }

    /// Without a case an op falls through to `default` and yields NaN, which only the GPU
    /// suites (skipped without an adapter) would notice: check the switches by name here.
    #[test]
    fn every_unary_op_has_both_wgsl_cases() {
        let src = Family::Unary.source();
        for f in ["unary_f", "unary_df"] {
            let b = body(src, f);
            for op in UNARY_OPS {
                let case = format!("OP_{}", op.name.to_uppercase());
                assert!(
                    b.contains(&format!("case {case}:")) || b.contains(&format!("case {case},")),
                    "unary.wgsl: `{f}` has no `case {case}` for op `{}`",
                    op.name
                );
            }
        }
    }

    #[test]
    fn every_binary_op_has_float_and_int_wgsl_cases() {
        let src = Family::Binary.source();
        for f in ["binary_f", "binary_i"] {
            let b = body(src, f);
            for op in BINARY_OPS {
                let case = format!("BIN_{}", op.name().to_uppercase());
                assert!(b.contains(&format!("case {case}:")), "binary.wgsl: `{f}` has no `case {case}`");
            }
        }
    }

    /// Every family's module, as the backend assembles it (generated constants included),
    /// parses and validates: an undeclared `OP_` name or a typo fails here, without a GPU.
    /// Families whose kernels always take a prelude (matmul, reduce) are compiled by the GPU
    /// suites with each of theirs.
    #[test]
    fn every_plain_module_parses_and_validates() {
        for family in [
            Family::Copy,
            Family::Unary,
            Family::Binary,
            Family::Softmax,
            Family::Norm,
            Family::CrossEntropy,
            Family::Index,
            Family::Random,
            Family::AdamW,
        ] {
            let src = format!("\n{}\n{}\n{}", family.constants(), COMMON, family.source());
            let module = naga::front::wgsl::parse_str(&src)
                .unwrap_or_else(|e| panic!("{}.wgsl: {}", family.name(), e.emit_to_string(&src)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}.wgsl does not validate: {e:?}", family.name()));
        }
    }
}

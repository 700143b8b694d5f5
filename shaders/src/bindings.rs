//! Bind groups reused across dispatches.
//!
//! Creating a bind group per dispatch is the largest host cost of recording one (on
//! lavapipe about as much as a small kernel's whole run). So pipelines get explicit layouts
//! whose parameter binding (0) takes a dynamic offset into the batch's parameter arena:
//! a bind group then depends only on the layout and the buffers bound, and one made for a
//! set of buffers serves every later dispatch of that kernel on them. Pool buffers come back
//! in the same order step after step, so a training loop finds its bind groups again.
//!
//! A cached bind group keeps its buffers alive; a buffer the pool destroys is forgotten
//! first (`forget`), and past `MAX_ENTRIES` the cache starts over.

use crate::kernels::Family;
use std::collections::HashMap;
use std::num::NonZeroU64;

/// Bind groups kept at most (a GPT-2-small step uses a few thousand).
const MAX_ENTRIES: usize = 16384;

/// The read-only flag of each `@group(0) @binding(N) var<storage, MODE>` in `src`.
pub(crate) fn storage_access(src: &str) -> HashMap<u32, bool> {
    let mut out = HashMap::new();
    for line in src.lines() {
        let Some(rest) = line.trim_start().strip_prefix("@group(0) @binding(") else { continue };
        let Some((num, decl)) = rest.split_once(')') else { continue };
        let Ok(binding) = num.trim().parse::<u32>() else { continue };
        let Some(mode) = decl.split_once("var<storage,").and_then(|(_, m)| m.split_once('>')).map(|(m, _)| m.trim())
        else {
            continue;
        };
        out.insert(binding, mode == "read");
    }
    out
}

/// The layout of a kernel of `family` that binds exactly `bindings` (sorted), binding 0
/// (the parameter block) with a dynamic offset.
pub(crate) fn layout_entries(
    family: Family,
    access: &HashMap<u32, bool>,
    entry: &str,
    bindings: &[u32],
) -> Result<Vec<wgpu::BindGroupLayoutEntry>, String> {
    bindings
        .iter()
        .map(|&b| {
            let read_only = *access
                .get(&b)
                .ok_or_else(|| format!("{}::{entry} binds {b}, which the WGSL does not declare", family.name()))?;
            Ok(wgpu::BindGroupLayoutEntry {
                binding: b,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: b == 0,
                    // Every binding is an array of 4-byte scalars; stating the size spares
                    // wgpu checking the bound sizes at each dispatch.
                    min_binding_size: NonZeroU64::new(4),
                },
                count: None,
            })
        })
        .collect()
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    layout: wgpu::BindGroupLayout,
    /// Bytes of the arena the parameter binding covers.
    window: u64,
    /// (binding, buffer) for every binding but 0, sorted by binding.
    buffers: Vec<(u32, wgpu::Buffer)>,
}

/// Bind groups by layout and buffers; `enabled = false` makes one per dispatch.
pub(crate) struct BindCache {
    map: HashMap<Key, wgpu::BindGroup>,
    pub(crate) enabled: bool,
    pub(crate) created: u64,
}

impl BindCache {
    pub(crate) fn new(enabled: bool) -> Self {
        BindCache { map: HashMap::new(), enabled, created: 0 }
    }

    /// The bind group for `buffers` (sorted by binding) with the parameter window at the
    /// start of `arena`; the dispatch passes the block's offset as the dynamic offset.
    pub(crate) fn get(
        &mut self,
        device: &wgpu::Device,
        layout: &wgpu::BindGroupLayout,
        arena: &wgpu::Buffer,
        window: u64,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let make = |created: &mut u64| {
            *created += 1;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: arena,
                    offset: 0,
                    size: NonZeroU64::new(window),
                }),
            }];
            entries.extend(
                buffers.iter().map(|&(binding, b)| wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries })
        };
        if !self.enabled {
            return make(&mut self.created);
        }
        let key =
            Key { layout: layout.clone(), window, buffers: buffers.iter().map(|&(n, b)| (n, b.clone())).collect() };
        if let Some(bg) = self.map.get(&key) {
            return bg.clone();
        }
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        let bg = make(&mut self.created);
        self.map.insert(key, bg.clone());
        bg
    }

    /// Drop the bind groups that hold any of `doomed` (buffers about to be destroyed).
    pub(crate) fn forget(&mut self, doomed: &[wgpu::Buffer]) {
        if doomed.is_empty() || self.map.is_empty() {
            return;
        }
        self.map.retain(|k, _| !k.buffers.iter().any(|(_, b)| doomed.contains(b)));
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_are_read_from_the_declarations() {
        let src = "@group(0) @binding(0) var<storage, read> prm: array<u32>;\n\
                   // @group(0) @binding(9) is not a declaration\n\
                   @group(0) @binding(3) var<storage, read_write> out: array<f32>;\n\
                   @group(0) @binding(15) var<storage, read_write> status: array<atomic<u32>>;";
        let a = storage_access(src);
        assert_eq!(a.len(), 3);
        assert_eq!((a[&0], a[&3], a[&15]), (true, false, false));
    }

    #[test]
    fn every_family_declares_its_bindings() {
        let common = storage_access(include_str!("wgsl/common.wgsl"));
        assert_eq!((common.get(&0), common.get(&15)), (Some(&true), Some(&false)));
        let e = layout_entries(Family::Copy, &common, "fill", &[0, 2]).unwrap_err();
        assert!(e.contains("copy::fill binds 2"), "{e}");
    }
}

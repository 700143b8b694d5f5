//! One conformance suite for every backend. Each case is written once as
//! `fn(Device) -> Result<()>`; `device_tests!` instantiates it for the CPU backend and for
//! the GPU (adapter 0) when one is usable. A case runs its op in f32 on the device and in
//! f64 on the CPU and compares, so the CPU instance checks the f32 kernels too. Shapes are
//! odd sizes that are no multiple of any tile, with size-1 dims, broadcasts and permuted,
//! narrowed views; gradients are compared through autodiff on both sides.

#[path = "gpu_common/mod.rs"]
mod common;

/// `device_tests!(a, b)` makes `cpu::a`, `cpu::b`, `gpu::a`, `gpu::b` tests from the
/// case functions `a` and `b` of the enclosing module.
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        mod cpu {
            $(
                #[test]
                fn $name() {
                    super::$name(plies::core::Device::Cpu).unwrap();
                }
            )*
        }
        mod gpu {
            $(
                #[test]
                fn $name() {
                    if let Some(d) = crate::common::gpu() {
                        super::$name(d).unwrap();
                    }
                }
            )*
        }
    };
}

#[path = "conformance/elementwise.rs"]
mod elementwise;
#[path = "conformance/fused.rs"]
mod fused;
#[path = "conformance/index.rs"]
mod index;
#[path = "conformance/matmul.rs"]
mod matmul;
#[path = "conformance/random.rs"]
mod random;
#[path = "conformance/random_shapes.rs"]
mod random_shapes;
#[path = "conformance/reduce.rs"]
mod reduce;

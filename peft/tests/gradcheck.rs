//! LoRA, DoRA and LoRA embeddings against finite differences (proptest over sizes, ranks
//! and seeds; f64 on the CPU), the pattern of nn/tests/gradcheck.rs.

use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, DType, Device, Distribution, GradCheck};
use plies_nn::gradcheck::check_module;
use plies_nn::layers::*;
use plies_nn::{Init, Layer, Module, Scope};
use plies_peft::lora::{InitLora, Lora, LoraConfig};
use proptest::prelude::*;

fn randn(shape: &[usize], seed: u64) -> Array {
    let key = Rng::new(seed).next_key();
    Array::random(shape, Distribution::Normal { mean: 0.0, std: 1.0 }, key, DType::F64, Device::Cpu).unwrap()
}

struct Holder<M: Module + 'static>(M);

impl<M: Module + 'static> Module for Holder<M> {
    fn visit(&self, s: &mut Scope<'_>) {
        s.child("m", &self.0);
    }
}

fn config(r: usize, dora: bool, rslora: bool) -> LoraConfig {
    // Random A and B, so B's and A's gradients are both exercised away from B = 0.
    LoraConfig {
        init_lora_weights: InitLora::Random,
        use_dora: dora,
        use_rslora: rslora,
        ..LoraConfig::new(r, 3.0, &["m"])
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn lora_linear(n_in in 1usize..5, n_out in 1usize..5, r in 1usize..4, rows in 1usize..4, rslora: bool, seed in 0u64..1000) {
        let mut init = Init::new(seed).with_dtype(DType::F64);
        let h = Holder(Linear::new(&mut init, n_in, n_out, true));
        let _l = Lora::new(&h, config(r, false, rslora), &mut init).unwrap();
        // A, B and the input train; the frozen base is not a checked parameter.
        assert_eq!(h.trainable_parameters().len(), 2);
        check_module(&h, &[randn(&[rows, 2, n_in], seed + 1)], |t| h.0.try_forward(&t[0]), GradCheck::default(), usize::MAX).unwrap();
    }

    #[test]
    fn dora_linear(n_in in 1usize..5, n_out in 1usize..5, r in 1usize..4, rows in 1usize..4, seed in 0u64..1000) {
        let mut init = Init::new(seed).with_dtype(DType::F64);
        let h = Holder(Linear::new(&mut init, n_in, n_out, true));
        let l = Lora::new(&h, config(r, true, false), &mut init).unwrap();
        let u = l.layers()[0].active().unwrap();
        u.magnitude.as_ref().unwrap().set_value(randn(&[n_out], seed + 2).abs().unwrap()).unwrap();
        // The row norm is detached by design, so A's and B's gradients are not the
        // derivative of the forward (tests/lora.rs checks them by hand); the magnitude's and
        // the input's are.
        u.a.set_requires_grad(false);
        u.b.set_requires_grad(false);
        check_module(&h, &[randn(&[rows, n_in], seed + 1)], |t| h.0.try_forward(&t[0]), GradCheck::default(), usize::MAX).unwrap();
    }

    #[test]
    fn lora_embedding(num in 2usize..6, dim in 1usize..4, r in 1usize..4, seed in 0u64..1000) {
        let mut init = Init::new(seed).with_dtype(DType::F64);
        let h = Holder(Embedding::new(&mut init, num, dim));
        let l = Lora::new(&h, config(r, false, false), &mut init).unwrap();
        l.layers()[0].active().unwrap().a.set_value(randn(&[r, num], seed + 3)).unwrap();
        let ids: Vec<i32> = (0..6).map(|i| ((i * 7 + seed as usize) % num) as i32).collect();
        let x = Array::from_slice(&ids, [2, 3], Device::Cpu).unwrap();
        check_module(&h, &[x], |t| h.0.try_forward(&t[0]), GradCheck::default(), usize::MAX).unwrap();
    }

    #[test]
    fn lora_in_attention(seed in 0u64..1000, r in 1usize..3) {
        let mut init = Init::new(seed).with_dtype(DType::F64);
        let h = Holder(CausalSelfAttention::new(&mut init, 4, 2, 0.0, 1.0));
        let c = LoraConfig { target_modules: plies_peft::lora::ModuleMatch::names(&["qkv", "proj"]), ..config(r, false, false) };
        let _l = Lora::new(&h, c, &mut init).unwrap();
        check_module(&h, &[randn(&[1, 3, 4], seed + 1)], |t| h.0.try_forward(&t[0]), GradCheck::default(), usize::MAX).unwrap();
    }
}

//! The local trainer keeps no graph across layers: after each layer's update, no graph node
//! that the step created is alive. One test in this binary, because the node counter is
//! process-wide and tests in one binary run on parallel threads.

use plies_autodiff::{live_nodes, DType, Device, Tensor};
use plies_nn::layers::Activation;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, Module, NamedParam};
use plies_peft::tpsgd::{backprop_step, LocalConfig, LocalNet, LocalTrainer};

fn adam(p: Vec<NamedParam>) -> plies_autodiff::Result<Box<dyn Optimizer>> {
    Ok(Box::new(Adam::new(p, AdamConfig::adam(1e-3))?))
}

fn inputs(shape: &[usize]) -> (Tensor, Tensor) {
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec((0..n).map(|i| ((i * 37 % 101) as f32) / 101.0).collect::<Vec<f32>>(), shape, Device::Cpu);
    let y = Tensor::from_vec((0..shape[0]).map(|i| (i % 10) as i32).collect::<Vec<i32>>(), [shape[0]], Device::Cpu);
    (x, y)
}

#[test]
fn no_graph_node_outlives_a_layers_update() {
    // The counter sees graphs: a recorded forward holds nodes until its tensors drop.
    let before = live_nodes();
    let w = Tensor::param(Tensor::ones([3, 2], DType::F32, Device::Cpu).value());
    let x = Tensor::ones([4, 3], DType::F32, Device::Cpu);
    let y = x.matmul(&w).tanh().sum_all();
    assert_eq!(live_nodes() - before, 3, "matmul, tanh, sum");
    y.backward().unwrap();
    // Backward takes each node's inputs and saved values: only the root's own node is left.
    assert_eq!(live_nodes() - before, 1, "after backward");
    drop(y);
    assert_eq!(live_nodes(), before);

    let nets: Vec<(&str, LocalNet, Vec<usize>)> = vec![
        ("mlp", LocalNet::mlp(&mut Init::new(1), &[64, 16, 16, 16, 10], Activation::Tanh).unwrap(), vec![6, 64]),
        ("cnn", LocalNet::cnn(&mut Init::new(2), 1, (8, 8), &[4, 8], 10, Activation::Relu).unwrap(), vec![6, 1, 8, 8]),
        ("rnn", LocalNet::rnn(&mut Init::new(3), 8, 12, 10), vec![6, 8, 8]),
    ];
    for (name, net, shape) in &nets {
        let (x, y) = inputs(shape);
        for config in [LocalConfig::tpsgd(4), LocalConfig::drtp(4)] {
            let mut trainer = LocalTrainer::new(net, 10, config, &mut adam).unwrap();
            let start = live_nodes();
            for _ in 0..3 {
                let r = trainer.step(net, &x, &y).unwrap();
                assert_eq!(
                    r.nodes_after_update,
                    vec![0; net.depth()],
                    "{name} {:?}: nodes after each layer",
                    config.rule
                );
                assert!(r.task_loss.is_finite());
            }
            assert_eq!(live_nodes(), start, "{name} {:?}", config.rule);
        }
        // Backprop over the same net holds a graph over every layer until its loss drops:
        // its forward alone leaves nodes alive, which the local step never does past a layer.
        let mut opt = Adam::new(net.named_parameters(), AdamConfig::adam(1e-3)).unwrap();
        let start = live_nodes();
        let logits = net.forward(&x);
        assert!(live_nodes() - start > net.depth(), "{name}: backprop's graph spans the layers");
        drop(logits);
        let r = backprop_step(net, &mut opt, &x, &y).unwrap();
        assert_eq!(r.nodes_after_update, vec![0]);
        assert_eq!(live_nodes(), start);
    }
}

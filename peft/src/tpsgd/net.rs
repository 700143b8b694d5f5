//! `LocalNet`: the chain of hidden stages and the head that the local trainer trains stage by
//! stage. It is an ordinary `Module` and `Layer` too, so the same network (same seed, same
//! initial weights) also trains end to end with backprop, evaluates, and saves.

use super::projection::target_range;
use plies_autodiff::{Error, Result, Tensor};
use plies_nn::layers::{Activation, Conv2d, Flatten, Linear, MaxPool2d, Rnn};
use plies_nn::{Init, Layer, Module, Scope};

/// A hidden stage: the unit that receives one local signal.
pub enum Hidden {
    /// `after(act(layer(x)))`. The local signal acts on `act(layer(x))`, `[b, H]` or a
    /// feature map `[b, H, ..]` (one target per channel, broadcast over the map); `after`
    /// holds parameter-free layers (pooling, flatten) applied to the detached activation.
    FeedForward { layer: Box<dyn Layer>, act: Activation, after: Vec<Box<dyn Layer>> },
    /// An Elman RNN over `[b, t, in]`; the stage's output is its last hidden state `[b, H]`.
    /// Locally trained, each step's hidden state gets the signal and the previous state is
    /// a constant.
    Recurrent(Rnn),
}

impl Hidden {
    /// A Linear (or any layer) followed by an activation.
    pub fn dense(layer: impl Layer + 'static, act: Activation) -> Hidden {
        Hidden::FeedForward { layer: Box::new(layer), act, after: Vec::new() }
    }

    /// Append a parameter-free layer after the activation (builder style).
    pub fn then(self, next: impl Layer + 'static) -> Hidden {
        match self {
            Hidden::FeedForward { layer, act, mut after } => {
                after.push(Box::new(next));
                Hidden::FeedForward { layer, act, after }
            }
            Hidden::Recurrent(r) => Hidden::Recurrent(r),
        }
    }

    /// The nonlinearity whose output gets the local signal.
    pub fn activation(&self) -> Activation {
        match self {
            Hidden::FeedForward { act, .. } => *act,
            Hidden::Recurrent(r) => r.nonlinearity,
        }
    }

    /// Where tpSGD's targets for this stage lie (see [`target_range`]).
    pub fn target_range(&self) -> (f64, f64) {
        target_range(self.activation())
    }
}

impl Module for Hidden {
    fn visit(&self, s: &mut Scope<'_>) {
        match self {
            // The stage's own layer names its parameters directly (`hidden.0.weight`).
            Hidden::FeedForward { layer, after, .. } => {
                layer.visit(s);
                for (j, a) in after.iter().enumerate() {
                    s.child(&format!("after.{j}"), a.as_ref());
                }
            }
            Hidden::Recurrent(r) => r.visit(s),
        }
    }
}

impl Layer for Hidden {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Hidden::FeedForward { layer, act, after } => {
                let mut h = act.try_apply(&layer.try_forward(x)?)?;
                for a in after {
                    h = a.try_forward(&h)?;
                }
                Ok(h)
            }
            Hidden::Recurrent(r) => Ok(r.try_forward_with(x, None)?.1),
        }
    }
}

/// Hidden stages, then a head that outputs class logits. Stage i is layer i and is named
/// `hidden.{i}`; the head is layer `hidden.len()`, named `head`.
pub struct LocalNet {
    pub hidden: Vec<Hidden>,
    pub head: Box<dyn Layer>,
}

impl LocalNet {
    pub fn new(hidden: Vec<Hidden>, head: impl Layer + 'static) -> LocalNet {
        LocalNet { hidden, head: Box::new(head) }
    }

    /// An MLP `sizes = [in, hidden.., classes]`: every Linear but the last followed by `act`
    /// (PyTorch's default initialisation, the same draws as `nn::layers::Mlp`).
    pub fn mlp(init: &mut Init, sizes: &[usize], act: Activation) -> Result<LocalNet> {
        if sizes.len() < 2 {
            return Err(Error::invalid("LocalNet::mlp", format!("needs input and output sizes, got {sizes:?}")));
        }
        let mut hidden = Vec::new();
        for w in sizes[..sizes.len() - 1].windows(2) {
            hidden.push(Hidden::dense(Linear::new(init, w[0], w[1], true), act));
        }
        let n = sizes.len();
        Ok(LocalNet::new(hidden, Linear::new(init, sizes[n - 2], sizes[n - 1], true)))
    }

    /// A CNN on `[b, in_ch, h, w]` images: for each entry of `channels` a 3x3 convolution
    /// (padding 1), `act` and 2x2 max pooling, then flatten and a Linear head. The local
    /// target of a stage is one value per channel, broadcast over its map (before pooling).
    pub fn cnn(
        init: &mut Init,
        in_ch: usize,
        image: (usize, usize),
        channels: &[usize],
        classes: usize,
        act: Activation,
    ) -> Result<LocalNet> {
        let scale = 1usize << channels.len();
        if channels.is_empty() || !image.0.is_multiple_of(scale) || !image.1.is_multiple_of(scale) {
            return Err(Error::invalid(
                "LocalNet::cnn",
                format!(
                    "{} pooled stages need images whose sides are multiples of {scale}, got {image:?}",
                    channels.len()
                ),
            ));
        }
        let mut hidden = Vec::new();
        let mut c_in = in_ch;
        for (i, &c) in channels.iter().enumerate() {
            let mut stage = Hidden::dense(Conv2d::new(init, c_in, c, 3, 1, 1), act).then(MaxPool2d::new(2));
            if i + 1 == channels.len() {
                stage = stage.then(Flatten::default());
            }
            hidden.push(stage);
            c_in = c;
        }
        let flat = c_in * (image.0 / scale) * (image.1 / scale);
        Ok(LocalNet::new(hidden, Linear::new(init, flat, classes, true)))
    }

    /// An Elman RNN (tanh) reading `[b, t, input]` sequences, and a Linear head on its last
    /// hidden state.
    pub fn rnn(init: &mut Init, input: usize, hidden: usize, classes: usize) -> LocalNet {
        let rnn = Rnn::new(init, input, hidden);
        LocalNet::new(vec![Hidden::Recurrent(rnn)], Linear::new(init, hidden, classes, true))
    }

    /// Hidden stages plus the head.
    pub fn depth(&self) -> usize {
        self.hidden.len() + 1
    }
}

impl Module for LocalNet {
    fn visit(&self, s: &mut Scope<'_>) {
        for (i, h) in self.hidden.iter().enumerate() {
            s.layer(&format!("hidden.{i}"), i, h);
        }
        s.layer("head", self.hidden.len(), self.head.as_ref());
    }
}

impl Layer for LocalNet {
    /// The whole network (with a graph spanning every layer when parameters need gradients).
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for stage in &self.hidden {
            h = stage.try_forward(&h)?;
        }
        self.head.try_forward(&h)
    }
}

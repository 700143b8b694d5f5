//! Layers. Each holds its parameters as `Tensor` leaves, implements `Module::visit` to name
//! them PyTorch-style, and `Layer::try_forward`.

mod activation;
mod attention;
mod conv;
mod dropout;
mod embedding;
mod linear;
mod mlp;
mod norm;
mod pool;
mod rnn;
mod sequential;
mod transformer;
mod window;

pub use activation::{Activation, Flatten};
pub use attention::CausalSelfAttention;
pub use conv::Conv2d;
pub use dropout::Dropout;
pub use embedding::{Embedding, EmbeddingAdapter};
pub use linear::{split_output, Linear, LinearAdapter};
pub use mlp::Mlp;
pub use norm::{LayerNorm, RmsNorm};
pub use pool::{AvgPool2d, MaxPool2d};
pub use rnn::{Gru, Rnn};
pub use sequential::Sequential;
pub use transformer::{Block, FeedForward, Gpt, GptConfig};
pub use window::Window;

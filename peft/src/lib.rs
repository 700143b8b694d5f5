//! plies-peft: which parameters train, and when. Layer-wise training methods built on
//! plies-nn's modules: low-rank adapters (LoRA, DoRA), layer selection (IST, RST, LISA),
//! layer-wise LoRA experts (MoLA), target-projection SGD (tpSGD, DRTP: local losses, no
//! end-to-end backprop) and layer-by-layer growth on a frozen glyph substrate.
//!
//! Each method is a module of its own; they share the layer index that every parameter of a
//! plies-nn `Module` carries.
//!
//! Adapters, as in HF PEFT (the adapter wraps the unchanged base layer):
//! - plies-nn knows only the traits `LinearAdapter` and `EmbeddingAdapter`: a layer with an
//!   adapter attached hands it the input and itself, and the adapter computes the output
//!   (`Linear::try_base` gives the unadapted one). The layers never learn which method is
//!   attached, and an adapter that is disabled or merged reports itself as a passthrough so
//!   the layer keeps its fast paths (attention's split qkv product).
//! - The implementations live here: [`lora::LoraLayer`] holds any number of named adapters of
//!   one base layer, one active; each is plain LoRA or DoRA (a magnitude vector on top of the
//!   same A and B), the variant chosen per adapter. Layer-wise LoRA experts (MoLA) are another
//!   `LinearAdapter` beside it, with the same naming and scaling conventions.
//! - An adapter's parameters are visited in its layer's scope under the names HF PEFT saves
//!   (`blocks.0.attn.qkv.lora_A.weight`), so freezing, layer indices, optimizers, byte counts
//!   and layer selection treat them as any other parameter of that layer.
//! - [`lora::Lora`] is the handle a training script keeps: it chooses the target modules by
//!   PEFT's rules, freezes the base, and switches, disables, scales, merges, saves and loads
//!   the adapters of every layer it attached to.

pub mod grow;
pub mod lora;
pub mod mola;
pub mod select;
pub mod tasks;
pub mod tpsgd;

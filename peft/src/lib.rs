//! plies-peft: which parameters train, and when. Layer-wise training methods built on
//! plies-nn's modules: low-rank adapters (LoRA, DoRA), layer selection (IST, RST, LISA),
//! layer-wise LoRA experts (MoLA), target-projection SGD (tpSGD, DRTP: local losses, no
//! end-to-end backprop) and layer-by-layer growth on a frozen glyph substrate.
//!
//! Each method is a module of its own; they share the layer index that every parameter of a
//! plies-nn `Module` carries.

pub mod tpsgd;

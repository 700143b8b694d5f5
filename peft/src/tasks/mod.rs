//! Reusable experiment tasks for the layer-wise methods: the committed Shakespeare text cut
//! into its works, a pretrained character GPT cached on disk, and the planted-teacher
//! distillation task (a teacher that differs from the base only in chosen blocks).

mod planted;
mod text;

pub use planted::{copy_gpt, eval_kl, kl_to_teacher, plant, Plant};
pub use text::{pretrained_gpt, shakespeare_works, Pretrain, Works};

//! MoLA (Gao et al., NAACL Findings 2025; reference code GCYZSL/MoLA `mola_lora_hacked.py`):
//! each target Linear of layer j holds E_j LoRA experts (rank r, scaling alpha/r, A
//! kaiming-uniform, B zero, dropout on the expert input) and a bias-free router `[E_j, in]`.
//!
//! ```text
//! pi = softmax(W_r x); (w, idx) = topk(pi, k); w <- w / sum(w)
//! h  = W0 x + sum_{e in idx} w_e (alpha/r) B_e A_e dropout(x)
//! ```
//!
//! Each expert runs only on the tokens routed to it (index_select, then one index_add of all
//! experts' rows back into the base output), so a layer's cost follows k, not E_j. The
//! per-layer balance loss `l_j = E_j sum_e f_e P_e` is 1 under uniform routing and enters the
//! training loss as `aux_loss_coef * sum_j l_j` ([`Mola::aux_loss`]).
//!
//! Files (`save_pretrained` / `from_pretrained`), in the LoRA files' layout: keys
//! `base_model.model.<path>.lora_router.weight` `[E, in]`,
//! `base_model.model.<path>.lora_A.<e>.weight` `[r, in]` and `...lora_B.<e>.weight` `[out, r]`
//! for e in 0..E (what PEFT's naming gives a per-expert ModuleList), and an
//! `adapter_config.json` with `peft_type` "MOLA", the LoRA fields, `experts` (the allocation
//! as given), `experts_per_layer` (resolved), `top_k` and `aux_loss_coef`.

mod config;
mod file;
mod layer;
mod model;

pub use config::{parse_allocation, MolaConfig};
pub use layer::{top_k, Expert, MolaLayer, Routing};
pub use model::Mola;

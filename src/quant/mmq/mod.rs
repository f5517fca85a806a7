//! MMQ: the multimodal mixture-of-quantization tokenizer (Xu et al., WSDM '26, arXiv
//! 2508.15281; NOTES.md §2), stage 1 — shared and modality-specific experts, each quantized
//! by its own cosine codebook, giving one token per expert.
//!
//! ```text
//! e = [e_1 ⊕ … ⊕ e_M]                         the modalities, side by side
//! z_{s,i} = E_{s,i}(e)                         i = 1..N_s   shared experts (ungated)
//! z_{m,i} = E_{m,i}(e_m)                       i = 1..N_m   specific experts of modality m
//! g_m     = softmax(MLP_m(e_m))                              gate over modality m's experts
//! c_t     = argmax_j cos(z_t, C_t[j]),  q_t = Ĉ_t[c_t]      one codebook per expert/token
//! ẑ_t     = ž_t + sg(q_t − ž_t)                              straight-through estimator
//! ẑ       = Σ_i ẑ_{s,i} + Σ_m Σ_i g_{m,i} ẑ_{m,i}
//! L_recon = ‖e − dec(ẑ)‖²,   L_aux = Σ_m ‖e_m − dec_m(Σ_i g_{m,i} ẑ_{m,i})‖²
//! L_ortho = Σ_groups ‖V̂ V̂ᵀ − I‖²_F                V̂: each expert's weights flattened, rows
//!                                                  L2-normalised; groups: shared, each modality
//! L       = α L_recon + β L_aux + γ L_ortho + Σ_t (‖sg(ž_t) − q_t‖² + β_c ‖ž_t − sg(q_t)‖²)
//! ```
//! where `ž` and `Ĉ` are the latents and codebook rows L2-normalised ([`MmqConfig::spherical`],
//! the default) or as they are.
//! with the paper's α = 12, β = 10, γ = 0.005 and N_s = N_m = 2 (so two modalities give an
//! ID of 6 tokens). Squared norms are per item, averaged over the batch.
//!
//! Where the paper is silent (NOTES.md §2.2, §6), semid chooses, and says so:
//! - **Codebook update.** The STE routes no gradient into the codebooks, and the paper names
//!   no other update; semid adds VQ-VAE's codebook and commitment terms (weights 1 and 0.25),
//!   initialises each codebook by k-means on its expert's latents of the first batch (cosine
//!   assignment, codes at the assigned latents' plain mean), and re-seeds codes left unused
//!   for 20 steps, as semid's RQ-VAE does.
//! - **Unit codes.** The paper's quantizer searches by cosine, so only directions decide codes.
//!   semid also quantizes to unit codes by default (latents and codes normalised before the VQ
//!   terms). With raw codes, as `z_q` might be read, the latents' norms grew about 2.5× in the
//!   first epochs on the synthetic data while the codes lagged: the quantization error rose
//!   ninefold, code use fell to about a third for several epochs and the reconstruction error
//!   spiked before dead-code re-seeding recovered it; unit codes trained steadily (after 12
//!   epochs: reconstruction error 0.43 vs 1.0–1.3, every token using 93–100 of 100 codes vs
//!   39–70). `spherical = false` keeps raw codes.
//! - **Per-expert codebooks** (the notes read "each expert is quantized independently" so).
//! - **Networks.** Each expert is one bias-free Linear map (the paper's `W_i`), the gates are
//!   one Linear layer plus softmax, the decoders are MLPs `latent → 512 → width`; the latent is
//!   256 wide. All are settings ([`MmqConfig`]).
//! - **Auxiliary decoders** read the gated sum of their modality's quantized experts.
//! - **Inputs.** The pipeline L2-normalises each modality's rows before concatenating
//!   (`joint.normalize`), as for PSRQ's joint input; the paper's encoders differ in scale,
//!   which its cosine quantizer answers and this answers too.
//! - **Decoding from codes alone** weighs each modality's experts by its gate averaged over the
//!   training items ([`Mmq::gate_means`]): an item's own gates come from its embeddings, not
//!   its ID. Metrics use the items' own gates ([`Tokenizer::input_reconstructions`]).
//!
//! Stage 2 (behaviour-aware fine-tuning with soft indexing) needs a downstream recommender and
//! is not part of this module.
//!
//! [`Tokenizer::input_reconstructions`]: crate::quant::tokenizer::Tokenizer::input_reconstructions

mod config;
mod model;
mod trainer;

pub use config::{
    aux_decoder_name, codebook_name, gate_mean_name, gate_name, Expert, Layout, MmqConfig,
    ModalitySpec,
};
pub use model::Mmq;
pub use trainer::{MmqStep, MmqTrainer};

use crate::kernels::codebook::Metric;
use crate::quant::cluster::MetricKind;

/// The search kernel's metric for a configured one.
fn kernel_metric(m: MetricKind) -> Metric {
    match m {
        MetricKind::L2 => Metric::L2,
        MetricKind::Cosine => Metric::Cosine,
    }
}

//! What a learned tokenizer records for behaviour-aware fine-tuning (MMQ's stage 2, NOTES.md
//! §2.3): per level the soft assignment over the codes and the hard code, which
//! [`Graph::soft_index`](crate::autograd::Graph::soft_index) turns into a downstream embedding
//! (forward: the hard code's row; backward: the soft assignment's gradient), and the
//! reconstruction terms that keep the tokenizer faithful to its input meanwhile.

use crate::autograd::Var;
use crate::tensor::Tensor;

/// A tokenizer's forward pass over some items, recorded for fine-tuning.
#[derive(Clone, Debug)]
pub struct SoftForward {
    /// Per level (token): `softmax(p / τ)` over its codes, `[items, k]`.
    pub soft: Vec<Var>,
    /// Per level: the code each item takes, U32 `[items]` (the argmax of `soft`, the code the
    /// tokenizer's own encoding gives).
    pub hard: Vec<Tensor>,
    /// The reconstruction error of the input through the hard codes (straight-through), as
    /// the tokenizer's stage-1 loss measures it (MMQ: the per-item squared error averaged over
    /// the items; RQ-VAE: the mean squared error per value), `[1]`.
    pub recon: Var,
    /// MMQ's per-modality auxiliary reconstruction errors, summed, `[1]` (none for RQ-VAE or
    /// without specific experts).
    pub aux: Option<Var>,
}

//! Soft indexing (IBQ; MMQ's stage 2, NOTES.md §2.3): a codebook lookup whose forward pass is
//! the hard code and whose backward pass is the soft assignment's, so a downstream loss
//! reaches the scores (and through them the encoder and the codebook) that chose the code.
//!
//! ```text
//! soft = softmax(p)                 p: [m, k] scores (cos/τ for MMQ, −‖r − c‖²/τ for RQ-VAE)
//! ind  = soft + sg(onehot(hard) − soft)          forward one-hot, backward soft
//! y    = ind · E                    E: [k, d] the downstream table, y: [m, d]
//! ```
//! Forward: `y = E[hard]` exactly (a gather, no rounding from `soft`). Backward, for the
//! upstream `G = ∂L/∂y`: `∂L/∂soft = G·Eᵀ` (the soft path) and `∂L/∂E = indᵀ·G = onehotᵀ·G`
//! (the value of `ind` is the one-hot, so the table gets a scatter-add of `G` by code, as any
//! embedding lookup). The op takes `soft` (already a softmax) so the softmax's own rule stays
//! with [`Graph::softmax_rows`].

use crate::autograd::graph::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::kernels::movement::{gather_rows, scatter_add_rows, Segments};
use crate::tensor::{DType, Tensor};

impl Graph {
    /// `ind · table` with `ind = soft + sg(onehot(hard) − soft)` (module docs): `soft` `[m, k]`
    /// (rows of a softmax), `hard` U32 `[m]` (each row's chosen code, `< k`), `table` `[k, d]`.
    /// The value is `table[hard]`, `[m, d]`; `soft` gets `G·tableᵀ`, `table` the scatter-add
    /// of `G` by `hard`.
    pub fn soft_index(&self, soft: &Var, hard: &Tensor, table: &Var) -> Result<Var> {
        let (m, k) = (soft.value().rows(), soft.value().cols());
        if soft.value().rank() != 2 || table.value().rank() != 2 || table.value().rows() != k {
            return Err(Error::shape(
                "soft_index",
                format!(
                    "soft {:?} must be [m, k] and the table {:?} [k, d]",
                    soft.shape(),
                    table.shape()
                ),
            ));
        }
        if hard.dtype() != DType::U32 || hard.numel() != m {
            return Err(Error::shape(
                "soft_index",
                format!(
                    "the hard codes must be U32 [{m}], not {:?} {:?}",
                    hard.dtype(),
                    hard.shape()
                ),
            ));
        }
        let value = gather_rows(table.value(), hard)?;
        let (hard, e) = (hard.clone(), table.value().clone());
        self.record(
            "soft_index",
            value,
            &[soft, table],
            Box::new(move |g, needs| {
                let d_soft = if needs[0] {
                    Some(matmul(g, &e, &MatmulOpts::new().trans_b(true))?)
                } else {
                    None
                };
                let d_table = if needs[1] {
                    Some(scatter_add_rows(g, &Segments::from_tensor(&hard, k)?)?)
                } else {
                    None
                };
                Ok(vec![d_soft, d_table])
            }),
        )
    }

    /// Scores `−‖r_i − c_j‖² · inv_tau` of the rows of `r` `[m, d]` against the codes `c`
    /// `[k, d]`, up to a per-row constant (`‖r_i‖²`, which no softmax over `j` sees):
    /// `(2 r·cᵀ − 1·‖c‖²ᵀ) · inv_tau`, `[m, k]`. Their argmax is the L2-nearest code, so a soft
    /// index over them keeps an L2 quantizer's hard code (RQ-VAE, MMQ's L2 ablation).
    pub fn l2_logits(&self, r: &Var, c: &Var, inv_tau: f32) -> Result<Var> {
        let m = r.value().rows();
        let dots = self.matmul(r, c, false, true)?;
        let csq = self.reshape(&self.sum_rows(&self.square(c)?)?, &[c.value().rows(), 1])?;
        let ones = self.input(&Tensor::from_slice(
            r.value().gpu(),
            &vec![1.0; m],
            &[m, 1],
        )?);
        let norms = self.matmul(&ones, &csq, false, true)?;
        let s = self.sub(&self.scale(&dots, 2.0)?, &norms)?;
        self.scale(&s, inv_tau)
    }
}

//! An embedding table.

use super::{Init, ParamStore};
use crate::autograd::{Graph, Var};
use crate::error::Result;
use crate::kernels::movement::Segments;
use crate::tensor::Tensor;

/// PyTorch's `nn.Embedding(num, dim)`: `{name}.weight` `[num, dim]`, `N(0, 1)` by default.
#[derive(Clone, Debug)]
pub struct Embedding {
    /// Name of the table.
    pub weight: String,
    /// Number of rows.
    pub num: usize,
    /// Width of a row.
    pub dim: usize,
}

impl Embedding {
    /// Creates the table with `init` (PyTorch's default is `Init::Normal { std: 1.0 }`).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        num: usize,
        dim: usize,
        init: Init,
    ) -> Result<Embedding> {
        let weight = format!("{name}.weight");
        store.init(&weight, &[num, dim], init, dim, num)?;
        Ok(Embedding { weight, num, dim })
    }

    /// Looks up the rows of U32 indices `idx` (any shape): `idx.shape() ++ [dim]`.
    pub fn forward(&self, g: &Graph, store: &ParamStore, idx: &Tensor) -> Result<Var> {
        let w = g.param(store, &self.weight)?;
        g.gather_rows(&w, idx)
    }

    /// [`Embedding::forward`] with segments prebuilt for `idx` (fixed indices reused every step).
    pub fn forward_with(
        &self,
        g: &Graph,
        store: &ParamStore,
        idx: &Tensor,
        seg: &Segments,
    ) -> Result<Var> {
        let w = g.param(store, &self.weight)?;
        g.gather_rows_with(&w, idx, seg)
    }
}

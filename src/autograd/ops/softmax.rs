//! Row softmax and log-softmax.

use crate::autograd::graph::{Graph, Var};
use crate::error::Result;
use crate::kernels::autograd::softmax_rows_backward;
use crate::kernels::norm::{log_softmax_rows, softmax_rows};

impl Graph {
    /// Softmax of each row (the last dimension). Gradient `y ⊙ (g − Σ g⊙y)` per row.
    pub fn softmax_rows(&self, x: &Var) -> Result<Var> {
        let value = softmax_rows(x.value())?;
        let y = value.clone();
        self.record(
            "softmax_rows",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(softmax_rows_backward(&y, g, false)?)])),
        )
    }

    /// Log-softmax of each row. Gradient `g − softmax(x) · Σ g` per row.
    pub fn log_softmax_rows(&self, x: &Var) -> Result<Var> {
        let value = log_softmax_rows(x.value())?;
        let y = value.clone();
        self.record(
            "log_softmax_rows",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(softmax_rows_backward(&y, g, true)?)])),
        )
    }
}

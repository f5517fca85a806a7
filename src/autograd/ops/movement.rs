//! Data movement: gather rows, concat / slice columns, reshape, transpose, and the
//! gradient-routing ops detach (stop-gradient) and straight-through.

use crate::autograd::graph::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::movement::{
    concat_cols, copy_cols_into, gather_rows, scatter_add_rows, slice_cols, transpose, Segments,
};
use crate::tensor::Tensor;

impl Graph {
    /// Row `i` of the result is row `idx[i]` of the 2-D view `[n, d]` of `table` (an embedding
    /// or codebook lookup); `idx` is a U32 tensor on the GPU (e.g. from an argmin), shape
    /// `idx.shape() ++ [d]`. An index `>= n` gives a zero row and no gradient.
    ///
    /// Gradient: a deterministic scatter-add of the output gradient into the table rows
    /// (segments built on the GPU by a radix sort in the backward pass; nothing read back).
    pub fn gather_rows(&self, table: &Var, idx: &Tensor) -> Result<Var> {
        self.gather_impl(table, idx, None)
    }

    /// [`Graph::gather_rows`] with segments already built for `idx` (e.g. fixed indices reused
    /// every step), saving the sort in the backward pass.
    pub fn gather_rows_with(&self, table: &Var, idx: &Tensor, seg: &Segments) -> Result<Var> {
        if seg.m() != idx.numel() || seg.n() != table.value().rows() {
            return Err(Error::shape(
                "gather_rows_with",
                format!(
                    "segments of {} indices into {} rows do not fit {} indices into {:?}",
                    seg.m(),
                    seg.n(),
                    idx.numel(),
                    table.shape()
                ),
            ));
        }
        self.gather_impl(table, idx, Some(seg.clone()))
    }

    fn gather_impl(&self, table: &Var, idx: &Tensor, seg: Option<Segments>) -> Result<Var> {
        let value = gather_rows(table.value(), idx)?;
        let idx = idx.clone();
        let n = table.value().rows();
        let d = table.value().cols();
        self.record(
            "gather_rows",
            value,
            &[table],
            Box::new(move |g, _| {
                let built;
                let seg = match &seg {
                    Some(s) => s,
                    None => {
                        built = Segments::from_tensor(&idx, n)?;
                        &built
                    }
                };
                let g2 = g.reshape(&[idx.numel(), d])?;
                Ok(vec![Some(scatter_add_rows(&g2, seg)?)])
            }),
        )
    }

    /// Concatenates along the last dimension: `[r, c1] ⊕ [r, c2] ⊕ …`. Gradient: the matching
    /// column slices.
    pub fn concat_cols(&self, parts: &[&Var]) -> Result<Var> {
        let values: Vec<&Tensor> = parts.iter().map(|v| v.value()).collect();
        let value = concat_cols(&values)?;
        let widths: Vec<usize> = values.iter().map(|t| t.cols()).collect();
        self.record(
            "concat_cols",
            value,
            parts,
            Box::new(move |g, needs| {
                let mut at = 0;
                let mut out = Vec::with_capacity(widths.len());
                for (k, &w) in widths.iter().enumerate() {
                    out.push(if needs[k] {
                        Some(slice_cols(g, at, at + w)?)
                    } else {
                        None
                    });
                    at += w;
                }
                Ok(out)
            }),
        )
    }

    /// Columns `start..end` of the last dimension. Gradient: zeros with the slice's gradient
    /// copied into those columns.
    pub fn slice_cols(&self, x: &Var, start: usize, end: usize) -> Result<Var> {
        let value = slice_cols(x.value(), start, end)?;
        let shape = x.shape().to_vec();
        self.record(
            "slice_cols",
            value,
            &[x],
            Box::new(move |g, _| {
                let dx = Tensor::zeros(g.gpu(), &shape)?;
                copy_cols_into(g, 0, &dx, start, end - start)?;
                Ok(vec![Some(dx)])
            }),
        )
    }

    /// The same values with a new shape of equal element count (no copy).
    pub fn reshape(&self, x: &Var, shape: &[usize]) -> Result<Var> {
        let value = x.value().reshape(shape)?;
        let orig = x.shape().to_vec();
        self.record(
            "reshape",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(g.reshape(&orig)?)])),
        )
    }

    /// Transposes the last two dimensions (batched over leading ones). Gradient: the
    /// transposed gradient.
    pub fn transpose(&self, x: &Var) -> Result<Var> {
        let value = transpose(x.value())?;
        self.record(
            "transpose",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(transpose(g)?)])),
        )
    }

    /// Stop-gradient: the same value, through which no gradient flows (`sg(x)`).
    pub fn detach(&self, x: &Var) -> Result<Var> {
        self.check(x, "detach")?;
        Ok(self.record_constant("detach", x.value().clone()))
    }

    /// The straight-through estimator: the forward value is `hard`, the backward pass gives
    /// `soft` the whole upstream gradient and `hard` none. It equals
    /// `soft + detach(hard − soft)` but returns `hard` exactly (no rounding). Used for VQ
    /// (`soft` = the encoder output, `hard` = its nearest code) and MMQ's soft indexing
    /// (`soft` = softmax scores, `hard` = their one-hot argmax). Shapes must match.
    pub fn straight_through(&self, soft: &Var, hard: &Var) -> Result<Var> {
        self.check(hard, "straight_through")?;
        if soft.shape() != hard.shape() {
            return Err(Error::shape(
                "straight_through",
                format!(
                    "soft {:?} and hard {:?} must have one shape",
                    soft.shape(),
                    hard.shape()
                ),
            ));
        }
        self.record(
            "straight_through",
            hard.value().clone(),
            &[soft],
            Box::new(move |g, _| Ok(vec![Some(g.clone())])),
        )
    }
}

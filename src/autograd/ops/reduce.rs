//! Reductions: over everything ([`Graph::sum`], [`Graph::mean`]), over each row's columns
//! ([`Graph::sum_rows`], [`Graph::mean_rows`]) and over the rows ([`Graph::sum_cols`],
//! [`Graph::mean_cols`]).

use crate::autograd::graph::{Graph, Var};
use crate::error::Result;
use crate::kernels::autograd::fill_scalar;
use crate::kernels::elementwise::{binary_into, unary, Binary, Unary};
use crate::kernels::reduce::{reduce_rows, sum_all, sum_cols, RowReduce};
use crate::tensor::Tensor;

/// Broadcasts `g` (one value per row, or one row) to `shape`, times `s`.
fn broadcast(g: &Tensor, view: &[usize], shape: &[usize], s: f32) -> Result<Tensor> {
    let out = Tensor::empty(g.gpu(), shape)?;
    let gv = g.reshape(view)?;
    binary_into(
        &gv,
        &gv,
        Binary::Axpby {
            alpha: s,
            beta: 0.0,
        },
        &out,
    )?;
    Ok(out)
}

impl Graph {
    fn total(&self, x: &Var, mean: bool) -> Result<Var> {
        let n = x.value().numel();
        let s = sum_all(x.value())?;
        let scale = if mean { (1.0 / n as f64) as f32 } else { 1.0 };
        let value = if mean {
            unary(
                &s,
                Unary::Scale {
                    alpha: scale,
                    beta: 0.0,
                },
            )?
        } else {
            s
        };
        let shape = x.shape().to_vec();
        self.record(
            if mean { "mean" } else { "sum" },
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(fill_scalar(g, scale, &shape)?)])),
        )
    }

    /// The sum of every element, shape `[1]`; deterministic tree order.
    pub fn sum(&self, x: &Var) -> Result<Var> {
        self.total(x, false)
    }

    /// The mean of every element, shape `[1]`.
    pub fn mean(&self, x: &Var) -> Result<Var> {
        self.total(x, true)
    }

    fn per_row(&self, x: &Var, mean: bool) -> Result<Var> {
        let value = reduce_rows(
            x.value(),
            if mean {
                RowReduce::Mean
            } else {
                RowReduce::Sum
            },
        )?;
        let (rows, cols) = (x.value().rows(), x.value().cols());
        let s = if mean {
            (1.0 / cols as f64) as f32
        } else {
            1.0
        };
        let shape = x.shape().to_vec();
        self.record(
            if mean { "mean_rows" } else { "sum_rows" },
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(broadcast(g, &[rows, 1], &shape, s)?)])),
        )
    }

    /// Each row's sum over the last dimension: `[.., cols]` → `[..]` (`[1]` for 1-D input).
    pub fn sum_rows(&self, x: &Var) -> Result<Var> {
        self.per_row(x, false)
    }

    /// Each row's mean over the last dimension: `[.., cols]` → `[..]`.
    pub fn mean_rows(&self, x: &Var) -> Result<Var> {
        self.per_row(x, true)
    }

    fn over_rows(&self, x: &Var, mean: bool) -> Result<Var> {
        let (rows, cols) = (x.value().rows(), x.value().cols());
        let mut value = sum_cols(x.value())?;
        let s = if mean {
            (1.0 / rows as f64) as f32
        } else {
            1.0
        };
        if mean {
            value = unary(
                &value,
                Unary::Scale {
                    alpha: s,
                    beta: 0.0,
                },
            )?;
        }
        let shape = x.shape().to_vec();
        self.record(
            if mean { "mean_cols" } else { "sum_cols" },
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(broadcast(g, &[1, cols], &shape, s)?)])),
        )
    }

    /// The sum over all rows, per column: `[.., cols]` → `[cols]`; deterministic.
    pub fn sum_cols(&self, x: &Var) -> Result<Var> {
        self.over_rows(x, false)
    }

    /// The mean over all rows, per column: `[.., cols]` → `[cols]` (e.g. a batch mean).
    pub fn mean_cols(&self, x: &Var) -> Result<Var> {
        self.over_rows(x, true)
    }
}

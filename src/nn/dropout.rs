//! Dropout with reproducible masks.

use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::autograd::dropout_key;
use std::cell::Cell;

/// Inverted dropout with drop probability `p`. Each training call draws a new mask from the
/// next stream of its seed (a counter), by a counter-based hash on the GPU: the same seed and
/// the same sequence of calls give the same masks, on any device.
#[derive(Debug)]
pub struct Dropout {
    /// Drop probability in `[0, 1)`.
    pub p: f32,
    seed: u64,
    calls: Cell<u64>,
}

impl Dropout {
    /// A dropout layer; an error unless `0 <= p < 1`.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!(
                "dropout probability must be in [0, 1), not {p}"
            )));
        }
        Ok(Dropout {
            p,
            seed,
            calls: Cell::new(0),
        })
    }

    /// Applies dropout when `train` (advancing the stream counter), else returns `x`.
    pub fn forward(&self, g: &Graph, x: &Var, train: bool) -> Result<Var> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let stream = self.calls.get();
        self.calls.set(stream + 1);
        g.dropout(x, self.p, dropout_key(self.seed, stream))
    }

    /// Applies dropout with the mask of stream `stream`, leaving the counter alone.
    pub fn forward_stream(&self, g: &Graph, x: &Var, stream: u64) -> Result<Var> {
        g.dropout(x, self.p, dropout_key(self.seed, stream))
    }

    /// The number of training calls so far (the next stream).
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }
}

//! Inverted dropout with a reproducible, counter-based mask.

use crate::autograd::graph::{Graph, Var};
use crate::error::Result;
use crate::kernels::autograd::dropout;
use crate::kernels::elementwise::{binary, Binary};

impl Graph {
    /// Inverted dropout: each element is zeroed with probability `p` and the rest scaled by
    /// `1/(1−p)`. The mask is a hash of (`key`, element index) — see
    /// [`crate::kernels::autograd::dropout_key`] — so the same key gives the same mask. `p = 0`
    /// returns `x` itself. Gradient `g ⊙ mask`.
    pub fn dropout(&self, x: &Var, p: f32, key: (u32, u32)) -> Result<Var> {
        if p == 0.0 {
            self.check(x, "dropout")?;
            return Ok(x.clone());
        }
        let (y, mask) = dropout(x.value(), p, key)?;
        self.record(
            "dropout",
            y,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(binary(g, &mask, Binary::Mul)?)])),
        )
    }
}

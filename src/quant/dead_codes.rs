//! Dead-code re-seeding for the learned quantizers (RQ-VAE, MMQ): a code that no batch row
//! has chosen for a number of consecutive steps is replaced by a random row of what its
//! codebook quantizes (a residual, an expert's latent), so no code stays dead.

use crate::error::Result;
use crate::nn::ParamStore;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// When each code of each codebook was last used, and the seeded generator of re-seeding.
#[derive(Clone, Debug)]
pub(crate) struct DeadCodes {
    window: u64,
    last_used: Vec<Vec<u64>>,
    rng: Rng,
}

impl DeadCodes {
    /// Tracks `books` codebooks of `k` codes; a code unused for `window` steps is dead
    /// (0: never).
    pub(crate) fn new(books: usize, k: usize, window: usize, seed: u64) -> DeadCodes {
        DeadCodes {
            window: window as u64,
            last_used: vec![vec![0; k]; books],
            rng: Rng::new(seed),
        }
    }

    /// When each code was last used, and the re-seeding generator's state (for checkpoints).
    pub(crate) fn state(&self) -> (Vec<Vec<u64>>, (u64, Option<f64>)) {
        (self.last_used.clone(), self.rng.state())
    }

    /// Restores a saved [`DeadCodes::state`] (its shape must match).
    pub(crate) fn restore(
        &mut self,
        last_used: &[Vec<u64>],
        rng: (u64, Option<f64>),
    ) -> crate::error::Result<()> {
        let same = last_used.len() == self.last_used.len()
            && last_used
                .iter()
                .zip(&self.last_used)
                .all(|(a, b)| a.len() == b.len());
        if !same {
            return Err(crate::error::Error::Invalid(
                "dead-code state: the saved counters do not match the codebooks".into(),
            ));
        }
        self.last_used = last_used.to_vec();
        self.rng = Rng::from_state(rng);
        Ok(())
    }

    /// After step `now`: marks the codes of `indices[b]` (U32 `[rows]`, one per codebook, all
    /// read back in ONE transfer) as used, and re-seeds every dead code of codebook `names[b]`
    /// in `store` with a row of `sources[b]` `[rows, d]` (distinct rows while they last, in a
    /// seeded order). Returns the number of codes re-seeded.
    pub(crate) fn update(
        &mut self,
        store: &mut ParamStore,
        names: &[String],
        indices: &[Tensor],
        sources: &[Tensor],
        now: u64,
    ) -> Result<usize> {
        if self.window == 0 || indices.is_empty() {
            return Ok(0);
        }
        let all = Tensor::read_all_u32(&indices.iter().collect::<Vec<_>>())?;
        let mut reseeded = 0;
        for (b, used) in all.iter().enumerate() {
            let last = &mut self.last_used[b];
            for &c in used {
                if let Some(t) = last.get_mut(c as usize) {
                    *t = now;
                }
            }
            let dead: Vec<usize> = (0..last.len())
                .filter(|&c| now - last[c] >= self.window)
                .collect();
            if dead.is_empty() {
                continue;
            }
            let src = &sources[b];
            let (rows, d) = (src.rows(), src.cols());
            let data = src.to_vec()?;
            let mut cb = match store.get(&names[b]) {
                Some(t) => t.to_vec()?,
                None => continue,
            };
            let mut order: Vec<usize> = (0..rows).collect();
            self.rng.shuffle(&mut order);
            for (t, &c) in dead.iter().enumerate() {
                let i = order[t % rows.max(1)];
                cb[c * d..(c + 1) * d].copy_from_slice(&data[i * d..(i + 1) * d]);
                last[c] = now;
            }
            store.set(&names[b], &cb)?;
            reseeded += dead.len();
        }
        Ok(reseeded)
    }
}

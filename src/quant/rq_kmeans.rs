//! RQ-KMeans: residual k-means, the baseline of both papers (NOTES.md §1.2).
//!
//! `X_1 = X`; for each level l: `C_l = KMeans(X_l, k)`, `X_{l+1} = X_l − NearestRep(X_l, C_l)`.

use super::cluster::{self, KMeansOptions};
use super::codes::Codes;
use super::tokenizer::{cumulative_reconstructions, rows_of, FitHooks, NamedTensor, Tokenizer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use serde::{Deserialize, Serialize};

/// RQ-KMeans settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RqKMeansConfig {
    /// Number of levels (default 3).
    pub levels: usize,
    /// Codes per level (default 256).
    pub k: usize,
    /// Seed of every level's k-means (level l uses `seed + l`).
    pub seed: u64,
    /// k-means settings.
    pub kmeans: KMeansOptions,
}

impl Default for RqKMeansConfig {
    fn default() -> Self {
        RqKMeansConfig {
            levels: 3,
            k: 256,
            seed: 0,
            kmeans: KMeansOptions::default(),
        }
    }
}

/// A fitted RQ-KMeans tokenizer.
#[derive(Clone, Debug)]
pub struct RqKMeans {
    /// The settings it was fitted with.
    pub config: RqKMeansConfig,
    /// Input width.
    pub dim: usize,
    /// One `k × dim` codebook per level.
    pub codebooks: Vec<Vec<f32>>,
}

impl RqKMeans {
    /// Fits the codebooks level by level and returns the training items' codes.
    pub fn fit(
        gpu: &Gpu,
        x: &[f32],
        dim: usize,
        config: &RqKMeansConfig,
    ) -> Result<(RqKMeans, Codes)> {
        FitHooks::none(|h| Self::fit_with(gpu, x, dim, config, h))
    }

    /// [`RqKMeans::fit`] with progress, resume and per-level checkpoint hooks. Progress counts
    /// k-means iterations: `max_iters` per level (a level that converges early jumps to its
    /// end), see [`progress_units`].
    pub fn fit_with(
        gpu: &Gpu,
        x: &[f32],
        dim: usize,
        config: &RqKMeansConfig,
        hooks: FitHooks<'_, RqKMeans>,
    ) -> Result<(RqKMeans, Codes)> {
        let n = rows_of(x, dim, "rq-kmeans fit")?;
        if config.levels == 0 || config.k == 0 {
            return Err(Error::Invalid(
                "rq-kmeans: levels and k must be positive".into(),
            ));
        }
        let d = dim;
        let mut model = RqKMeans {
            config: config.clone(),
            dim,
            codebooks: Vec::with_capacity(config.levels),
        };
        let mut residual = x.to_vec();
        let mut columns = Vec::with_capacity(config.levels);
        let subtract = |residual: &mut [f32], cb: &[f32], assign: &[u32]| {
            for (i, &c) in assign.iter().enumerate() {
                let cent = &cb[c as usize * d..(c as usize + 1) * d];
                for (r, v) in residual[i * d..(i + 1) * d].iter_mut().zip(cent) {
                    *r -= v;
                }
            }
        };
        if let Some(done) = hooks.resume {
            if done.dim != dim || done.config.k != config.k || done.codebooks.len() > config.levels
            {
                return Err(Error::Invalid(format!(
                    "rq-kmeans: cannot resume from a tokenizer with d={}, k={}, {} levels",
                    done.dim,
                    done.config.k,
                    done.codebooks.len()
                )));
            }
            for cb in done.codebooks {
                let assign =
                    cluster::assign(gpu, &residual, n, d, &cb, config.k, config.kmeans.metric)?;
                subtract(&mut residual, &cb, &assign);
                model.codebooks.push(cb);
                columns.push(assign);
            }
        }
        let (per, total) = progress_units(config.levels, &config.kmeans);
        for level in model.codebooks.len()..config.levels {
            (hooks.progress)(level * per, total);
            let seed = config.seed.wrapping_add(level as u64);
            let fit = cluster::fit_with_progress(
                gpu,
                &residual,
                (n, d),
                config.k,
                &config.kmeans,
                seed,
                &mut |i, _| (hooks.progress)(level * per + i.min(per), total),
            )?;
            subtract(&mut residual, &fit.centroids, &fit.assign);
            model.codebooks.push(fit.centroids);
            columns.push(fit.assign);
            (hooks.on_level)(&model)?;
        }
        (hooks.progress)(total, total);
        let codes = Codes::from_levels(vec![config.k; config.levels], &columns);
        Ok((model, codes))
    }

    /// Rebuilds a tokenizer from saved codebooks.
    pub fn from_parts(
        config: RqKMeansConfig,
        dim: usize,
        codebooks: Vec<Vec<f32>>,
    ) -> Result<Self> {
        if codebooks.len() > config.levels || codebooks.iter().any(|c| c.len() != config.k * dim) {
            return Err(Error::Invalid(format!(
                "rq-kmeans: expected {} codebooks of {}×{dim}",
                config.levels, config.k
            )));
        }
        Ok(RqKMeans {
            config,
            dim,
            codebooks,
        })
    }
}

impl Tokenizer for RqKMeans {
    fn method(&self) -> &'static str {
        "rq-kmeans"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.config.k; self.codebooks.len()]
    }
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        let n = rows_of(x, self.dim, "rq-kmeans encode")?;
        let d = self.dim;
        let mut residual = x.to_vec();
        let mut columns = Vec::with_capacity(self.codebooks.len());
        for cb in &self.codebooks {
            let assign = cluster::assign(
                gpu,
                &residual,
                n,
                d,
                cb,
                self.config.k,
                self.config.kmeans.metric,
            )?;
            for i in 0..n {
                let c = assign[i] as usize;
                for (r, v) in residual[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(&cb[c * d..(c + 1) * d])
                {
                    *r -= v;
                }
            }
            columns.push(assign);
        }
        Ok(Codes::from_levels(self.sizes(), &columns))
    }
    fn level_reconstructions(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        check_codes(codes, &self.sizes())?;
        Ok(cumulative_reconstructions(
            codes,
            &self.codebooks,
            self.config.k,
            self.dim,
        ))
    }
    fn tensors(&self) -> Vec<NamedTensor> {
        self.codebooks
            .iter()
            .enumerate()
            .map(|(l, cb)| NamedTensor {
                name: format!("codebook.{l}"),
                shape: vec![self.config.k, self.dim],
                data: cb.clone(),
            })
            .collect()
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

/// Checks that codes fit a tokenizer's levels and codebook sizes.
pub(crate) fn check_codes(codes: &Codes, sizes: &[usize]) -> Result<()> {
    if codes.levels < sizes.len() {
        return Err(Error::Invalid(format!(
            "codes have {} levels; the tokenizer has {}",
            codes.levels,
            sizes.len()
        )));
    }
    for (i, c) in codes.data.iter().enumerate() {
        let l = i % codes.levels;
        if l < sizes.len() && *c as usize >= sizes[l] {
            return Err(Error::Invalid(format!(
                "item {}, level {l}: code {c} is not below {}",
                i / codes.levels,
                sizes[l]
            )));
        }
    }
    Ok(())
}

/// Progress units of the level-by-level k-means tokenizers (RQ-KMeans, PSRQ): `(per level,
/// total)`, one unit per k-means iteration.
pub fn progress_units(levels: usize, kmeans: &cluster::KMeansOptions) -> (usize, usize) {
    let per = kmeans.max_iters.max(1);
    (per, per * levels)
}

//! PSRQ: progressive semantic residual quantization (Wang et al., CIKM '25; NOTES.md §1.3).
//!
//! The paper's equations (§4.1):
//!
//! ```text
//! X_1 = X,                  C_1 = KMeans(X_1, k)                       (C_1 is k × d)
//! X_l = X_{l−1} − NearestRep(X_{l−1}, C_{l−1})
//! C_l = KMeans(X_l ⊕ (X − X_l), k)          for l ≥ 2                  (C_l is k × 2d)
//! ```
//!
//! `X − X_l` is the prefix reconstruction (the sum of the centroids chosen before level l), so
//! from level 2 on each level clusters `[residual ⊕ prefix]` and keeps the prefix semantics.
//!
//! The paper leaves open how a 2d centroid updates a d-dimensional residual. semid implements
//! the faithful reading (NOTES.md §1.3, option A): the code is assigned on the 2d feature, then
//! the chosen centroid's residual half (its first d coordinates, the mean residual of the
//! cluster's members) is subtracted: `X_{l+1} = X_l − C_l[j][:d]`. The reconstruction after
//! level l is then `C_1[j_1] + Σ_{2≤m≤l} C_m[j_m][:d]`, which equals `X − X_{l+1}`.
//!
//! As residuals shrink, the prefix half dominates the distance. `prefix_weight` (w, default 1,
//! as in the paper) scales the prefix half of the feature, `[X_l ⊕ w·(X − X_l)]`, and
//! `balance_halves` (off by default) rescales the prefix half at each level so that both halves
//! have the same mean squared norm over the training items. Either changes only the assignment;
//! the residual update always uses the residual half.

use super::cluster::{self, KMeansOptions};
use super::codes::Codes;
use super::rq_kmeans::check_codes;
use super::tokenizer::{cumulative_reconstructions, rows_of, FitHooks, NamedTensor, Tokenizer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use serde::{Deserialize, Serialize};

/// PSRQ settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PsrqConfig {
    /// Number of levels (default 3, the paper's setting).
    pub levels: usize,
    /// Codes per level (default 256; the paper uses 64, 128 and 256 on its data sets).
    pub k: usize,
    /// Seed of every level's k-means (level l uses `seed + l`).
    pub seed: u64,
    /// Weight w of the prefix half of the feature (1 = the paper).
    pub prefix_weight: f32,
    /// Rescale the prefix half so both halves have equal mean squared norm (off = the paper).
    pub balance_halves: bool,
    /// k-means settings.
    pub kmeans: KMeansOptions,
}

impl Default for PsrqConfig {
    fn default() -> Self {
        PsrqConfig {
            levels: 3,
            k: 256,
            seed: 0,
            prefix_weight: 1.0,
            balance_halves: false,
            kmeans: KMeansOptions::default(),
        }
    }
}

/// A fitted PSRQ tokenizer.
#[derive(Clone, Debug)]
pub struct Psrq {
    /// The settings it was fitted with.
    pub config: PsrqConfig,
    /// Input width d.
    pub dim: usize,
    /// Level 1: `k × d`; levels ≥ 2: `k × 2d` (residual half, then prefix half).
    pub codebooks: Vec<Vec<f32>>,
    /// The prefix-half scale used at each level (1 for level 1), fixed at fit time so that
    /// encoding new items uses the same feature.
    pub prefix_scales: Vec<f32>,
}

/// Builds `[residual ⊕ s·prefix]` rows.
fn feature(residual: &[f32], prefix: &[f32], d: usize, s: f32) -> Vec<f32> {
    let n = residual.len() / d;
    let mut f = Vec::with_capacity(n * 2 * d);
    for i in 0..n {
        f.extend_from_slice(&residual[i * d..(i + 1) * d]);
        f.extend(prefix[i * d..(i + 1) * d].iter().map(|v| v * s));
    }
    f
}

fn mean_sq_norm(x: &[f32], n: usize) -> f64 {
    x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / n.max(1) as f64
}

/// Subtracts the residual half of the chosen centroids and adds it to the prefix.
fn step(
    residual: &mut [f32],
    prefix: &mut [f32],
    cb: &[f32],
    width: usize,
    assign: &[u32],
    d: usize,
) {
    for (i, &c) in assign.iter().enumerate() {
        let cent = &cb[c as usize * width..c as usize * width + d];
        for j in 0..d {
            residual[i * d + j] -= cent[j];
            prefix[i * d + j] += cent[j];
        }
    }
}

impl Psrq {
    /// Fits PSRQ level by level and returns the training items' codes.
    pub fn fit(gpu: &Gpu, x: &[f32], dim: usize, config: &PsrqConfig) -> Result<(Psrq, Codes)> {
        FitHooks::none(|h| Self::fit_with(gpu, x, dim, config, h))
    }

    /// [`Psrq::fit`] with progress, resume and per-level checkpoint hooks. Progress counts
    /// k-means iterations, as [`crate::quant::rq_kmeans::progress_units`] says.
    pub fn fit_with(
        gpu: &Gpu,
        x: &[f32],
        dim: usize,
        config: &PsrqConfig,
        hooks: FitHooks<'_, Psrq>,
    ) -> Result<(Psrq, Codes)> {
        let n = rows_of(x, dim, "psrq fit")?;
        if config.levels == 0 || config.k == 0 {
            return Err(Error::Invalid("psrq: levels and k must be positive".into()));
        }
        if !(config.prefix_weight.is_finite() && config.prefix_weight >= 0.0) {
            return Err(Error::Invalid(format!(
                "psrq: prefix_weight must be a finite value ≥ 0, not {}",
                config.prefix_weight
            )));
        }
        let d = dim;
        let mut model = Psrq {
            config: config.clone(),
            dim,
            codebooks: Vec::with_capacity(config.levels),
            prefix_scales: Vec::with_capacity(config.levels),
        };
        let mut residual = x.to_vec();
        let mut prefix = vec![0f32; n * d];
        let mut columns = Vec::with_capacity(config.levels);
        if let Some(done) = hooks.resume {
            if done.dim != dim || done.config.k != config.k || done.codebooks.len() > config.levels
            {
                return Err(Error::Invalid(format!(
                    "psrq: cannot resume from a tokenizer with d={}, k={}, {} levels",
                    done.dim,
                    done.config.k,
                    done.codebooks.len()
                )));
            }
            for (cb, s) in done.codebooks.into_iter().zip(done.prefix_scales) {
                let level = model.codebooks.len();
                let assign = model.assign_level(gpu, level, &cb, s, &residual, &prefix, n)?;
                let width = cb.len() / config.k;
                step(&mut residual, &mut prefix, &cb, width, &assign, d);
                model.codebooks.push(cb);
                model.prefix_scales.push(s);
                columns.push(assign);
            }
        }
        let (per, total) = super::rq_kmeans::progress_units(config.levels, &config.kmeans);
        for level in model.codebooks.len()..config.levels {
            (hooks.progress)(level * per, total);
            let mut on_iter =
                |i: usize, _: usize| (hooks.progress)(level * per + i.min(per), total);
            let seed = config.seed.wrapping_add(level as u64);
            let (fit, width, scale) = if level == 0 {
                let fit = cluster::fit_with_progress(
                    gpu,
                    &residual,
                    (n, d),
                    config.k,
                    &config.kmeans,
                    seed,
                    &mut on_iter,
                )?;
                (fit, d, 1.0)
            } else {
                let mut s = config.prefix_weight;
                if config.balance_halves {
                    let r = mean_sq_norm(&residual, n);
                    let p = mean_sq_norm(&prefix, n);
                    if p > 0.0 {
                        s *= (r / p).sqrt() as f32;
                    }
                }
                let f = feature(&residual, &prefix, d, s);
                let fit = cluster::fit_with_progress(
                    gpu,
                    &f,
                    (n, 2 * d),
                    config.k,
                    &config.kmeans,
                    seed,
                    &mut on_iter,
                )?;
                (fit, 2 * d, s)
            };
            step(
                &mut residual,
                &mut prefix,
                &fit.centroids,
                width,
                &fit.assign,
                d,
            );
            model.codebooks.push(fit.centroids);
            model.prefix_scales.push(scale);
            columns.push(fit.assign);
            (hooks.on_level)(&model)?;
        }
        (hooks.progress)(total, total);
        let codes = Codes::from_levels(vec![config.k; config.levels], &columns);
        Ok((model, codes))
    }

    /// Codes of one level for items with the given residual and prefix.
    #[allow(clippy::too_many_arguments)]
    fn assign_level(
        &self,
        gpu: &Gpu,
        level: usize,
        cb: &[f32],
        scale: f32,
        residual: &[f32],
        prefix: &[f32],
        n: usize,
    ) -> Result<Vec<u32>> {
        let d = self.dim;
        let metric = self.config.kmeans.metric;
        if level == 0 {
            cluster::assign(gpu, residual, n, d, cb, self.config.k, metric)
        } else {
            let f = feature(residual, prefix, d, scale);
            cluster::assign(gpu, &f, n, 2 * d, cb, self.config.k, metric)
        }
    }

    /// Rebuilds a tokenizer from saved parts (fewer levels than configured for a partial fit
    /// to resume).
    pub fn from_parts(
        config: PsrqConfig,
        dim: usize,
        codebooks: Vec<Vec<f32>>,
        prefix_scales: Vec<f32>,
    ) -> Result<Self> {
        let ok = codebooks.len() <= config.levels
            && prefix_scales.len() == codebooks.len()
            && codebooks
                .iter()
                .enumerate()
                .all(|(l, c)| c.len() == config.k * dim * if l == 0 { 1 } else { 2 });
        if !ok {
            return Err(Error::Invalid(format!(
                "psrq: expected {} codebooks (k×d, then k×2d with k={}, d={dim}) and {} prefix scales",
                config.levels, config.k, config.levels
            )));
        }
        Ok(Psrq {
            config,
            dim,
            codebooks,
            prefix_scales,
        })
    }
}

impl Tokenizer for Psrq {
    fn method(&self) -> &'static str {
        "psrq"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.config.k; self.codebooks.len()]
    }
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        let n = rows_of(x, self.dim, "psrq encode")?;
        let d = self.dim;
        let mut residual = x.to_vec();
        let mut prefix = vec![0f32; n * d];
        let mut columns = Vec::with_capacity(self.codebooks.len());
        for (level, cb) in self.codebooks.iter().enumerate() {
            let s = self.prefix_scales[level];
            let assign = self.assign_level(gpu, level, cb, s, &residual, &prefix, n)?;
            step(
                &mut residual,
                &mut prefix,
                cb,
                cb.len() / self.config.k,
                &assign,
                d,
            );
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
        let mut v: Vec<NamedTensor> = self
            .codebooks
            .iter()
            .enumerate()
            .map(|(l, cb)| NamedTensor {
                name: format!("codebook.{l}"),
                shape: vec![self.config.k, if l == 0 { self.dim } else { 2 * self.dim }],
                data: cb.clone(),
            })
            .collect();
        v.push(NamedTensor {
            name: "prefix_scales".into(),
            shape: vec![self.prefix_scales.len()],
            data: self.prefix_scales.clone(),
        });
        v
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

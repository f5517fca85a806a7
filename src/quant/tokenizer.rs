//! The interface every tokenizer shares: fit (per type), encode, decode, metrics inputs, save.

use super::codes::Codes;
use crate::error::Result;
use crate::gpu::Gpu;
pub use crate::io::checkpoint::NamedTensor;

/// A fitted tokenizer: assigns semantic IDs to items and reconstructs them.
pub trait Tokenizer {
    /// Method name (`rq-kmeans`, `psrq`, ...).
    fn method(&self) -> &'static str;
    /// Input width.
    fn dim(&self) -> usize;
    /// Codebook size per level.
    fn sizes(&self) -> Vec<usize>;
    /// Assigns codes to items (`n × dim` row-major) without retraining.
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes>;
    /// The reconstruction after each level (cumulative), each `n × dim`.
    fn level_reconstructions(&self, codes: &Codes) -> Result<Vec<Vec<f32>>>;
    /// The reconstruction after each level of the items `x` (`n × dim`) whose codes are
    /// `codes`, for metrics. Most tokenizers decode from codes alone (the default,
    /// [`Tokenizer::level_reconstructions`]); MMQ also weighs its modality experts by gates it
    /// computes from the items' embeddings.
    fn input_reconstructions(&self, gpu: &Gpu, x: &[f32], codes: &Codes) -> Result<Vec<Vec<f32>>> {
        let _ = (gpu, x);
        self.level_reconstructions(codes)
    }
    /// The full reconstruction of items from their codes, `n × dim`.
    fn decode(&self, codes: &Codes) -> Result<Vec<f32>> {
        Ok(self.level_reconstructions(codes)?.pop().unwrap_or_default())
    }
    /// The tensors that define the tokenizer, for checkpoints.
    fn tensors(&self) -> Vec<NamedTensor>;
    /// The configuration as JSON, for checkpoints and reports.
    fn config_json(&self) -> serde_json::Value;
    /// Encodes `x` (`n × dim`) and judges the codes: utilisation, entropy, collisions,
    /// per-level reconstruction cosine, drift and, with `labels`, purity (see [`crate::metrics`]).
    fn metrics(
        &self,
        gpu: &Gpu,
        x: &[f32],
        labels: Option<&[u32]>,
    ) -> Result<crate::metrics::Metrics> {
        let codes = self.encode(gpu, x)?;
        let recs = self.input_reconstructions(gpu, x, &codes)?;
        let sizes = codes.sizes.clone();
        let mut input = crate::metrics::MetricsInput::new(&codes.data, &sizes)
            .with_embeddings(x, self.dim())
            .with_reconstructions(&recs);
        if let Some(l) = labels {
            input = input.with_labels(l);
        }
        crate::metrics::Metrics::compute(self.method(), &input)
    }
}

/// Checks that `x` holds whole rows of width `dim`, returning the row count.
pub(crate) fn rows_of(x: &[f32], dim: usize, what: &'static str) -> Result<usize> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(crate::error::Error::shape(
            what,
            format!("{} values are not whole rows of width {dim}", x.len()),
        ));
    }
    Ok(x.len() / dim)
}

/// Hooks into a level-by-level fit: progress, resuming, and checkpointing after each level.
pub struct FitHooks<'a, T> {
    /// Called with (done, in all) as the fit advances and at the end, in the method's own
    /// units: k-means iterations for RQ-KMeans and PSRQ (`max_iters` per level), epochs for
    /// RQ-VAE and MMQ.
    pub progress: &'a mut dyn FnMut(usize, usize),
    /// A partly fitted tokenizer (from a checkpoint) whose levels are kept, not refitted.
    pub resume: Option<T>,
    /// Called after each newly fitted level with the tokenizer so far (e.g. to checkpoint it).
    pub on_level: &'a mut dyn FnMut(&T) -> Result<()>,
}

impl<T> FitHooks<'_, T> {
    /// Runs `f` with hooks that do nothing.
    pub fn none<R>(f: impl FnOnce(FitHooks<'_, T>) -> R) -> R {
        let mut p = |_: usize, _: usize| {};
        let mut o = |_: &T| Ok(());
        f(FitHooks {
            progress: &mut p,
            resume: None,
            on_level: &mut o,
        })
    }
}

/// The cumulative reconstruction after each level: the sum of the first `d` coordinates of
/// each level's chosen code (a codebook row may be wider than `d`, as PSRQ's `k × 2d` ones).
/// `codes` may hold more levels than `codebooks` (a collision suffix); those are ignored.
pub(crate) fn cumulative_reconstructions(
    codes: &Codes,
    codebooks: &[Vec<f32>],
    k: usize,
    d: usize,
) -> Vec<Vec<f32>> {
    let n = codes.items();
    let mut acc = vec![0f32; n * d];
    let mut out = Vec::with_capacity(codebooks.len());
    for (l, cb) in codebooks.iter().enumerate() {
        let width = cb.len() / k.max(1);
        for i in 0..n {
            let c = codes.item(i)[l] as usize;
            for (a, v) in acc[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&cb[c * width..c * width + d])
            {
                *a += v;
            }
        }
        out.push(acc.clone());
    }
    out
}

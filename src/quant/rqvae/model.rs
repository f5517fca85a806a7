//! The fitted RQ-VAE tokenizer: weights and codebooks on the CPU, fit, encode and decode.

use super::config::{codebook_name, RqVaeConfig};
use super::trainer::RqVaeTrainer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::codebook::{nearest, Metric};
use crate::kernels::elementwise::{binary, Binary};
use crate::kernels::movement::gather_rows;
use crate::nn::{FrozenMlp, GpuMlp};
use crate::quant::codes::Codes;
use crate::quant::epochs::{fit_epochs, EpochPlan, TrainRows};
use crate::quant::rq_kmeans::check_codes;
use crate::quant::tokenizer::{rows_of, FitHooks, NamedTensor, Tokenizer};
use crate::quant::train_state::TrainState;
use crate::tensor::Tensor;

/// A fitted RQ-VAE tokenizer: its weights and codebooks on the CPU (uploaded per call).
#[derive(Clone, Debug)]
pub struct RqVae {
    /// The settings it was trained with.
    pub config: RqVaeConfig,
    /// Input width.
    pub dim: usize,
    /// Every parameter, PyTorch-named: `encoder.*`, `decoder.*`, `codebook.{l}`.
    pub params: Vec<NamedTensor>,
    /// Epochs trained.
    pub epochs_done: usize,
    /// The training state at the end of those epochs (to resume exactly), when known.
    pub train_state: Option<TrainState>,
    /// The device it was trained on (encode and decode reuse it).
    pub(super) gpu: Option<Gpu>,
}

/// Rows encoded or decoded per GPU pass.
const CHUNK_ROWS: usize = 8192;

impl RqVae {
    /// Fits an RQ-VAE and returns the training items' codes.
    pub fn fit(gpu: &Gpu, x: &[f32], dim: usize, config: &RqVaeConfig) -> Result<(RqVae, Codes)> {
        FitHooks::none(|h| Self::fit_with(gpu, x, dim, config, h))
    }

    /// [`RqVae::fit`] with hooks: `progress` is called with (epochs done, epochs) before each
    /// epoch and at the end; `on_level` every [`RqVaeConfig::checkpoint_every`] epochs with the
    /// model so far; `resume` continues from a saved model: its weights and epoch count, and
    /// its training state when it carries one (then exactly as if never interrupted).
    pub fn fit_with(
        gpu: &Gpu,
        x: &[f32],
        dim: usize,
        config: &RqVaeConfig,
        hooks: FitHooks<'_, RqVae>,
    ) -> Result<(RqVae, Codes)> {
        config.validate()?;
        rows_of(x, dim, "rqvae fit")?;
        let mut trainer = RqVaeTrainer::new(gpu, dim, config)?;
        let plan = EpochPlan {
            method: "rqvae",
            epochs: config.epochs,
            batch_size: config.batch_size,
            seed: config.seed,
            checkpoint_every: config.checkpoint_every,
            kmeans_init_k: config.kmeans_init.then_some(config.k),
        };
        let model = fit_epochs(&TrainRows { gpu, x, dim }, &plan, &mut trainer, hooks)?;
        let codes = model.encode(gpu, x)?;
        Ok((model, codes))
    }

    /// Rebuilds a model from saved parameters (checked against the config's shapes; kept in
    /// the model's own order, other tensors ignored).
    pub fn from_parts(
        config: RqVaeConfig,
        dim: usize,
        params: Vec<NamedTensor>,
        epochs_done: usize,
    ) -> Result<RqVae> {
        config.validate()?;
        let mut m = RqVae {
            config,
            dim,
            params: Vec::new(),
            epochs_done,
            train_state: None,
            gpu: None,
        };
        for (name, shape) in m.expected_shapes() {
            match params.iter().find(|t| t.name == name) {
                Some(t) if t.shape == shape && t.data.len() == shape.iter().product::<usize>() => {
                    m.params.push(t.clone())
                }
                Some(t) => {
                    return Err(Error::Invalid(format!(
                        "rqvae: parameter `{name}` has shape {:?}, expected {shape:?}",
                        t.shape
                    )))
                }
                None => {
                    return Err(Error::Invalid(format!(
                        "rqvae: parameter `{name}` is missing"
                    )))
                }
            }
        }
        Ok(m)
    }

    /// Uses `gpu` for [`Tokenizer::decode`] and [`Tokenizer::level_reconstructions`] (a fitted
    /// model already has its device; a loaded one decodes on the CPU until given one).
    pub fn set_gpu(&mut self, gpu: &Gpu) {
        self.gpu = Some(gpu.clone());
    }

    /// Every parameter's name and shape, in order.
    fn expected_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for (name, widths) in [
            ("encoder", self.config.encoder_widths(self.dim)),
            ("decoder", self.config.decoder_widths(self.dim)),
        ] {
            for (i, w) in widths.windows(2).enumerate() {
                v.push((format!("{name}.{}.weight", 2 * i), vec![w[1], w[0]]));
                if self.config.bias {
                    v.push((format!("{name}.{}.bias", 2 * i), vec![w[1]]));
                }
            }
        }
        for l in 0..self.config.levels {
            v.push((codebook_name(l), vec![self.config.k, self.config.latent]));
        }
        v
    }

    /// The parameter `name`.
    pub fn param(&self, name: &str) -> Option<&NamedTensor> {
        self.params.iter().find(|t| t.name == name)
    }

    fn data(&self, name: &str) -> Result<&[f32]> {
        self.param(name)
            .map(|t| t.data.as_slice())
            .ok_or_else(|| Error::Invalid(format!("rqvae: parameter `{name}` is missing")))
    }

    /// Level `l`'s codebook, `k × latent`.
    pub fn codebook(&self, l: usize) -> Result<&[f32]> {
        self.data(&codebook_name(l))
    }

    fn frozen_mlp(&self, name: &str, widths: &[usize]) -> Result<FrozenMlp> {
        FrozenMlp::from_named(
            &self.params,
            name,
            widths,
            self.config.bias,
            self.config.activation.activation(),
        )
        .map_err(|e| Error::Invalid(format!("rqvae: {e}")))
    }

    fn upload_mlp(&self, gpu: &Gpu, name: &str, widths: &[usize]) -> Result<GpuMlp> {
        self.frozen_mlp(name, widths)?.upload(gpu)
    }

    fn upload_codebooks(&self, gpu: &Gpu) -> Result<Vec<Tensor>> {
        (0..self.config.levels)
            .map(|l| {
                Tensor::from_slice(gpu, self.codebook(l)?, &[self.config.k, self.config.latent])
            })
            .collect()
    }

    /// The latents of `x` (`n × dim`), `n × latent`, computed on the GPU.
    pub fn latents(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<f32>> {
        let n = rows_of(x, self.dim, "rqvae latents")?;
        let enc = self.upload_mlp(gpu, "encoder", &self.config.encoder_widths(self.dim))?;
        let mut out = Vec::with_capacity(n * self.config.latent);
        for r0 in (0..n).step_by(CHUNK_ROWS) {
            let m = CHUNK_ROWS.min(n - r0);
            let xt =
                Tensor::from_slice(gpu, &x[r0 * self.dim..(r0 + m) * self.dim], &[m, self.dim])?;
            out.extend(enc.forward(&xt)?.to_vec()?);
        }
        Ok(out)
    }

    /// Decodes on the GPU: the decoder applied to the cumulative quantized latent after each
    /// level.
    fn level_reconstructions_gpu(&self, gpu: &Gpu, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        let (n, levels) = (codes.items(), self.config.levels);
        let dec = self.upload_mlp(gpu, "decoder", &self.config.decoder_widths(self.dim))?;
        let cbs = self.upload_codebooks(gpu)?;
        let mut out = vec![Vec::with_capacity(n * self.dim); levels];
        for r0 in (0..n).step_by(CHUNK_ROWS) {
            let m = CHUNK_ROWS.min(n - r0);
            let mut zq: Option<Tensor> = None;
            let mut decoded = Vec::with_capacity(levels);
            for (l, cb) in cbs.iter().enumerate() {
                let idx: Vec<u32> = (r0..r0 + m).map(|i| codes.item(i)[l]).collect();
                let it = Tensor::from_u32(gpu, &idx, &[m])?;
                let e = gather_rows(cb, &it)?;
                let q = match zq {
                    None => e,
                    Some(q) => binary(&q, &e, Binary::Add)?,
                };
                decoded.push(dec.forward(&q)?);
                zq = Some(q);
            }
            // Every level's reconstruction of the chunk in one readback.
            let got = Tensor::read_all(&decoded.iter().collect::<Vec<_>>())?;
            for (o, v) in out.iter_mut().zip(got) {
                o.extend(v);
            }
        }
        Ok(out)
    }

    /// The plain-Rust decoder (f32, the GPU's operation order is not reproduced bit for bit).
    fn level_reconstructions_cpu(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        let (n, levels, lat) = (codes.items(), self.config.levels, self.config.latent);
        let dec = self.frozen_mlp("decoder", &self.config.decoder_widths(self.dim))?;
        let cbs = (0..levels)
            .map(|l| self.codebook(l))
            .collect::<Result<Vec<_>>>()?;
        let mut q = vec![0f32; n * lat];
        let mut out = Vec::with_capacity(levels);
        for (l, cb) in cbs.iter().enumerate() {
            for (i, qi) in q.chunks_exact_mut(lat).enumerate() {
                let c = codes.item(i)[l] as usize;
                for (a, v) in qi.iter_mut().zip(&cb[c * lat..(c + 1) * lat]) {
                    *a += v;
                }
            }
            out.push(dec.forward_cpu(&q));
        }
        Ok(out)
    }
}

impl Tokenizer for RqVae {
    fn method(&self) -> &'static str {
        "rqvae"
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.config.k; self.config.levels]
    }
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        let n = rows_of(x, self.dim, "rqvae encode")?;
        let levels = self.config.levels;
        let enc = self.upload_mlp(gpu, "encoder", &self.config.encoder_widths(self.dim))?;
        let cbs = self.upload_codebooks(gpu)?;
        let mut columns = vec![Vec::with_capacity(n); levels];
        for r0 in (0..n).step_by(CHUNK_ROWS) {
            let m = CHUNK_ROWS.min(n - r0);
            let xt =
                Tensor::from_slice(gpu, &x[r0 * self.dim..(r0 + m) * self.dim], &[m, self.dim])?;
            let mut r = enc.forward(&xt)?;
            let mut idx = Vec::with_capacity(levels);
            for (l, cb) in cbs.iter().enumerate() {
                let i = nearest(&r, cb, Metric::L2)?.index;
                if l + 1 < levels {
                    let e = gather_rows(cb, &i)?;
                    r = binary(&r, &e, Binary::Sub)?;
                }
                idx.push(i);
            }
            // Every level's codes of the chunk in one readback.
            let got = Tensor::read_all_u32(&idx.iter().collect::<Vec<_>>())?;
            for (col, v) in columns.iter_mut().zip(got) {
                col.extend(v);
            }
        }
        Ok(Codes::from_levels(self.sizes(), &columns))
    }
    fn level_reconstructions(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        check_codes(codes, &self.sizes())?;
        match &self.gpu {
            Some(gpu) => self.level_reconstructions_gpu(gpu, codes),
            None => self.level_reconstructions_cpu(codes),
        }
    }
    fn tensors(&self) -> Vec<NamedTensor> {
        self.params.clone()
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

//! RQ-VAE: the residual-quantized autoencoder of TIGER (Rajput et al., NeurIPS '23; Lee et al.,
//! CVPR '22), the learned baseline next to RQ-KMeans and PSRQ (NOTES.md §3).
//!
//! ```text
//! z    = encoder(x)                                   MLP d → 512 → 256 → 128 → 32 (ReLU)
//! r_1  = z;   for l = 1..L:   c_l = argmin_j ‖r_l − C_l[j]‖²,  e_l = C_l[c_l],  r_{l+1} = r_l − e_l
//! ẑ    = z + sg(Σ_l e_l − z)                          straight-through estimator
//! x̂    = decoder(ẑ)                                   MLP 32 → 128 → 256 → 512 → d
//! loss = mean‖x̂ − x‖² + Σ_l ( mean‖sg(r_l) − e_l‖² + β · mean‖r_l − sg(e_l)‖² ),  β = 0.25
//! ```
//!
//! - The nearest code is found by the fused codebook-search kernel (squared L2), on the GPU.
//! - Codebooks are initialised by residual k-means on the latents of the first batch
//!   ([`RqVaeConfig::kmeans_init`]), as TIGER does, so no code starts dead.
//! - A code unused for [`RqVaeConfig::dead_code_steps`] consecutive steps is re-seeded with a
//!   random residual of the current batch at its level (distinct rows, seeded).
//! - Optimizer: Adam (lr 1e-3) by default. TIGER reports Adagrad (lr 0.4) over 20k epochs;
//!   Adam at 1e-3 is what most public reproductions use and converges in far fewer steps. Plain
//!   SGD is available (it is what the `rqvae_step` benchmark times).
//! - Everything is seeded: weights (per parameter name), batch order (per epoch), k-means and
//!   dead-code re-seeding, and every GPU kernel reduces in a fixed order, so one seed gives one
//!   model and one set of codes.
//!
//! Parameters carry PyTorch names (`encoder.0.weight`, `encoder.0.bias`, …, `decoder.6.weight`,
//! `codebook.{l}` `[k, latent]`), in the layout of `nn.Sequential(Linear, ReLU, …, Linear)`.
//!
//! Level reconstructions (for the metrics) are the decoder applied to the cumulative quantized
//! latent `Σ_{m≤l} e_m` after each level; the last is the model's reconstruction.

use super::cluster::{self, KMeansOptions};
use super::codes::Codes;
use super::dead_codes::DeadCodes;
use super::epochs::{fit_epochs, EpochPlan, EpochTrainer, TrainRows};
use super::rq_kmeans::check_codes;
use super::tokenizer::{rows_of, FitHooks, NamedTensor, Tokenizer};
use super::train_state::TrainState;
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::autograd::scale_by;
use crate::kernels::codebook::{nearest, Metric};
use crate::kernels::elementwise::{binary, unary, Binary, Unary};
use crate::kernels::matmul::Activation;
use crate::kernels::movement::{gather_rows, scatter_add_rows, Segments};
use crate::kernels::optim::sum_of_squares;
use crate::nn::{FrozenMlp, GpuMlp, Init, Mlp, MlpConfig, ParamStore};
use crate::optim::{Adam, Optimizer, Sgd};
use crate::tensor::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// Activation between the layers of the encoder and decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationKind {
    /// max(x, 0) (TIGER).
    Relu,
    /// GELU (erf form).
    Gelu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
}

impl ActivationKind {
    /// The matmul epilogue activation.
    pub fn activation(self) -> Activation {
        match self {
            ActivationKind::Relu => Activation::Relu,
            ActivationKind::Gelu => Activation::Gelu,
            ActivationKind::Tanh => Activation::Tanh,
            ActivationKind::Sigmoid => Activation::Sigmoid,
        }
    }
}

/// Optimizer of the RQ-VAE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam (β 0.9 / 0.999, ε 1e-8), PyTorch semantics.
    Adam,
    /// Plain SGD.
    Sgd,
}

/// RQ-VAE settings; the defaults are TIGER's architecture (NOTES.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RqVaeConfig {
    /// Hidden widths of the encoder, input side first (default `[512, 256, 128]`); the decoder
    /// mirrors them.
    pub hidden: Vec<usize>,
    /// Width of the latent and of every code (default 32).
    pub latent: usize,
    /// Activation between layers (default ReLU; none after the last layer).
    pub activation: ActivationKind,
    /// Whether the Linear layers have biases (default true).
    pub bias: bool,
    /// Number of levels (default 3).
    pub levels: usize,
    /// Codes per level (default 256).
    pub k: usize,
    /// Commitment weight β (default 0.25).
    pub beta: f32,
    /// Optimizer (default Adam; see the module docs).
    pub optimizer: OptimizerKind,
    /// Learning rate (default 1e-3).
    pub lr: f32,
    /// Items per step (default 1,024; the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Passes over the items (default 100; TIGER trains far longer).
    pub epochs: usize,
    /// Seed of the weights, the batch order, k-means and dead-code re-seeding.
    pub seed: u64,
    /// Initialise the codebooks by residual k-means on the first batch's latents (default
    /// true); otherwise `U(±1/k)` as in VQ-VAE.
    pub kmeans_init: bool,
    /// Settings of the initialising k-means (level l uses seed `seed + l`).
    pub kmeans: KMeansOptions,
    /// Re-seed a code unused for this many consecutive steps (default 20; 0 = never).
    pub dead_code_steps: usize,
    /// Call the checkpoint hook every this many epochs (default 10; 0 = never; the pipeline
    /// also saves at the end).
    pub checkpoint_every: usize,
}

impl Default for RqVaeConfig {
    fn default() -> Self {
        RqVaeConfig {
            hidden: vec![512, 256, 128],
            latent: 32,
            activation: ActivationKind::Relu,
            bias: true,
            levels: 3,
            k: 256,
            beta: 0.25,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            batch_size: 1024,
            epochs: 100,
            seed: 0,
            kmeans_init: true,
            kmeans: KMeansOptions::default(),
            dead_code_steps: 20,
            checkpoint_every: 10,
        }
    }
}

impl RqVaeConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("rqvae: {m}")));
        if self.levels == 0 || self.k == 0 || self.latent == 0 {
            return bad("levels, k and latent must be positive".into());
        }
        if self.hidden.contains(&0) {
            return bad(format!("hidden widths must be positive: {:?}", self.hidden));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return bad(format!(
                "beta must be a finite value ≥ 0, not {}",
                self.beta
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite value > 0, not {}", self.lr));
        }
        if self.k > u32::MAX as usize {
            return bad(format!("k = {} is too large", self.k));
        }
        Ok(())
    }

    /// Layer widths of the encoder: `[dim, hidden.., latent]`.
    pub fn encoder_widths(&self, dim: usize) -> Vec<usize> {
        let mut w = vec![dim];
        w.extend(&self.hidden);
        w.push(self.latent);
        w
    }

    /// Layer widths of the decoder: `[latent, hidden reversed.., dim]`.
    pub fn decoder_widths(&self, dim: usize) -> Vec<usize> {
        let mut w = vec![self.latent];
        w.extend(self.hidden.iter().rev());
        w.push(dim);
        w
    }
}

/// Name of level `l`'s codebook parameter.
pub fn codebook_name(l: usize) -> String {
    format!("codebook.{l}")
}

/// What one training step leaves on the GPU (nothing is read back).
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// Total loss, `[1]`.
    pub loss: Tensor,
    /// Reconstruction MSE, `[1]`.
    pub recon: Tensor,
    /// The code chosen at each level for each batch row, U32 `[batch]`.
    pub indices: Vec<Tensor>,
    /// The residual entering each level (level 0: the latent), `[batch, latent]`.
    pub residuals: Vec<Tensor>,
}

/// The residual quantization of one batch, recorded as one graph op.
struct ResidualVq {
    /// `Σ_l (mean‖sg(r_l) − e_l‖² + β·mean‖r_l − sg(e_l)‖²)`, `[1]`.
    loss: Var,
    /// `Σ_l e_l` (no gradient: the straight-through estimator routes around it).
    zq: Tensor,
    /// The code of each row at each level.
    indices: Vec<Tensor>,
    /// The residual entering each level (level 0: `z`).
    residuals: Vec<Tensor>,
}

/// Residual quantization of `z` by `codebooks` with the VQ losses, as ONE graph node with a
/// hand-written gradient (instead of ~15 small ops per level).
///
/// With `d_l = r_l − e_l = r_{l+1}` (the residual after level l) and `m` the elements of `z`,
/// both loss terms of a level have the value `mean(d_l²)`, so the node's value is
/// `(1 + β)/m · Σ_l ‖d_l‖²`. Gradients, for an upstream gradient `g`:
/// - codebook term `mean‖sg(r_l) − e_l‖²`: code `c` of level l gets `−2g/m · Σ_{i: c_i = c} d_l[i]`
///   (a deterministic scatter-add);
/// - commitment term `β·mean‖r_l − sg(e_l)‖²`: `r_l = z − Σ_{m<l} sg(e_m)` has a unit Jacobian
///   in `z`, so `z` gets `2βg/m · Σ_l d_l`.
fn residual_vq(g: &Graph, z: &Var, codebooks: &[Var], beta: f32) -> Result<ResidualVq> {
    let m = z.value().numel().max(1) as f64;
    let mut r = z.value().clone();
    let mut zq: Option<Tensor> = None;
    let (mut indices, mut residuals, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for c in codebooks {
        let idx = nearest(&r, c.value(), Metric::L2)?.index;
        let e = gather_rows(c.value(), &idx)?;
        let d = binary(&r, &e, Binary::Sub)?;
        zq = Some(match zq {
            None => e,
            Some(q) => binary(&q, &e, Binary::Add)?,
        });
        residuals.push(r);
        indices.push(idx);
        after.push(d.clone());
        r = d;
    }
    let zq = zq.ok_or_else(|| Error::Invalid("rqvae: no codebooks".into()))?;
    let sq = sum_of_squares(&after.iter().collect::<Vec<_>>())?;
    let loss = unary(
        &sq,
        Unary::Scale {
            alpha: ((1.0 + beta as f64) / m) as f32,
            beta: 0.0,
        },
    )?;
    let mut inputs = vec![z];
    inputs.extend(codebooks.iter());
    let k: Vec<usize> = codebooks.iter().map(|c| c.value().rows()).collect();
    let idx = indices.clone();
    let loss = g.record(
        "residual_vq",
        loss,
        &inputs,
        Box::new(move |up, needs| {
            let mut out = Vec::with_capacity(needs.len());
            out.push(if needs[0] {
                let mut s = after[0].clone();
                for d in &after[1..] {
                    s = binary(&s, d, Binary::Add)?;
                }
                Some(scale_by(&s, up, (2.0 * beta as f64 / m) as f32)?)
            } else {
                None
            });
            for (l, d) in after.iter().enumerate() {
                out.push(if needs[l + 1] {
                    let src = scale_by(d, up, (-2.0 / m) as f32)?;
                    Some(scatter_add_rows(
                        &src,
                        &Segments::from_tensor(&idx[l], k[l])?,
                    )?)
                } else {
                    None
                });
            }
            Ok(out)
        }),
    )?;
    Ok(ResidualVq {
        loss,
        zq,
        indices,
        residuals,
    })
}

/// The RQ-VAE being trained: parameters on the GPU, optimizer state, dead-code bookkeeping.
pub struct RqVaeTrainer {
    gpu: Gpu,
    cfg: RqVaeConfig,
    dim: usize,
    store: ParamStore,
    enc: Mlp,
    dec: Mlp,
    opt: Box<dyn Optimizer>,
    steps: u64,
    codebooks_ready: bool,
    dead: DeadCodes,
}

impl std::fmt::Debug for RqVaeTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RqVaeTrainer(d={}, {} steps, {} parameters)",
            self.dim,
            self.steps,
            self.store.num_elements()
        )
    }
}

impl RqVaeTrainer {
    /// A fresh model for `dim`-wide inputs: weights by PyTorch's Linear initialisation (seeded
    /// per name), codebooks `U(±1/k)` until [`RqVaeTrainer::init_codebooks`] runs.
    pub fn new(gpu: &Gpu, dim: usize, cfg: &RqVaeConfig) -> Result<RqVaeTrainer> {
        cfg.validate()?;
        if dim == 0 {
            return Err(Error::Invalid(
                "rqvae: the input width must be positive".into(),
            ));
        }
        let mut store = ParamStore::new(gpu, cfg.seed);
        let mlp = |w: Vec<usize>| {
            MlpConfig::new(&w)
                .act(cfg.activation.activation())
                .bias(cfg.bias)
        };
        let enc = Mlp::new(&mut store, "encoder", &mlp(cfg.encoder_widths(dim)))?;
        let dec = Mlp::new(&mut store, "decoder", &mlp(cfg.decoder_widths(dim)))?;
        let a = 1.0 / cfg.k as f32;
        for l in 0..cfg.levels {
            store.init(
                &codebook_name(l),
                &[cfg.k, cfg.latent],
                Init::Uniform { lo: -a, hi: a },
                cfg.latent,
                cfg.k,
            )?;
        }
        let opt: Box<dyn Optimizer> = match cfg.optimizer {
            OptimizerKind::Adam => Box::new(Adam::new(cfg.lr)),
            OptimizerKind::Sgd => Box::new(Sgd::new(cfg.lr)),
        };
        Ok(RqVaeTrainer {
            gpu: gpu.clone(),
            cfg: cfg.clone(),
            dim,
            store,
            enc,
            dec,
            opt,
            steps: 0,
            codebooks_ready: !cfg.kmeans_init,
            dead: DeadCodes::new(
                cfg.levels,
                cfg.k,
                cfg.dead_code_steps,
                cfg.seed ^ 0x5eed_dead_c0de,
            ),
        })
    }

    /// Continues from a saved model: its weights, and its training state when it has one (a
    /// fit then continues exactly; without one the optimizer state starts afresh).
    pub fn load(&mut self, model: &RqVae) -> Result<()> {
        if model.dim != self.dim
            || model.config.encoder_widths(model.dim) != self.cfg.encoder_widths(self.dim)
            || model.config.levels != self.cfg.levels
            || model.config.k != self.cfg.k
            || model.config.bias != self.cfg.bias
        {
            return Err(Error::Invalid(format!(
                "rqvae: cannot continue from a model with d={}, widths {:?}, {} levels of {}",
                model.dim,
                model.config.encoder_widths(model.dim),
                model.config.levels,
                model.config.k
            )));
        }
        for t in &model.params {
            self.store.set(&t.name, &t.data)?;
        }
        self.codebooks_ready = true;
        if let Some(ts) = &model.train_state {
            self.steps = ts.restore(&self.store, self.opt.as_mut(), &mut self.dead)?;
        }
        Ok(())
    }

    /// The step count, optimizer state and dead-code counters, read back.
    pub fn train_state(&self) -> Result<TrainState> {
        TrainState::capture(self.steps, self.opt.as_ref(), &self.dead)
    }

    /// The parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The parameters, to overwrite (e.g. set codebooks by hand).
    pub fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Whether the codebooks still wait for their k-means initialisation.
    pub fn needs_init(&self) -> bool {
        !self.codebooks_ready
    }

    /// The latents of a batch `[rows, dim]` (encoder forward, no gradient).
    pub fn latents(&self, x: &Tensor) -> Result<Tensor> {
        let g = Graph::new(&self.gpu);
        let z = self.enc.forward(&g, &self.store, &g.input(x))?;
        Ok(z.value().clone())
    }

    /// Initialises the codebooks by residual k-means on the latents of `x` (TIGER: the first
    /// batch). Needs at least `k` rows.
    pub fn init_codebooks(&mut self, x: &Tensor) -> Result<()> {
        let (k, d) = (self.cfg.k, self.cfg.latent);
        let n = x.rows();
        if n < k {
            return Err(Error::Invalid(format!(
                "rqvae: the k-means initialisation needs at least k = {k} items in the first \
                 batch, got {n} (lower k, raise batch_size, or set kmeans_init = false)"
            )));
        }
        let mut residual = self.latents(x)?.to_vec()?;
        for l in 0..self.cfg.levels {
            let seed = self.cfg.seed.wrapping_add(l as u64);
            let fit = cluster::fit(&self.gpu, &residual, n, d, k, &self.cfg.kmeans, seed)?;
            for (i, &c) in fit.assign.iter().enumerate() {
                let cent = &fit.centroids[c as usize * d..(c as usize + 1) * d];
                for (r, v) in residual[i * d..(i + 1) * d].iter_mut().zip(cent) {
                    *r -= v;
                }
            }
            self.store.set(&codebook_name(l), &fit.centroids)?;
        }
        self.codebooks_ready = true;
        Ok(())
    }

    /// Records one training step on the batch `x` `[rows, dim]`: forward, backward and the
    /// optimizer update. Nothing is submitted or read back. Initialises the codebooks first if
    /// they still wait for it.
    pub fn step(&mut self, x: &Tensor) -> Result<StepOutput> {
        if x.rank() != 2 || x.cols() != self.dim || x.dtype() != DType::F32 {
            return Err(Error::shape(
                "rqvae step",
                format!("the batch {:?} must be f32 [rows, {}]", x.shape(), self.dim),
            ));
        }
        if !self.codebooks_ready {
            self.init_codebooks(x)?;
        }
        let g = Graph::new(&self.gpu);
        let xv = g.input(x);
        let z = self.enc.forward(&g, &self.store, &xv)?;
        let codebooks = (0..self.cfg.levels)
            .map(|l| g.param(&self.store, &codebook_name(l)))
            .collect::<Result<Vec<_>>>()?;
        let vq = residual_vq(&g, &z, &codebooks, self.cfg.beta)?;
        let zst = g.straight_through(&z, &g.input(&vq.zq))?;
        let xh = self.dec.forward(&g, &self.store, &zst)?;
        let recon = g.mse(&xh, &xv)?;
        let loss = g.add(&recon, &vq.loss)?;
        let grads = g.backward(&loss)?;
        self.opt.step(&mut self.store, &grads)?;
        self.steps += 1;
        Ok(StepOutput {
            loss: loss.value().clone(),
            recon: recon.value().clone(),
            indices: vq.indices,
            residuals: vq.residuals,
        })
    }

    /// Dead-code bookkeeping after a step: reads the step's codes back, and re-seeds every code
    /// unused for [`RqVaeConfig::dead_code_steps`] steps with a random residual of the batch at
    /// its level (distinct rows while they last). Returns the number of codes re-seeded.
    pub fn reset_dead_codes(&mut self, out: &StepOutput) -> Result<usize> {
        let names: Vec<String> = (0..self.cfg.levels).map(codebook_name).collect();
        self.dead.update(
            &mut self.store,
            &names,
            &out.indices,
            &out.residuals,
            self.steps,
        )
    }

    /// The model so far (parameters read back), marked with `epochs_done`.
    pub fn snapshot(&self, epochs_done: usize) -> Result<RqVae> {
        Ok(RqVae {
            config: self.cfg.clone(),
            dim: self.dim,
            params: self.store.to_named()?,
            epochs_done,
            train_state: Some(self.train_state()?),
            gpu: Some(self.gpu.clone()),
        })
    }
}

impl EpochTrainer for RqVaeTrainer {
    type Model = RqVae;
    fn resume_from(&mut self, model: &RqVae) -> Result<usize> {
        self.load(model)?;
        Ok(model.epochs_done)
    }
    fn train_batch(&mut self, xb: &Tensor) -> Result<Tensor> {
        let out = self.step(xb)?;
        if self.cfg.dead_code_steps > 0 {
            self.reset_dead_codes(&out)?;
        } else {
            self.gpu.flush()?;
        }
        Ok(out.loss)
    }
    fn needs_init(&self) -> bool {
        RqVaeTrainer::needs_init(self)
    }
    fn init_codebooks(&mut self, xb: &Tensor) -> Result<()> {
        RqVaeTrainer::init_codebooks(self, xb)
    }
    fn snapshot(&self, epochs_done: usize, _x: &[f32]) -> Result<RqVae> {
        RqVaeTrainer::snapshot(self, epochs_done)
    }
}

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
    gpu: Option<Gpu>,
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

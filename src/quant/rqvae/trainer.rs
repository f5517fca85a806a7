//! One RQ-VAE training step through the autograd graph (the residual quantization as one node
//! with a hand-written gradient), and the trainer the epoch loop drives.

use super::config::{codebook_name, OptimizerKind, RqVaeConfig};
use super::model::RqVae;
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::autograd::scale_by;
use crate::kernels::codebook::{nearest, Metric};
use crate::kernels::elementwise::{binary, unary, Binary, Unary};
use crate::kernels::movement::{gather_rows, scatter_add_rows, Segments};
use crate::kernels::optim::sum_of_squares;
use crate::nn::{Init, Mlp, MlpConfig, ParamStore};
use crate::optim::{Adam, Optimizer, Sgd};
use crate::quant::cluster;
use crate::quant::dead_codes::DeadCodes;
use crate::quant::epochs::EpochTrainer;
use crate::quant::soft::SoftForward;
use crate::quant::train_state::TrainState;
use crate::tensor::{DType, Tensor};

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

    /// Records the forward pass of the batch `x` `[rows, dim]` into `g` for behaviour-aware
    /// fine-tuning ([`crate::rank::finetune`]): level by level the soft assignment
    /// `softmax(−‖r_l − c‖² / τ)` over the codes (`inv_tau` = 1/τ; its argmax is the L2-nearest
    /// code the hard forward takes) and the hard code, with the residual `r_{l+1} = r_l −
    /// C_l[code]` kept in the graph, so a downstream loss on level `l` reaches the encoder and
    /// the codebooks of levels `≤ l`; and the reconstruction error through the straight-through
    /// latent, as in stage 1 (the VQ terms are not recorded: the paper's fine-tuning loss has
    /// none).
    pub fn soft_forward(&self, g: &Graph, x: &Tensor, inv_tau: f32) -> Result<SoftForward> {
        if x.rank() != 2 || x.cols() != self.dim || x.dtype() != DType::F32 {
            return Err(Error::shape(
                "rqvae soft forward",
                format!("the batch {:?} must be f32 [rows, {}]", x.shape(), self.dim),
            ));
        }
        let xv = g.input(x);
        let z = self.enc.forward(g, &self.store, &xv)?;
        let (mut soft, mut hard) = (Vec::new(), Vec::new());
        let mut r = z.clone();
        let mut zq: Option<Var> = None;
        for l in 0..self.cfg.levels {
            let c = g.param(&self.store, &codebook_name(l))?;
            let idx = nearest(r.value(), c.value(), Metric::L2)?.index;
            soft.push(g.softmax_rows(&g.l2_logits(&r, &c, inv_tau)?)?);
            let e = g.gather_rows(&c, &idx)?;
            r = g.sub(&r, &e)?;
            zq = Some(match zq {
                None => e,
                Some(q) => g.add(&q, &e)?,
            });
            hard.push(idx);
        }
        let zq = zq.ok_or_else(|| Error::Invalid("rqvae: no codebooks".into()))?;
        let zst = g.straight_through(&z, &g.detach(&zq)?)?;
        let xh = self.dec.forward(g, &self.store, &zst)?;
        Ok(SoftForward {
            soft,
            hard,
            recon: g.mse(&xh, &xv)?,
            aux: None,
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

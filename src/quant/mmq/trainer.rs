//! Training MMQ's stage 1: the shared-specific experts, their codebooks and the decoders, one
//! recorded step at a time (forward, backward and Adam in one submission; nothing read back
//! unless dead codes are tracked).

use super::config::{
    aux_decoder_name, codebook_name, gate_name, Expert, Layout, MmqConfig, ModalitySpec,
};
use super::model::Mmq;
use crate::autograd::{Grads, Graph, Var, NORMALIZE_EPS};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::codebook::nearest;
use crate::kernels::movement::slice_cols;
use crate::nn::{Init, Mlp, MlpConfig, ParamStore};
use crate::optim::{Adam, Optimizer};
use crate::quant::cluster;
use crate::quant::dead_codes::DeadCodes;
use crate::quant::epochs::EpochTrainer;
use crate::quant::soft::SoftForward;
use crate::quant::train_state::TrainState;
use crate::tensor::{DType, Tensor};

/// What one training step leaves on the GPU (nothing is read back). The loss terms are the
/// unweighted per-item means: `recon = mean‖x − x̂‖²`, `aux = Σ_m mean‖e_m − x̂_m‖²`,
/// `ortho = Σ_groups ‖V̂V̂ᵀ − I‖²_F`, `vq = Σ_t mean‖z_t − e_t‖²`, each `[1]`.
#[derive(Clone, Debug)]
pub struct MmqStep {
    /// `α·recon + β·aux + γ·ortho + (codebook_weight + commitment_weight)·vq`, `[1]`.
    pub loss: Tensor,
    /// Reconstruction error of the concatenated input, `[1]`.
    pub recon: Tensor,
    /// Sum of the modality reconstruction errors, `[1]` (0 without specific experts).
    pub aux: Tensor,
    /// Orthogonality penalty summed over the expert groups, `[1]`.
    pub ortho: Tensor,
    /// Quantization error summed over the tokens, `[1]`.
    pub vq: Tensor,
    /// The code each batch row chose for each token, U32 `[batch]`.
    pub indices: Vec<Tensor>,
    /// Each token's expert latents, `[batch, latent]`.
    pub latents: Vec<Tensor>,
}

/// What [`MmqTrainer::record`] leaves in the graph.
struct Recorded {
    /// The stage-1 loss (absent when recording for fine-tuning).
    loss: Option<Var>,
    recon: Var,
    aux: Option<Var>,
    ortho: Option<Var>,
    vq: Option<Var>,
    indices: Vec<Tensor>,
    latents: Vec<Var>,
    /// Per token the soft assignment over its codes (fine-tuning only).
    soft: Vec<Var>,
}

/// The MMQ being trained: parameters on the GPU, Adam state, dead-code bookkeeping.
pub struct MmqTrainer {
    gpu: Gpu,
    layout: Layout,
    store: ParamStore,
    experts: Vec<Mlp>,
    gates: Vec<Mlp>,
    decoder: Mlp,
    aux: Vec<Mlp>,
    opt: Adam,
    steps: u64,
    codebooks_ready: bool,
    dead: DeadCodes,
}

impl std::fmt::Debug for MmqTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MmqTrainer({} tokens over {:?}, {} steps, {} parameters)",
            self.layout.tokens(),
            self.layout
                .modalities
                .iter()
                .map(|m| (&m.name, m.dim))
                .collect::<Vec<_>>(),
            self.steps,
            self.store.num_elements()
        )
    }
}

impl MmqTrainer {
    /// A fresh model over `modalities` (in the input's column order): weights by PyTorch's
    /// Linear initialisation (seeded per name), codebooks `U(±1/k)` until
    /// [`MmqTrainer::init_codebooks`] runs.
    pub fn new(gpu: &Gpu, config: &MmqConfig, modalities: &[ModalitySpec]) -> Result<MmqTrainer> {
        let layout = Layout::new(config, modalities)?;
        let cfg = &layout.config;
        let mut store = ParamStore::new(gpu, cfg.seed);
        let act = cfg.activation.activation();
        let mlp = |w: Vec<usize>| MlpConfig::new(&w).act(act);
        let mut experts = Vec::new();
        for e in layout.experts() {
            experts.push(Mlp::new(
                &mut store,
                &layout.expert_name(e),
                &mlp(layout.expert_widths(e)).bias(cfg.expert_bias),
            )?);
        }
        let (mut gates, mut aux) = (Vec::new(), Vec::new());
        if layout.has_specific() {
            for m in 0..layout.modalities.len() {
                gates.push(Mlp::new(
                    &mut store,
                    &gate_name(m),
                    &mlp(layout.gate_widths(m)),
                )?);
            }
        }
        let decoder = Mlp::new(&mut store, "decoder", &mlp(layout.decoder_widths()))?;
        if layout.has_specific() {
            for m in 0..layout.modalities.len() {
                aux.push(Mlp::new(
                    &mut store,
                    &aux_decoder_name(m),
                    &mlp(layout.aux_decoder_widths(m)),
                )?);
            }
        }
        let a = 1.0 / cfg.k as f32;
        for t in 0..layout.tokens() {
            store.init(
                &codebook_name(t),
                &[cfg.k, cfg.latent],
                Init::Uniform { lo: -a, hi: a },
                cfg.latent,
                cfg.k,
            )?;
        }
        Ok(MmqTrainer {
            gpu: gpu.clone(),
            opt: Adam::new(cfg.lr),
            codebooks_ready: !cfg.kmeans_init,
            dead: DeadCodes::new(
                layout.tokens(),
                cfg.k,
                cfg.dead_code_steps,
                cfg.seed ^ 0x5eed_dead_c0de,
            ),
            layout,
            store,
            experts,
            gates,
            decoder,
            aux,
            steps: 0,
        })
    }

    /// The layout (settings and modalities).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parameters.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The parameters, to overwrite.
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

    /// Continues from a fitted model: its weights, and its training state when it has one (a
    /// fit then continues exactly; without one Adam's state starts afresh).
    pub fn load(&mut self, model: &Mmq) -> Result<()> {
        let theirs = model.layout();
        if theirs.modalities != self.layout.modalities
            || theirs.experts() != self.layout.experts()
            || theirs.config.latent != self.layout.config.latent
            || theirs.config.k != self.layout.config.k
        {
            return Err(Error::Invalid(format!(
                "mmq: cannot continue from a model of {} tokens of {} codes over {:?}",
                theirs.tokens(),
                theirs.config.k,
                theirs.modalities
            )));
        }
        for t in &model.params {
            self.store.set(&t.name, &t.data)?;
        }
        self.codebooks_ready = true;
        if let Some(ts) = &model.train_state {
            self.steps = ts.restore(&self.store, &mut self.opt, &mut self.dead)?;
        }
        Ok(())
    }

    /// The step count, Adam's state and the dead-code counters, read back.
    pub fn train_state(&self) -> Result<TrainState> {
        TrainState::capture(self.steps, &self.opt, &self.dead)
    }

    fn check_batch(&self, x: &Tensor) -> Result<()> {
        if x.rank() != 2 || x.cols() != self.layout.dim() || x.dtype() != DType::F32 {
            return Err(Error::shape(
                "mmq step",
                format!(
                    "the batch {:?} must be f32 [rows, {}]",
                    x.shape(),
                    self.layout.dim()
                ),
            ));
        }
        Ok(())
    }

    /// The input of each modality as graph inputs (the whole batch when there is one).
    fn modality_inputs(&self, g: &Graph, x: &Tensor, xv: &Var) -> Result<Vec<Var>> {
        if self.layout.modalities.len() == 1 {
            return Ok(vec![xv.clone()]);
        }
        (0..self.layout.modalities.len())
            .map(|m| {
                let (a, b) = self.layout.columns(m);
                Ok(g.input(&slice_cols(x, a, b)?))
            })
            .collect()
    }

    /// Every expert's latent of the batch, in token order.
    fn expert_latents(&self, g: &Graph, xv: &Var, parts: &[Var]) -> Result<Vec<Var>> {
        self.layout
            .experts()
            .iter()
            .zip(&self.experts)
            .map(|(e, mlp)| {
                let input = match e {
                    Expert::Shared(_) => xv,
                    Expert::Specific { m, .. } => &parts[*m],
                };
                mlp.forward(g, &self.store, input)
            })
            .collect()
    }

    /// Each token's expert latents of a batch `[rows, dim]` (no gradient).
    pub fn latents(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.check_batch(x)?;
        let g = Graph::new(&self.gpu);
        let xv = g.input(x);
        let parts = self.modality_inputs(&g, x, &xv)?;
        Ok(self
            .expert_latents(&g, &xv, &parts)?
            .into_iter()
            .map(|v| v.value().clone())
            .collect())
    }

    /// Initialises each token's codebook by k-means on its expert's latents of `x` (at least
    /// `k` rows), with the configured metric; each code is then set to the plain mean of the
    /// latents assigned to it, so codes start at the latents' scale even under cosine.
    pub fn init_codebooks(&mut self, x: &Tensor) -> Result<()> {
        let (k, d) = (self.layout.config.k, self.layout.config.latent);
        let n = x.rows();
        if n < k {
            return Err(Error::Invalid(format!(
                "mmq: the k-means initialisation needs at least k = {k} items in the first \
                 batch, got {n} (lower k, raise batch_size, or set kmeans_init = false)"
            )));
        }
        let latents = self.latents(x)?;
        for (t, z) in latents.iter().enumerate() {
            let z = z.to_vec()?;
            let seed = self.layout.config.seed.wrapping_add(t as u64);
            let fit = cluster::fit(&self.gpu, &z, n, d, k, &self.layout.config.kmeans, seed)?;
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0usize; k];
            for (i, &c) in fit.assign.iter().enumerate() {
                counts[c as usize] += 1;
                for (s, v) in sums[c as usize * d..(c as usize + 1) * d]
                    .iter_mut()
                    .zip(&z[i * d..(i + 1) * d])
                {
                    *s += *v as f64;
                }
            }
            let cb: Vec<f32> = (0..k * d)
                .map(|j| match counts[j / d] {
                    0 => fit.centroids[j],
                    c => (sums[j] / c as f64) as f32,
                })
                .collect();
            self.store.set(&codebook_name(t), &cb)?;
        }
        self.codebooks_ready = true;
        Ok(())
    }

    /// Records one training step on the batch `x` `[rows, dim]` (the modalities' columns
    /// side by side): forward, backward and the Adam update. Nothing is submitted or read
    /// back. Initialises the codebooks first if they still wait for it.
    pub fn step(&mut self, x: &Tensor) -> Result<MmqStep> {
        if !self.codebooks_ready {
            self.check_batch(x)?;
            self.init_codebooks(x)?;
        }
        let (out, grads) = self.forward_backward(x)?;
        self.opt.step(&mut self.store, &grads)?;
        self.steps += 1;
        Ok(out)
    }

    /// The forward and backward pass of one batch without the update: the loss terms and
    /// every parameter's gradient (for tests and custom optimizers).
    pub fn forward_backward(&self, x: &Tensor) -> Result<(MmqStep, Grads)> {
        let g = Graph::new(&self.gpu);
        let r = self.record(&g, x, None)?;
        let loss = r
            .loss
            .clone()
            .ok_or_else(|| Error::Invalid("mmq: no loss".into()))?;
        let grads = g.backward(&loss)?;
        let zero = || Tensor::zeros(&self.gpu, &[1]);
        let value = |v: &Option<Var>| match v {
            Some(a) => Ok(a.value().clone()),
            None => zero(),
        };
        let out = MmqStep {
            loss: loss.value().clone(),
            recon: r.recon.value().clone(),
            aux: value(&r.aux)?,
            ortho: value(&r.ortho)?,
            vq: value(&r.vq)?,
            indices: r.indices,
            latents: r.latents.iter().map(|v| v.value().clone()).collect(),
        };
        Ok((out, grads))
    }

    /// Records the forward pass of the batch `x` `[rows, dim]` into `g` for behaviour-aware
    /// fine-tuning (stage 2, [`crate::rank::finetune`]): per token the soft assignment
    /// `softmax(p / τ)` over its codes (`p` the cosine scores, or `−‖z − c‖²` for the L2
    /// ablation; `inv_tau` = 1/τ) and the hard code, and the reconstruction terms of stage 1
    /// (the orthogonality and VQ terms are not recorded: the paper's fine-tuning loss has
    /// neither).
    pub fn soft_forward(&self, g: &Graph, x: &Tensor, inv_tau: f32) -> Result<SoftForward> {
        let r = self.record(g, x, Some(inv_tau))?;
        Ok(SoftForward {
            soft: r.soft,
            hard: r.indices,
            recon: r.recon,
            aux: r.aux,
        })
    }

    /// Records the forward pass: with `soft_tau` the soft assignments of stage 2 and no
    /// stage-1 loss, without it the stage-1 loss and its terms.
    fn record(&self, g: &Graph, x: &Tensor, soft_tau: Option<f32>) -> Result<Recorded> {
        self.check_batch(x)?;
        let cfg = self.layout.config.clone();
        let stage1 = soft_tau.is_none();
        let xv = g.input(x);
        let parts = self.modality_inputs(g, x, &xv)?;
        let z = self.expert_latents(g, &xv, &parts)?;
        let gates = self
            .gates
            .iter()
            .zip(&parts)
            .map(|(mlp, p)| g.softmax_rows(&mlp.forward(g, &self.store, p)?))
            .collect::<Result<Vec<_>>>()?;

        // Quantize every token: cosine (or L2) nearest code, VQ terms, straight-through.
        // Unit latents and codes are compared by direction, as the fitted model encodes.
        let metric = if cfg.spherical {
            crate::kernels::codebook::Metric::Cosine
        } else {
            super::kernel_metric(cfg.metric)
        };
        let (mut indices, mut q, mut soft) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cb_terms, mut commit_terms) = (Vec::new(), Vec::new());
        for (t, zt) in z.iter().enumerate() {
            let mut cb = g.param(&self.store, &codebook_name(t))?;
            let zs;
            let zt = if cfg.spherical {
                cb = g.l2_normalize_rows(&cb, NORMALIZE_EPS)?;
                zs = g.l2_normalize_rows(zt, NORMALIZE_EPS)?;
                &zs
            } else {
                zt
            };
            let idx = nearest(zt.value(), cb.value(), metric)?.index;
            let e = g.gather_rows(&cb, &idx)?;
            let ed = g.detach(&e)?;
            if let Some(inv_tau) = soft_tau {
                let p = match metric {
                    // Unit latents and codes: the cosine is their dot product.
                    _ if cfg.spherical => g.scale(&g.matmul(zt, &cb, false, true)?, inv_tau)?,
                    crate::kernels::codebook::Metric::Cosine => {
                        g.cosine_logits(zt, &cb, inv_tau)?
                    }
                    _ => g.l2_logits(zt, &cb, inv_tau)?,
                };
                soft.push(g.softmax_rows(&p)?);
            } else {
                cb_terms.push(g.mse(&g.detach(zt)?, &e)?);
                commit_terms.push(g.mse(zt, &ed)?);
            }
            q.push(g.straight_through(zt, &ed)?);
            indices.push(idx);
        }

        // Fuse: z_q = Σ shared + Σ_m Σ_i g_{m,i}·specific_{m,i}.
        let nm = self.layout.modalities.len();
        let mut shared: Option<Var> = None;
        let mut modal: Vec<Option<Var>> = vec![None; nm];
        for (e, qt) in self.layout.experts().iter().zip(&q) {
            let (slot, v) = match *e {
                Expert::Shared(_) => (&mut shared, qt.clone()),
                Expert::Specific { m, i } => {
                    let w = g.slice_cols(&gates[m], i, i + 1)?;
                    (&mut modal[m], g.mul(qt, &w)?)
                }
            };
            *slot = Some(match slot.take() {
                None => v,
                Some(s) => g.add(&s, &v)?,
            });
        }
        let mut fused = shared;
        for v in modal.iter().flatten() {
            fused = Some(match fused {
                None => v.clone(),
                Some(s) => g.add(&s, v)?,
            });
        }
        let fused = fused.ok_or_else(|| Error::Invalid("mmq: no experts".into()))?;

        let per_item = |v: &Var, width: usize| g.scale(v, width as f32);
        let xh = self.decoder.forward(g, &self.store, &fused)?;
        let recon = per_item(&g.mse(&xh, &xv)?, self.layout.dim())?;
        let mut aux: Option<Var> = None;
        for (m, dec) in self.aux.iter().enumerate().filter(|_| cfg.aux_weight > 0.0) {
            let Some(input) = &modal[m] else { continue };
            let xm = dec.forward(g, &self.store, input)?;
            let a = per_item(&g.mse(&xm, &parts[m])?, self.layout.modalities[m].dim)?;
            aux = Some(match aux {
                None => a,
                Some(s) => g.add(&s, &a)?,
            });
        }
        let mut out = Recorded {
            loss: None,
            recon,
            aux,
            ortho: None,
            vq: None,
            indices,
            latents: z,
            soft,
        };
        if !stage1 {
            return Ok(out);
        }
        // A term weighted zero is not computed at all (its value reads 0).
        let ortho = if cfg.ortho_weight > 0.0 {
            self.ortho(g)?
        } else {
            None
        };
        let sum = |v: &[Var]| -> Result<Var> {
            let mut s = v[0].clone();
            for x in &v[1..] {
                s = g.add(&s, x)?;
            }
            Ok(s)
        };
        let vq_cb = per_item(&sum(&cb_terms)?, cfg.latent)?;
        let vq_commit = per_item(&sum(&commit_terms)?, cfg.latent)?;

        let mut loss = g.add(
            &g.scale(&out.recon, cfg.recon_weight)?,
            &g.scale(&vq_cb, cfg.codebook_weight)?,
        )?;
        loss = g.add(&loss, &g.scale(&vq_commit, cfg.commitment_weight)?)?;
        if let Some(a) = &out.aux {
            loss = g.add(&loss, &g.scale(a, cfg.aux_weight)?)?;
        }
        if let Some(o) = &ortho {
            loss = g.add(&loss, &g.scale(o, cfg.ortho_weight)?)?;
        }
        out.loss = Some(loss);
        out.ortho = ortho;
        out.vq = Some(vq_cb);
        Ok(out)
    }

    /// `Σ_groups ‖V̂V̂ᵀ − I‖²_F`: per group of experts (the shared ones; each modality's
    /// specific ones), each expert's weight matrices flattened into one row of V, rows
    /// L2-normalised. `None` when no group has two experts.
    ///
    /// The diagonal of `V̂V̂ᵀ` is 1 by construction, so the penalty is `2 Σ_{i<j} cos²(v_i, v_j)`;
    /// it is computed from elementwise products and full sums (`v_i·v_j` and `‖v_i‖²` summed over
    /// the layers), which parallelise over the hundreds of thousands of weights, where a Gram
    /// matmul would give a 2×2 result a reduction that long.
    fn ortho(&self, g: &Graph) -> Result<Option<Var>> {
        let experts = self.layout.experts();
        let mut groups: Vec<Vec<&Mlp>> = vec![Vec::new(); 1 + self.layout.modalities.len()];
        for (e, mlp) in experts.iter().zip(&self.experts) {
            match e {
                Expert::Shared(_) => groups[0].push(mlp),
                Expert::Specific { m, .. } => groups[1 + m].push(mlp),
            }
        }
        let sum_over = |parts: Vec<Var>| -> Result<Var> {
            let mut s = parts[0].clone();
            for p in &parts[1..] {
                s = g.add(&s, p)?;
            }
            Ok(s)
        };
        let mut total: Option<Var> = None;
        for group in groups.iter().filter(|gr| gr.len() >= 2) {
            let weights = group
                .iter()
                .map(|mlp| {
                    mlp.layers
                        .iter()
                        .map(|l| g.param(&self.store, &l.weight))
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            let sq_norms = weights
                .iter()
                .map(|ws| {
                    sum_over(
                        ws.iter()
                            .map(|w| g.sum(&g.square(w)?))
                            .collect::<Result<_>>()?,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            for i in 0..weights.len() {
                for j in i + 1..weights.len() {
                    let dots = weights[i]
                        .iter()
                        .zip(&weights[j])
                        .map(|(a, b)| g.sum(&g.mul(a, b)?))
                        .collect::<Result<Vec<_>>>()?;
                    let dot = sum_over(dots)?;
                    let denom = g.add_scalar(&g.mul(&sq_norms[i], &sq_norms[j])?, 1e-30)?;
                    let cos2 = g.div(&g.square(&dot)?, &denom)?;
                    let term = g.scale(&cos2, 2.0)?;
                    total = Some(match total {
                        None => term,
                        Some(s) => g.add(&s, &term)?,
                    });
                }
            }
        }
        Ok(total)
    }

    /// Dead-code bookkeeping after a step: reads the step's codes back (one transfer) and
    /// re-seeds every code unused for [`MmqConfig::dead_code_steps`] steps with a random latent
    /// of its expert from the batch. Returns the number of codes re-seeded.
    pub fn reset_dead_codes(&mut self, out: &MmqStep) -> Result<usize> {
        let names: Vec<String> = (0..self.layout.tokens()).map(codebook_name).collect();
        self.dead.update(
            &mut self.store,
            &names,
            &out.indices,
            &out.latents,
            self.steps,
        )
    }

    /// The model so far (parameters read back), marked with `epochs_done`; its mean gates are
    /// averaged over the items `x` (`n × dim`).
    pub fn snapshot(&self, epochs_done: usize, x: &[f32]) -> Result<Mmq> {
        let mut m = Mmq::from_trained(
            self.layout.clone(),
            self.store.to_named()?,
            epochs_done,
            &self.gpu,
        )?;
        m.gate_means = m.mean_gates(&self.gpu, x)?;
        m.train_state = Some(self.train_state()?);
        Ok(m)
    }
}

impl EpochTrainer for MmqTrainer {
    type Model = Mmq;
    fn resume_from(&mut self, model: &Mmq) -> Result<usize> {
        self.load(model)?;
        Ok(model.epochs_done)
    }
    fn train_batch(&mut self, xb: &Tensor) -> Result<Tensor> {
        let out = self.step(xb)?;
        if self.layout.config.dead_code_steps > 0 {
            self.reset_dead_codes(&out)?;
        } else {
            self.gpu.flush()?;
        }
        Ok(out.loss)
    }
    fn needs_init(&self) -> bool {
        MmqTrainer::needs_init(self)
    }
    fn init_codebooks(&mut self, xb: &Tensor) -> Result<()> {
        MmqTrainer::init_codebooks(self, xb)
    }
    fn snapshot(&self, epochs_done: usize, x: &[f32]) -> Result<Mmq> {
        MmqTrainer::snapshot(self, epochs_done, x)
    }
}

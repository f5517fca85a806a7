//! A fitted MMQ tokenizer: fitting (the epoch loop around [`MmqTrainer`]), encoding new items,
//! decoding codes, and the parameters a checkpoint holds.

use super::config::{
    codebook_name, gate_mean_name, gate_name, Expert, Layout, MmqConfig, ModalitySpec,
};
use super::trainer::MmqTrainer;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::codebook::nearest;
use crate::kernels::elementwise::{binary, Binary};
use crate::kernels::movement::{gather_rows, slice_cols};
use crate::kernels::norm::softmax_rows;
use crate::nn::{FrozenMlp, GpuMlp};
use crate::quant::codes::Codes;
use crate::quant::epochs::{fit_epochs, EpochPlan, TrainRows};
use crate::quant::rq_kmeans::check_codes;
use crate::quant::tokenizer::{rows_of, FitHooks, NamedTensor, Tokenizer};
use crate::quant::train_state::TrainState;
use crate::tensor::Tensor;

/// Rows encoded or decoded per GPU pass.
const CHUNK_ROWS: usize = 8192;

/// A fitted MMQ tokenizer: its weights and codebooks on the CPU (uploaded per call).
#[derive(Clone, Debug)]
pub struct Mmq {
    /// The settings it was trained with.
    pub config: MmqConfig,
    /// The modalities, in the input's column order.
    pub modalities: Vec<ModalitySpec>,
    /// Every trained parameter (see [`Layout`] for the names).
    pub params: Vec<NamedTensor>,
    /// Each modality's gate averaged over the training items (`specific_experts` values):
    /// the expert weights [`Tokenizer::decode`] uses when it has only codes.
    pub gate_means: Vec<Vec<f32>>,
    /// Epochs trained.
    pub epochs_done: usize,
    /// The training state at the end of those epochs (to resume exactly), when known.
    pub train_state: Option<TrainState>,
    gpu: Option<Gpu>,
}

/// The networks of a model on a device.
struct OnDevice {
    experts: Vec<GpuMlp>,
    gates: Vec<GpuMlp>,
    decoder: GpuMlp,
    codebooks: Vec<Tensor>,
}

impl Mmq {
    /// Fits MMQ on `x` (`n × Σ dim`, each row the modalities' embeddings side by side in the
    /// order of `modalities`) and returns the training items' codes.
    pub fn fit(
        gpu: &Gpu,
        x: &[f32],
        modalities: &[ModalitySpec],
        config: &MmqConfig,
    ) -> Result<(Mmq, Codes)> {
        FitHooks::none(|h| Self::fit_with(gpu, x, modalities, config, h))
    }

    /// [`Mmq::fit`] with hooks: `progress` gets (epochs done, epochs) before each epoch and at
    /// the end; `on_level` gets the model every [`MmqConfig::checkpoint_every`] epochs;
    /// `resume` continues from a saved model: its weights and epoch count, and its training
    /// state when it carries one (then exactly as if never interrupted).
    pub fn fit_with(
        gpu: &Gpu,
        x: &[f32],
        modalities: &[ModalitySpec],
        config: &MmqConfig,
        hooks: FitHooks<'_, Mmq>,
    ) -> Result<(Mmq, Codes)> {
        let layout = Layout::new(config, modalities)?;
        let dim = layout.dim();
        rows_of(x, dim, "mmq fit")?;
        let mut trainer = MmqTrainer::new(gpu, config, modalities)?;
        let plan = EpochPlan {
            method: "mmq",
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

    /// A model straight from a trainer (gate means still uniform).
    pub(crate) fn from_trained(
        layout: Layout,
        params: Vec<NamedTensor>,
        epochs_done: usize,
        gpu: &Gpu,
    ) -> Result<Mmq> {
        let nsp = layout.config.specific_experts;
        let uniform = vec![1.0 / nsp.max(1) as f32; nsp];
        let mut m = Mmq {
            gate_means: vec![uniform; if nsp > 0 { layout.modalities.len() } else { 0 }],
            config: layout.config,
            modalities: layout.modalities,
            params: Vec::new(),
            epochs_done,
            train_state: None,
            gpu: Some(gpu.clone()),
        };
        m.params = m.pick_params(&params)?;
        Ok(m)
    }

    /// Rebuilds a model from saved tensors (the parameters and `gate_mean.{m}`), checked
    /// against the shapes the config and modalities imply.
    pub fn from_parts(
        config: MmqConfig,
        modalities: Vec<ModalitySpec>,
        tensors: Vec<NamedTensor>,
        epochs_done: usize,
    ) -> Result<Mmq> {
        let layout = Layout::new(&config, &modalities)?;
        let nsp = config.specific_experts;
        let gate_means = if layout.has_specific() {
            (0..modalities.len())
                .map(|m| {
                    let name = gate_mean_name(m);
                    match tensors.iter().find(|t| t.name == name) {
                        Some(t) if t.data.len() == nsp => Ok(t.data.clone()),
                        Some(t) => Err(Error::Invalid(format!(
                            "mmq: `{name}` has {} values, expected {nsp}",
                            t.data.len()
                        ))),
                        None => Err(Error::Invalid(format!("mmq: tensor `{name}` is missing"))),
                    }
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let mut m = Mmq {
            config,
            modalities,
            params: Vec::new(),
            gate_means,
            epochs_done,
            train_state: None,
            gpu: None,
        };
        m.params = m.pick_params(&tensors)?;
        Ok(m)
    }

    /// Every parameter the layout names, in order, with its shape checked.
    fn pick_params(&self, tensors: &[NamedTensor]) -> Result<Vec<NamedTensor>> {
        self.expected_shapes()
            .into_iter()
            .map(
                |(name, shape)| match tensors.iter().find(|t| t.name == name) {
                    Some(t)
                        if t.shape == shape && t.data.len() == shape.iter().product::<usize>() =>
                    {
                        Ok(t.clone())
                    }
                    Some(t) => Err(Error::Invalid(format!(
                        "mmq: parameter `{name}` has shape {:?}, expected {shape:?}",
                        t.shape
                    ))),
                    None => Err(Error::Invalid(format!(
                        "mmq: parameter `{name}` is missing"
                    ))),
                },
            )
            .collect()
    }

    /// The settings and modalities as a [`Layout`].
    pub fn layout(&self) -> Layout {
        Layout {
            config: self.config.clone(),
            modalities: self.modalities.clone(),
        }
    }

    /// Every parameter's name and shape, in order.
    fn expected_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let layout = self.layout();
        let mut nets: Vec<(String, Vec<usize>, bool)> = layout
            .experts()
            .into_iter()
            .map(|e| {
                (
                    layout.expert_name(e),
                    layout.expert_widths(e),
                    self.config.expert_bias,
                )
            })
            .collect();
        if layout.has_specific() {
            for m in 0..layout.modalities.len() {
                nets.push((gate_name(m), layout.gate_widths(m), true));
            }
        }
        nets.push(("decoder".into(), layout.decoder_widths(), true));
        if layout.has_specific() {
            for m in 0..layout.modalities.len() {
                nets.push((
                    super::config::aux_decoder_name(m),
                    layout.aux_decoder_widths(m),
                    true,
                ));
            }
        }
        let mut v = Vec::new();
        for (name, widths, bias) in nets {
            for (i, w) in widths.windows(2).enumerate() {
                v.push((format!("{name}.{}.weight", 2 * i), vec![w[1], w[0]]));
                if bias {
                    v.push((format!("{name}.{}.bias", 2 * i), vec![w[1]]));
                }
            }
        }
        for t in 0..layout.tokens() {
            v.push((codebook_name(t), vec![self.config.k, self.config.latent]));
        }
        v
    }

    /// The parameter `name`.
    pub fn param(&self, name: &str) -> Option<&NamedTensor> {
        self.params.iter().find(|t| t.name == name)
    }

    /// Token `t`'s codebook parameter, `k × latent`.
    pub fn codebook(&self, t: usize) -> Result<&[f32]> {
        self.param(&codebook_name(t))
            .map(|p| p.data.as_slice())
            .ok_or_else(|| Error::Invalid(format!("mmq: no codebook {t}")))
    }

    /// The codes token `t` quantizes to, `k × latent`: the codebook's rows, L2-normalised when
    /// [`MmqConfig::spherical`].
    pub fn codes_of(&self, t: usize) -> Result<Vec<f32>> {
        let mut out = self.codebook(t)?.to_vec();
        if self.config.spherical {
            for row in out.chunks_exact_mut(self.config.latent) {
                let n = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
                let n = n.max(crate::autograd::NORMALIZE_EPS as f64);
                row.iter_mut().for_each(|v| *v = (*v as f64 / n) as f32);
            }
        }
        Ok(out)
    }

    /// Uses `gpu` for [`Tokenizer::decode`] (a fitted model already has its device; a loaded
    /// one decodes on the CPU until given one).
    pub fn set_gpu(&mut self, gpu: &Gpu) {
        self.gpu = Some(gpu.clone());
    }

    fn frozen(&self, name: &str, widths: &[usize]) -> Result<FrozenMlp> {
        self.frozen_with(name, widths, true)
    }

    fn frozen_expert(&self, layout: &Layout, e: Expert) -> Result<FrozenMlp> {
        self.frozen_with(
            &layout.expert_name(e),
            &layout.expert_widths(e),
            self.config.expert_bias,
        )
    }

    fn frozen_with(&self, name: &str, widths: &[usize], bias: bool) -> Result<FrozenMlp> {
        FrozenMlp::from_named(
            &self.params,
            name,
            widths,
            bias,
            self.config.activation.activation(),
        )
        .map_err(|e| Error::Invalid(format!("mmq: {e}")))
    }

    /// Each modality's gate network on `gpu` (none without specific experts).
    fn upload_gates(&self, gpu: &Gpu) -> Result<Vec<GpuMlp>> {
        let layout = self.layout();
        if !layout.has_specific() {
            return Ok(Vec::new());
        }
        (0..layout.modalities.len())
            .map(|m| {
                self.frozen(&gate_name(m), &layout.gate_widths(m))?
                    .upload(gpu)
            })
            .collect()
    }

    fn upload(&self, gpu: &Gpu) -> Result<OnDevice> {
        let layout = self.layout();
        let experts = layout
            .experts()
            .into_iter()
            .map(|e| self.frozen_expert(&layout, e)?.upload(gpu))
            .collect::<Result<Vec<_>>>()?;
        let gates = self.upload_gates(gpu)?;
        let decoder = self
            .frozen("decoder", &layout.decoder_widths())?
            .upload(gpu)?;
        let codebooks = (0..layout.tokens())
            .map(|t| {
                Tensor::from_slice(
                    gpu,
                    &self.codes_of(t)?,
                    &[self.config.k, self.config.latent],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(OnDevice {
            experts,
            gates,
            decoder,
            codebooks,
        })
    }

    /// Each modality's columns of a chunk (the chunk itself when there is one modality).
    fn parts(&self, xt: &Tensor) -> Result<Vec<Tensor>> {
        let layout = self.layout();
        if layout.modalities.len() == 1 {
            return Ok(vec![xt.clone()]);
        }
        (0..layout.modalities.len())
            .map(|m| {
                let (a, b) = layout.columns(m);
                slice_cols(xt, a, b)
            })
            .collect()
    }

    /// Runs `f` on each chunk of `x`'s rows, uploaded, with its modality parts.
    fn chunks(
        &self,
        gpu: &Gpu,
        x: &[f32],
        what: &'static str,
        mut f: impl FnMut(usize, &Tensor, &[Tensor]) -> Result<()>,
    ) -> Result<()> {
        let dim = self.dim();
        let n = rows_of(x, dim, what)?;
        for r0 in (0..n).step_by(CHUNK_ROWS) {
            let m = CHUNK_ROWS.min(n - r0);
            let xt = Tensor::from_slice(gpu, &x[r0 * dim..(r0 + m) * dim], &[m, dim])?;
            let parts = self.parts(&xt)?;
            f(r0, &xt, &parts)?;
        }
        Ok(())
    }

    /// Each token's expert latent of the items `x` (`n × dim`), each `n × latent`.
    pub fn latents(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let dev = self.upload(gpu)?;
        let experts = self.layout().experts();
        let mut out = vec![Vec::new(); experts.len()];
        self.chunks(gpu, x, "mmq latents", |_, xt, parts| {
            let z = experts
                .iter()
                .enumerate()
                .map(|(t, e)| dev.experts[t].forward(input_of(*e, xt, parts)))
                .collect::<Result<Vec<_>>>()?;
            for (o, v) in out
                .iter_mut()
                .zip(Tensor::read_all(&z.iter().collect::<Vec<_>>())?)
            {
                o.extend(v);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Each modality's gate over its specific experts for the items `x`, each
    /// `n × specific_experts` (none without specific experts).
    pub fn gates(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        // Only the gate networks: the mean gates are taken at every checkpoint.
        let gates = self.upload_gates(gpu)?;
        let mut out = vec![Vec::new(); gates.len()];
        self.chunks(gpu, x, "mmq gates", |_, _, parts| {
            let g = gates
                .iter()
                .zip(parts)
                .map(|(gate, p)| softmax_rows(&gate.forward(p)?))
                .collect::<Result<Vec<_>>>()?;
            for (o, v) in out
                .iter_mut()
                .zip(Tensor::read_all(&g.iter().collect::<Vec<_>>())?)
            {
                o.extend(v);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The gates averaged over the items `x`.
    pub(crate) fn mean_gates(&self, gpu: &Gpu, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let nsp = self.config.specific_experts;
        let gates = self.gates(gpu, x)?;
        Ok(gates
            .iter()
            .map(|g| {
                let n = (g.len() / nsp.max(1)).max(1);
                (0..nsp)
                    .map(|i| {
                        (g.iter()
                            .skip(i)
                            .step_by(nsp)
                            .map(|v| *v as f64)
                            .sum::<f64>()
                            / n as f64) as f32
                    })
                    .collect()
            })
            .collect())
    }

    /// The decoder applied to the partial fused latent after each token, on the GPU, with the
    /// gates of the items `x` when given, else the mean gates.
    fn reconstruct_gpu(
        &self,
        gpu: &Gpu,
        codes: &Codes,
        x: Option<&[f32]>,
    ) -> Result<Vec<Vec<f32>>> {
        check_codes(codes, &self.sizes())?;
        let dev = self.upload(gpu)?;
        let (n, experts) = (codes.items(), self.layout().experts());
        let mut out = vec![Vec::with_capacity(n * self.dim()); experts.len()];
        let mut run = |r0: usize, m: usize, gates: &[Tensor]| -> Result<()> {
            let mut acc: Option<Tensor> = None;
            let mut decoded = Vec::with_capacity(experts.len());
            for (t, e) in experts.iter().enumerate() {
                let idx: Vec<u32> = (r0..r0 + m).map(|i| codes.item(i)[t]).collect();
                let mut v = gather_rows(&dev.codebooks[t], &Tensor::from_u32(gpu, &idx, &[m])?)?;
                if let Expert::Specific { m: mi, i } = *e {
                    v = binary(&v, &slice_cols(&gates[mi], i, i + 1)?, Binary::Mul)?;
                }
                let q = match acc {
                    None => v,
                    Some(a) => binary(&a, &v, Binary::Add)?,
                };
                decoded.push(dev.decoder.forward(&q)?);
                acc = Some(q);
            }
            // Every token's reconstruction of the chunk in one readback.
            let got = Tensor::read_all(&decoded.iter().collect::<Vec<_>>())?;
            for (o, v) in out.iter_mut().zip(got) {
                o.extend(v);
            }
            Ok(())
        };
        match x {
            Some(x) => {
                if rows_of(x, self.dim(), "mmq reconstruct")? != n {
                    return Err(Error::shape(
                        "mmq reconstruct",
                        format!("{} items have {n} codes", x.len() / self.dim()),
                    ));
                }
                self.chunks(gpu, x, "mmq reconstruct", |r0, xt, parts| {
                    let gates = dev
                        .gates
                        .iter()
                        .zip(parts)
                        .map(|(g, p)| softmax_rows(&g.forward(p)?))
                        .collect::<Result<Vec<_>>>()?;
                    run(r0, xt.rows(), &gates)
                })?;
            }
            None => {
                for r0 in (0..n).step_by(CHUNK_ROWS) {
                    let m = CHUNK_ROWS.min(n - r0);
                    let gates = self
                        .gate_means
                        .iter()
                        .map(|g| Tensor::from_slice(gpu, &g.repeat(m), &[m, g.len()]))
                        .collect::<Result<Vec<_>>>()?;
                    run(r0, m, &gates)?;
                }
            }
        }
        Ok(out)
    }

    /// [`Mmq::reconstruct_gpu`] with the mean gates, in plain Rust.
    fn reconstruct_cpu(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        check_codes(codes, &self.sizes())?;
        let layout = self.layout();
        let dec = self.frozen("decoder", &layout.decoder_widths())?;
        let (n, d) = (codes.items(), self.config.latent);
        let mut q = vec![0f32; n * d];
        let mut out = Vec::new();
        for (t, e) in layout.experts().iter().enumerate() {
            let cb = self.codes_of(t)?;
            let w = match *e {
                Expert::Shared(_) => 1.0,
                Expert::Specific { m, i } => self.gate_means[m][i],
            };
            for (i, qi) in q.chunks_exact_mut(d).enumerate() {
                let c = codes.item(i)[t] as usize;
                for (a, v) in qi.iter_mut().zip(&cb[c * d..(c + 1) * d]) {
                    *a += w * v;
                }
            }
            out.push(dec.forward_cpu(&q));
        }
        Ok(out)
    }
}

/// The input an expert reads: the whole row (shared) or its modality's columns.
fn input_of<'a>(e: Expert, xt: &'a Tensor, parts: &'a [Tensor]) -> &'a Tensor {
    match e {
        Expert::Shared(_) => xt,
        Expert::Specific { m, .. } => &parts[m],
    }
}

impl Tokenizer for Mmq {
    fn method(&self) -> &'static str {
        "mmq"
    }
    fn dim(&self) -> usize {
        self.modalities.iter().map(|m| m.dim).sum()
    }
    fn sizes(&self) -> Vec<usize> {
        vec![self.config.k; self.layout().tokens()]
    }
    fn encode(&self, gpu: &Gpu, x: &[f32]) -> Result<Codes> {
        let dev = self.upload(gpu)?;
        let experts = self.layout().experts();
        // Under `spherical` the codes are unit rows and the latents are compared by direction
        // (L2 between unit vectors orders codes as the cosine does).
        let metric = if self.config.spherical {
            crate::kernels::codebook::Metric::Cosine
        } else {
            super::kernel_metric(self.config.metric)
        };
        let mut columns = vec![Vec::new(); experts.len()];
        self.chunks(gpu, x, "mmq encode", |_, xt, parts| {
            let idx = experts
                .iter()
                .enumerate()
                .map(|(t, e)| {
                    let z = dev.experts[t].forward(input_of(*e, xt, parts))?;
                    Ok(nearest(&z, &dev.codebooks[t], metric)?.index)
                })
                .collect::<Result<Vec<_>>>()?;
            // Every token's codes of the chunk in one readback.
            let got = Tensor::read_all_u32(&idx.iter().collect::<Vec<_>>())?;
            for (col, v) in columns.iter_mut().zip(got) {
                col.extend(v);
            }
            Ok(())
        })?;
        Ok(Codes::from_levels(self.sizes(), &columns))
    }
    /// The decoder after each token's code is added, with each modality's experts weighed by
    /// the mean gates of the training items (codes alone do not give an item's gates).
    fn level_reconstructions(&self, codes: &Codes) -> Result<Vec<Vec<f32>>> {
        match &self.gpu {
            Some(gpu) => self.reconstruct_gpu(gpu, codes, None),
            None => self.reconstruct_cpu(codes),
        }
    }
    /// The decoder after each token's code is added, with the items' own gates: the model's
    /// reconstruction as trained.
    fn input_reconstructions(&self, gpu: &Gpu, x: &[f32], codes: &Codes) -> Result<Vec<Vec<f32>>> {
        self.reconstruct_gpu(gpu, codes, Some(x))
    }
    fn tensors(&self) -> Vec<NamedTensor> {
        let mut v = self.params.clone();
        for (m, g) in self.gate_means.iter().enumerate() {
            v.push(NamedTensor {
                name: gate_mean_name(m),
                shape: vec![g.len()],
                data: g.clone(),
            });
        }
        v
    }
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}

//! A BERT encoder (such as all-MiniLM-L6-v2) on semid's own kernels: configuration from
//! `config.json`, weights from `model.safetensors`, and the GPU forward pass with masked mean
//! pooling.
//!
//! The forward pass of one batch is recorded as one run of dispatches with no readback:
//! word + position + token-type embeddings and layernorm; per layer one fused QKV matmul,
//! [`attention_packed`], the output projection, a residual add and layernorm
//! ([`add_layernorm`], fused), the GELU feed-forward, a residual add and layernorm; then masked
//! mean pooling (a batched matmul with weights `1/len` on the real tokens) and optional L2
//! normalisation.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::attention::{add_layernorm, attention_packed, AttentionOpts};
use crate::kernels::elementwise::{binary, unary, Binary, Unary};
use crate::kernels::matmul::{matmul, Activation, MatmulOpts};
use crate::kernels::movement::gather_rows;
use crate::kernels::reduce::{reduce_rows, RowReduce};
use crate::tensor::Tensor;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// The smallest norm L2 normalisation divides by (as `torch.nn.functional.normalize`).
pub const NORMALIZE_EPS: f32 = 1e-12;

fn default_ln_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}

/// The fields of a Hugging Face BERT `config.json` that the forward pass needs.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct BertConfig {
    /// Word-piece vocabulary size.
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation: `gelu` (erf form), `gelu_new` / `gelu_pytorch_tanh` (tanh
    /// form) or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the position embedding table (the longest input).
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Layernorm epsilon.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: u32,
}

impl BertConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<BertConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| Error::Data {
            file: path.to_path_buf(),
            row: e.line(),
            field: "config".into(),
            message: format!("not a BERT config.json: {e}"),
        })?;
        cfg.validate().map_err(|message| Error::Data {
            file: path.to_path_buf(),
            row: 0,
            field: "config".into(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || self.vocab_size == 0
            || self.intermediate_size == 0
            || self.max_position_embeddings == 0
            || self.type_vocab_size == 0
        {
            return Err("sizes must be positive".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.head_dim() > crate::kernels::attention::MAX_HEAD_DIM {
            return Err(format!(
                "head size {} exceeds the attention kernel's {}",
                self.head_dim(),
                crate::kernels::attention::MAX_HEAD_DIM
            ));
        }
        self.activation()?;
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps >= 0.0) {
            return Err(format!("layer_norm_eps {} is invalid", self.layer_norm_eps));
        }
        Ok(())
    }

    /// Values per attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// The feed-forward activation.
    pub fn activation(&self) -> std::result::Result<FfnActivation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(FfnActivation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(FfnActivation::GeluTanh),
            "relu" => Ok(FfnActivation::Relu),
            other => Err(format!(
                "hidden_act `{other}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"
            )),
        }
    }
}

/// The feed-forward activations supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnActivation {
    /// GELU, exact (erf) form.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// max(x, 0).
    Relu,
}

impl FfnActivation {
    /// The CPU reference.
    pub fn cpu(self, x: f32) -> f32 {
        match self {
            FfnActivation::Gelu => Unary::Gelu.cpu(x),
            FfnActivation::GeluTanh => Unary::GeluTanh.cpu(x),
            FfnActivation::Relu => x.max(0.0),
        }
    }
}

/// A row-major f32 weight with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// Shape (PyTorch's: a Linear weight is `[out, in]`).
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// The weights of one encoder layer (Linear weights are `[out, in]`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    /// Query projection.
    pub q_w: Weight,
    /// Query bias.
    pub q_b: Weight,
    /// Key projection.
    pub k_w: Weight,
    /// Key bias.
    pub k_b: Weight,
    /// Value projection.
    pub v_w: Weight,
    /// Value bias.
    pub v_b: Weight,
    /// Attention output projection.
    pub o_w: Weight,
    /// Its bias.
    pub o_b: Weight,
    /// Layernorm after attention: scale.
    pub ln1_g: Weight,
    /// Layernorm after attention: shift.
    pub ln1_b: Weight,
    /// Feed-forward in (`[intermediate, hidden]`).
    pub ffn_in_w: Weight,
    /// Its bias.
    pub ffn_in_b: Weight,
    /// Feed-forward out (`[hidden, intermediate]`).
    pub ffn_out_w: Weight,
    /// Its bias.
    pub ffn_out_b: Weight,
    /// Layernorm after the feed-forward: scale.
    pub ln2_g: Weight,
    /// Layernorm after the feed-forward: shift.
    pub ln2_b: Weight,
}

/// Every weight of a BERT encoder, on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct BertWeights {
    /// The configuration.
    pub config: BertConfig,
    /// Word embeddings `[vocab, hidden]`.
    pub word: Weight,
    /// Position embeddings `[max_positions, hidden]`.
    pub position: Weight,
    /// Token-type embeddings `[type_vocab, hidden]`.
    pub token_type: Weight,
    /// Embedding layernorm scale.
    pub emb_ln_g: Weight,
    /// Embedding layernorm shift.
    pub emb_ln_b: Weight,
    /// The encoder layers.
    pub layers: Vec<LayerWeights>,
}

impl BertWeights {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path) -> Result<BertWeights> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Self::from_safetensors(config, &bytes, &path)
    }

    /// Reads the weights from the bytes of a safetensors file (`path` names it in errors).
    /// Tensor names may carry a `bert.` prefix or not; every tensor's shape is checked against
    /// `config`.
    pub fn from_safetensors(config: BertConfig, bytes: &[u8], path: &Path) -> Result<BertWeights> {
        let err = |field: &str, message: String| Error::Data {
            file: path.to_path_buf(),
            row: 0,
            field: field.to_string(),
            message,
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| err("header", format!("not a valid safetensors file: {e}")))?;
        let prefix = if st.tensor("bert.embeddings.word_embeddings.weight").is_ok() {
            "bert."
        } else {
            ""
        };
        let get = |name: &str, shape: &[usize]| -> Result<Weight> {
            let full = format!("{prefix}{name}");
            let t = st.tensor(&full).map_err(|_| {
                err(
                    &full,
                    "tensor is missing (is this a BERT model.safetensors?)".into(),
                )
            })?;
            if t.shape() != shape {
                return Err(err(
                    &full,
                    format!(
                        "shape {:?} does not match config.json, which needs {shape:?}",
                        t.shape()
                    ),
                ));
            }
            let b = t.data();
            let data: Vec<f32> = match t.dtype() {
                Dtype::F32 => b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Dtype::F16 => b
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => b
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(err(
                        &full,
                        format!("dtype {other:?} is not F32, F16 or BF16"),
                    ))
                }
            };
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    &full,
                    format!("value {} at {i} is not finite", data[i]),
                ));
            }
            Ok(Weight {
                shape: shape.to_vec(),
                data,
            })
        };
        let c = &config;
        let (h, f) = (c.hidden_size, c.intermediate_size);
        let word = get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?;
        let position = get(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
        )?;
        let token_type = get(
            "embeddings.token_type_embeddings.weight",
            &[c.type_vocab_size, h],
        )?;
        let emb_ln_g = get("embeddings.LayerNorm.weight", &[h])?;
        let emb_ln_b = get("embeddings.LayerNorm.bias", &[h])?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for l in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{l}.");
            let g = |n: &str, s: &[usize]| get(&format!("{p}{n}"), s);
            layers.push(LayerWeights {
                q_w: g("attention.self.query.weight", &[h, h])?,
                q_b: g("attention.self.query.bias", &[h])?,
                k_w: g("attention.self.key.weight", &[h, h])?,
                k_b: g("attention.self.key.bias", &[h])?,
                v_w: g("attention.self.value.weight", &[h, h])?,
                v_b: g("attention.self.value.bias", &[h])?,
                o_w: g("attention.output.dense.weight", &[h, h])?,
                o_b: g("attention.output.dense.bias", &[h])?,
                ln1_g: g("attention.output.LayerNorm.weight", &[h])?,
                ln1_b: g("attention.output.LayerNorm.bias", &[h])?,
                ffn_in_w: g("intermediate.dense.weight", &[f, h])?,
                ffn_in_b: g("intermediate.dense.bias", &[f])?,
                ffn_out_w: g("output.dense.weight", &[h, f])?,
                ffn_out_b: g("output.dense.bias", &[h])?,
                ln2_g: g("output.LayerNorm.weight", &[h])?,
                ln2_b: g("output.LayerNorm.bias", &[h])?,
            });
        }
        Ok(BertWeights {
            config,
            word,
            position,
            token_type,
            emb_ln_g,
            emb_ln_b,
            layers,
        })
    }
}

/// One encoder layer on the GPU; the three projections are stacked into one `[3h, h]` weight.
struct GpuLayer {
    qkv_w: Tensor,
    qkv_b: Tensor,
    o_w: Tensor,
    o_b: Tensor,
    ln1_g: Tensor,
    ln1_b: Tensor,
    ffn_in_w: Tensor,
    ffn_in_b: Tensor,
    ffn_out_w: Tensor,
    ffn_out_b: Tensor,
    ln2_g: Tensor,
    ln2_b: Tensor,
}

/// A BERT encoder with its weights on the GPU.
pub struct BertModel {
    gpu: Gpu,
    config: BertConfig,
    act: FfnActivation,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_ln_g: Tensor,
    emb_ln_b: Tensor,
    layers: Vec<GpuLayer>,
}

impl std::fmt::Debug for BertModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BertModel({} layers, hidden {}, {} heads)",
            self.config.num_hidden_layers, self.config.hidden_size, self.config.num_attention_heads
        )
    }
}

/// A padded batch of token ids, the input of [`BertModel::forward`].
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    /// Token ids `[batch, seq]` row-major; positions at or past a sequence's length are padding
    /// (any id; the pad id by convention).
    pub ids: Vec<u32>,
    /// Token-type ids of the same shape, or `None` for all zeros.
    pub type_ids: Option<Vec<u32>>,
    /// Real tokens per sequence, each at most `seq`.
    pub lengths: Vec<u32>,
    /// Padded length.
    pub seq: usize,
}

impl TokenBatch {
    /// Pads `seqs` to the longest of them with `pad_id`.
    pub fn pad(seqs: &[Vec<u32>], pad_id: u32) -> TokenBatch {
        let seq = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(seqs.len() * seq);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad_id, seq - s.len()));
        }
        TokenBatch {
            ids,
            type_ids: None,
            lengths: seqs.iter().map(|s| s.len() as u32).collect(),
            seq,
        }
    }

    /// Number of sequences.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }
}

fn check_ids(ids: &[u32], n: usize, what: &str) -> Result<()> {
    if let Some((pos, &v)) = ids.iter().enumerate().find(|(_, &v)| v as usize >= n) {
        return Err(Error::Invalid(format!(
            "BERT forward: {what} {v} at position {pos} is out of range (the table has {n} rows)"
        )));
    }
    Ok(())
}

impl BertModel {
    /// Uploads `w` to `gpu`.
    pub fn new(gpu: &Gpu, w: &BertWeights) -> Result<BertModel> {
        let act = w.config.activation().map_err(Error::Invalid)?;
        let up = |x: &Weight| Tensor::from_slice(gpu, &x.data, &x.shape);
        let mut layers = Vec::with_capacity(w.layers.len());
        let h = w.config.hidden_size;
        for l in &w.layers {
            let mut qkv = Vec::with_capacity(3 * h * h);
            qkv.extend_from_slice(&l.q_w.data);
            qkv.extend_from_slice(&l.k_w.data);
            qkv.extend_from_slice(&l.v_w.data);
            let mut qkv_b = Vec::with_capacity(3 * h);
            qkv_b.extend_from_slice(&l.q_b.data);
            qkv_b.extend_from_slice(&l.k_b.data);
            qkv_b.extend_from_slice(&l.v_b.data);
            layers.push(GpuLayer {
                qkv_w: Tensor::from_slice(gpu, &qkv, &[3 * h, h])?,
                qkv_b: Tensor::from_slice(gpu, &qkv_b, &[3 * h])?,
                o_w: up(&l.o_w)?,
                o_b: up(&l.o_b)?,
                ln1_g: up(&l.ln1_g)?,
                ln1_b: up(&l.ln1_b)?,
                ffn_in_w: up(&l.ffn_in_w)?,
                ffn_in_b: up(&l.ffn_in_b)?,
                ffn_out_w: up(&l.ffn_out_w)?,
                ffn_out_b: up(&l.ffn_out_b)?,
                ln2_g: up(&l.ln2_g)?,
                ln2_b: up(&l.ln2_b)?,
            });
        }
        Ok(BertModel {
            gpu: gpu.clone(),
            config: w.config.clone(),
            act,
            word: up(&w.word)?,
            position: up(&w.position)?,
            token_type: up(&w.token_type)?,
            emb_ln_g: up(&w.emb_ln_g)?,
            emb_ln_b: up(&w.emb_ln_b)?,
            layers,
        })
    }

    /// Loads `config.json` and `model.safetensors` from `dir` and uploads them.
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<BertModel> {
        BertModel::new(gpu, &BertWeights::load(dir)?)
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn check(&self, batch: &TokenBatch) -> Result<()> {
        let c = &self.config;
        let n = batch.batch() * batch.seq;
        if batch.ids.len() != n {
            return Err(Error::shape(
                "BERT forward",
                format!(
                    "{} token ids do not fill [{}, {}]",
                    batch.ids.len(),
                    batch.batch(),
                    batch.seq
                ),
            ));
        }
        if batch.seq > c.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "BERT forward: sequences of {} tokens exceed the model's {} positions",
                batch.seq, c.max_position_embeddings
            )));
        }
        if let Some((i, &l)) = batch
            .lengths
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize > batch.seq)
        {
            return Err(Error::Invalid(format!(
                "BERT forward: sequence {i} has length {l}, over the padded length {}",
                batch.seq
            )));
        }
        check_ids(&batch.ids, c.vocab_size, "token id")?;
        if let Some(t) = &batch.type_ids {
            if t.len() != n {
                return Err(Error::shape(
                    "BERT forward",
                    format!("{} token-type ids for {n} tokens", t.len()),
                ));
            }
            check_ids(t, c.type_vocab_size, "token-type id")?;
        }
        Ok(())
    }

    /// The last hidden states `[batch, seq, hidden]` of a padded batch (padding rows are
    /// computed but meaningless). Records dispatches only; nothing is read back.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor> {
        self.check(batch)?;
        let c = &self.config;
        let gpu = &self.gpu;
        let (b, s, h) = (batch.batch(), batch.seq, c.hidden_size);
        let rows = b * s;
        if rows == 0 {
            return Tensor::zeros(gpu, &[b, s, h]);
        }
        let eps = c.layer_norm_eps as f32;
        // Embeddings.
        let ids = Tensor::from_u32(gpu, &batch.ids, &[rows])?;
        let pos: Vec<u32> = (0..rows).map(|r| (r % s) as u32).collect();
        let pos = Tensor::from_u32(gpu, &pos, &[rows])?;
        let types = match &batch.type_ids {
            Some(t) => t.clone(),
            None => vec![0; rows],
        };
        let types = Tensor::from_u32(gpu, &types, &[rows])?;
        let x = gather_rows(&self.word, &ids)?;
        let x = binary(&x, &gather_rows(&self.position, &pos)?, Binary::Add)?;
        let t = gather_rows(&self.token_type, &types)?;
        let mut x = add_layernorm(&x, &t, &self.emb_ln_g, &self.emb_ln_b, eps)?;
        let lengths = Tensor::from_u32(gpu, &batch.lengths, &[b])?;
        let attn = AttentionOpts::new(c.num_attention_heads);
        let lin = |x: &Tensor, w: &Tensor, bias: &Tensor, act: Activation| {
            matmul(x, w, &MatmulOpts::new().trans_b(true).bias(bias).act(act))
        };
        for l in &self.layers {
            let qkv = lin(&x, &l.qkv_w, &l.qkv_b, Activation::None)?;
            let ctx = attention_packed(&qkv.reshape(&[b, s, 3 * h])?, &lengths, &attn)?;
            let a = lin(&ctx.reshape(&[rows, h])?, &l.o_w, &l.o_b, Activation::None)?;
            let x1 = add_layernorm(&a, &x, &l.ln1_g, &l.ln1_b, eps)?;
            let f = match self.act {
                FfnActivation::Gelu => lin(&x1, &l.ffn_in_w, &l.ffn_in_b, Activation::Gelu)?,
                FfnActivation::Relu => lin(&x1, &l.ffn_in_w, &l.ffn_in_b, Activation::Relu)?,
                FfnActivation::GeluTanh => unary(
                    &lin(&x1, &l.ffn_in_w, &l.ffn_in_b, Activation::None)?,
                    Unary::GeluTanh,
                )?,
            };
            let o = lin(&f, &l.ffn_out_w, &l.ffn_out_b, Activation::None)?;
            x = add_layernorm(&o, &x1, &l.ln2_g, &l.ln2_b, eps)?;
        }
        x.reshape(&[b, s, h])
    }

    /// Masked mean pooling of hidden states `[batch, seq, hidden]` over the first `lengths[b]`
    /// tokens of each sequence (a length of 0 gives zeros), then, if `normalize`, division by the
    /// L2 norm (at least [`NORMALIZE_EPS`]). Returns `[batch, hidden]`; records only.
    pub fn pool(&self, hidden: &Tensor, lengths: &[u32], normalize: bool) -> Result<Tensor> {
        let (b, s, h) = match *hidden.shape() {
            [b, s, h] => (b, s, h),
            _ => {
                return Err(Error::shape(
                    "mean pooling",
                    format!(
                        "hidden states {:?} must be [batch, seq, hidden]",
                        hidden.shape()
                    ),
                ))
            }
        };
        if lengths.len() != b {
            return Err(Error::shape(
                "mean pooling",
                format!("{} lengths for {b} sequences", lengths.len()),
            ));
        }
        if b == 0 || h == 0 {
            return Tensor::zeros(&self.gpu, &[b, h]);
        }
        let mut w = vec![0f32; b * s];
        for (i, &l) in lengths.iter().enumerate() {
            let l = (l as usize).min(s);
            if l > 0 {
                w[i * s..i * s + l].fill(1.0 / l as f32);
            }
        }
        let w = Tensor::from_slice(&self.gpu, &w, &[b, 1, s])?;
        let pooled = matmul(&w, hidden, &MatmulOpts::new())?.reshape(&[b, h])?;
        if !normalize {
            return Ok(pooled);
        }
        let norms = reduce_rows(&pooled, RowReduce::L2Norm)?.reshape(&[b, 1])?;
        let norms = unary(
            &norms,
            Unary::Clamp {
                min: NORMALIZE_EPS,
                max: f32::MAX,
            },
        )?;
        binary(&pooled, &norms, Binary::Div)
    }

    /// [`forward`](Self::forward) then [`pool`](Self::pool): sentence embeddings `[batch,
    /// hidden]`, recorded with no readback.
    pub fn embed(&self, batch: &TokenBatch, normalize: bool) -> Result<Tensor> {
        let hidden = self.forward(batch)?;
        self.pool(&hidden, &batch.lengths, normalize)
    }
}

/// Where the MiniLM files are looked for by default: `$SEMID_DATA_DIR/minilm` when that
/// variable is set, else `data/minilm` under the current directory.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("SEMID_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("minilm"),
        _ => PathBuf::from("data").join("minilm"),
    }
}

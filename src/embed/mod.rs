//! Item text to sentence embeddings on semid's own engine: a BERT encoder such as
//! all-MiniLM-L6-v2 ([`bert`]), its word-piece tokenizer (the `tokenizers` crate, reading
//! `tokenizer.json`), length-bucketed batching and masked mean pooling.
//!
//! ```no_run
//! # fn main() -> semid::Result<()> {
//! use semid::embed::{TextEmbedder, DEFAULT_BATCH_SIZE};
//! let gpu = semid::Gpu::default_device()?;
//! let embedder = TextEmbedder::load(&gpu, std::path::Path::new("data/minilm"))?;
//! let texts = vec!["Toy Story (1995) Animation Children's Comedy".to_string()];
//! let vectors = embedder.embed(&texts, DEFAULT_BATCH_SIZE, true)?; // texts.len() × 384
//! # Ok(()) }
//! ```
//!
//! The files come from [`crate::data::fetch`] (`Source::MiniLm`), into `DATA/minilm/`:
//! `model.safetensors`, `config.json`, `tokenizer.json` and `1_Pooling/config.json` (which must
//! ask for mean pooling, when present).

pub mod bert;
pub mod bert_cpu;

pub use bert::{default_model_dir, BertConfig, BertModel, BertWeights, TokenBatch};

use crate::data::ItemTable;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use std::path::Path;
use tokenizers::PostProcessor;

/// The default cap on tokens per text, special tokens included (enough for item titles).
pub const DEFAULT_MAX_TOKENS: usize = 32;

/// The default number of texts per forward pass.
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// The default item template: `Toy Story (1995) Animation Children's Comedy`.
pub const DEFAULT_TEMPLATE: &str = "{title} ({year}) {genres}";

/// A word-piece tokenizer read from `tokenizer.json`, with its fixed padding turned off and a
/// cap on the tokens per text (truncation, special tokens included).
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    max_tokens: usize,
    special: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTokenizer(max_tokens {})", self.max_tokens)
    }
}

impl TextTokenizer {
    /// Reads `tokenizer.json`; texts are truncated to `max_tokens` tokens.
    pub fn from_file(path: &Path, max_tokens: usize) -> Result<TextTokenizer> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            ));
        }
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Data {
            file: path.to_path_buf(),
            row: 0,
            field: "tokenizer".into(),
            message: format!("not a usable tokenizer.json: {e}"),
        })?;
        inner.with_padding(None);
        let special = inner
            .get_post_processor()
            .map(|p| p.added_tokens(false))
            .unwrap_or(0);
        let mut t = TextTokenizer {
            inner,
            max_tokens: 0,
            special,
        };
        t.set_max_tokens(max_tokens)?;
        Ok(t)
    }

    /// The cap on tokens per text.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Sets the cap on tokens per text; it must leave room for one token besides the special
    /// tokens (`[CLS]`, `[SEP]`).
    pub fn set_max_tokens(&mut self, max_tokens: usize) -> Result<()> {
        if max_tokens <= self.special {
            return Err(Error::Invalid(format!(
                "max_tokens {max_tokens} leaves no room for text beside the {} special tokens",
                self.special
            )));
        }
        self.inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| Error::Invalid(format!("tokenizer truncation: {e}")))?;
        self.max_tokens = max_tokens;
        Ok(())
    }

    /// The token ids of each text, special tokens included, at most
    /// [`max_tokens`](Self::max_tokens) each, unpadded.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let enc = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }
}

/// Groups text indices into batches of at most `batch_size` texts of similar length: indices
/// sorted by `lens` (ties by index), then cut in order. Every index appears once.
pub fn length_batches(lens: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    order
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}

/// Sentence embeddings of texts: a BERT encoder on the GPU and its tokenizer.
pub struct TextEmbedder {
    model: BertModel,
    tokenizer: TextTokenizer,
}

impl std::fmt::Debug for TextEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextEmbedder({:?}, {:?})", self.model, self.tokenizer)
    }
}

fn check_pooling(dir: &Path) -> Result<()> {
    let path = dir.join("1_Pooling").join("config.json");
    if !path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Data {
        file: path.clone(),
        row: e.line(),
        field: "pooling".into(),
        message: format!("not JSON: {e}"),
    })?;
    let mean = v["pooling_mode_mean_tokens"].as_bool().unwrap_or(true);
    let others = [
        "pooling_mode_cls_token",
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
    ]
    .iter()
    .any(|k| v[*k].as_bool().unwrap_or(false));
    if !mean || others {
        return Err(Error::Data {
            file: path,
            row: 0,
            field: "pooling".into(),
            message: "only mean pooling (`pooling_mode_mean_tokens`) is supported".into(),
        });
    }
    Ok(())
}

impl TextEmbedder {
    /// Loads a sentence encoder from `model_dir` (`config.json`, `model.safetensors`,
    /// `tokenizer.json`, optionally `1_Pooling/config.json`) onto `gpu`, with
    /// [`DEFAULT_MAX_TOKENS`] tokens per text.
    pub fn load(gpu: &Gpu, model_dir: &Path) -> Result<TextEmbedder> {
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            let p = model_dir.join(f);
            if !p.is_file() {
                return Err(Error::io(
                    &p,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "missing; fetch the model first with `semid data fetch --what \
                         minilm`",
                    ),
                ));
            }
        }
        check_pooling(model_dir)?;
        let model = BertModel::load(gpu, model_dir)?;
        let max = DEFAULT_MAX_TOKENS.min(model.config().max_position_embeddings);
        let tokenizer = TextTokenizer::from_file(&model_dir.join("tokenizer.json"), max)?;
        Ok(TextEmbedder { model, tokenizer })
    }

    /// The encoder.
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Width of the embeddings (384 for MiniLM-L6).
    pub fn dim(&self) -> usize {
        self.model.config().hidden_size
    }

    /// The cap on tokens per text (special tokens included).
    pub fn max_tokens(&self) -> usize {
        self.tokenizer.max_tokens()
    }

    /// Sets the cap on tokens per text: at most the model's positions, and more than the special
    /// tokens.
    pub fn set_max_tokens(&mut self, max_tokens: usize) -> Result<()> {
        let limit = self.model.config().max_position_embeddings;
        if max_tokens > limit {
            return Err(Error::Invalid(format!(
                "max_tokens {max_tokens} exceeds the model's {limit} positions"
            )));
        }
        self.tokenizer.set_max_tokens(max_tokens)
    }

    /// Token ids of each text (see [`TextTokenizer::encode`]).
    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        self.tokenizer.encode(texts)
    }

    /// Embeddings of `texts`, row-major `[texts.len(), dim]` in the order given; L2-normalised
    /// when `normalize`. See [`embed_with_progress`](Self::embed_with_progress).
    pub fn embed(&self, texts: &[String], batch_size: usize, normalize: bool) -> Result<Vec<f32>> {
        self.embed_with_progress(texts, batch_size, normalize, &mut |_, _| {})
    }

    /// [`embed`](Self::embed) calling `progress(done, total)` after each batch (texts done).
    ///
    /// Texts are tokenized, sorted by token count, cut into batches of `batch_size`, each padded
    /// to its own longest text; one forward pass is recorded per batch and read back once.
    pub fn embed_with_progress(
        &self,
        texts: &[String],
        batch_size: usize,
        normalize: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f32>> {
        let seqs = self.tokenize(texts)?;
        self.embed_tokens(&seqs, batch_size, normalize, progress)
    }

    /// Embeddings of already tokenized texts (ids with special tokens), batched by length as
    /// [`embed_with_progress`](Self::embed_with_progress) does.
    pub fn embed_tokens(
        &self,
        seqs: &[Vec<u32>],
        batch_size: usize,
        normalize: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f32>> {
        if batch_size == 0 {
            return Err(Error::Invalid(
                "embed: batch_size must be at least 1".into(),
            ));
        }
        let dim = self.dim();
        let total = seqs.len();
        let mut out = vec![0f32; total * dim];
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let pad = self.model.config().pad_token_id;
        let mut done = 0;
        for idx in length_batches(&lens, batch_size) {
            let group: Vec<Vec<u32>> = idx.iter().map(|&i| seqs[i].clone()).collect();
            let batch = TokenBatch::pad(&group, pad);
            let v = self.model.embed(&batch, normalize)?.to_vec()?;
            for (r, &i) in idx.iter().enumerate() {
                out[i * dim..(i + 1) * dim].copy_from_slice(&v[r * dim..(r + 1) * dim]);
            }
            done += idx.len();
            progress(done, total);
        }
        Ok(out)
    }

    /// Embeddings of the items of `table`, their texts made by [`format_items`] with `template`
    /// (e.g. [`DEFAULT_TEMPLATE`]); `[items, dim]` in the table's order.
    pub fn embed_items(
        &self,
        table: &ItemTable,
        template: &str,
        batch_size: usize,
        normalize: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<f32>> {
        let texts = format_items(table, template)?;
        self.embed_with_progress(&texts, batch_size, normalize, progress)
    }
}

/// One piece of a parsed template.
enum Piece {
    Text(String),
    Field(String),
}

fn parse_template(template: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(Error::Invalid(format!(
                                "template `{template}`: a `{{` is not closed (write `{{{{` for a literal brace)"
                            )))
                        }
                        Some(ch) => name.push(ch),
                    }
                }
                let name = name.trim().to_string();
                if name.is_empty() {
                    return Err(Error::Invalid(format!(
                        "template `{template}`: an empty field `{{}}`"
                    )));
                }
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Field(name));
            }
            '}' => {
                return Err(Error::Invalid(format!(
                "template `{template}`: a `}}` without its `{{` (write `}}}}` for a literal brace)"
            )))
            }
            _ => text.push(c),
        }
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

/// The text of each item of `table` from `template`: `{name}` is replaced by the item's field
/// `name` (`{id}` by the item id unless a field is called `id`); `{{` and `}}` are literal
/// braces. A field that is empty for an item leaves out brackets around it (`({year})` with no
/// year gives nothing), and runs of whitespace become one space, trimmed at the ends. A field
/// the table does not have is an error that names it.
pub fn format_items(table: &ItemTable, template: &str) -> Result<Vec<String>> {
    let pieces = parse_template(template)?;
    let n = table.ids.len();
    let mut columns: Vec<Option<&[String]>> = Vec::new();
    for p in &pieces {
        if let Piece::Field(name) = p {
            let col = match table.fields.iter().find(|(f, _)| f == name) {
                Some((_, v)) => v.as_slice(),
                None if name == "id" => table.ids.as_slice(),
                None => {
                    let mut have: Vec<&str> = vec!["id"];
                    have.extend(table.fields.iter().map(|(f, _)| f.as_str()));
                    return Err(Error::Invalid(format!(
                        "template field `{name}` is not a field of the item table (it has: {})",
                        have.join(", ")
                    )));
                }
            };
            if col.len() != n {
                return Err(Error::Invalid(format!(
                    "item field `{name}` has {} values for {n} items",
                    col.len()
                )));
            }
            columns.push(Some(col));
        } else {
            columns.push(None);
        }
    }
    const EMPTY: char = '\u{0}';
    let mut out = Vec::with_capacity(n);
    let mut s = String::new();
    for i in 0..n {
        s.clear();
        for (p, col) in pieces.iter().zip(&columns) {
            match (p, col) {
                (Piece::Text(t), _) => s.push_str(t),
                (Piece::Field(_), Some(col)) => {
                    let v = col[i].trim();
                    if v.is_empty() {
                        s.push(EMPTY);
                    } else {
                        s.push_str(v);
                    }
                }
                (Piece::Field(_), None) => {}
            }
        }
        let cleaned = s
            .replace(&format!("({EMPTY})"), "")
            .replace(&format!("[{EMPTY}]"), "")
            .replace(EMPTY, "");
        out.push(cleaned.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    Ok(out)
}

//! Checkpoints: safetensors files whose metadata holds JSON about the run (method, config,
//! data fingerprint, semid version, progress), written write-then-rename.

use super::atomic::write_atomic;
use super::st_write::{serialize_f32, F32Tensor};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// A named f32 tensor, as stored in checkpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Name, e.g. `codebook.0`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Marker stored under the `format` metadata key.
pub const FORMAT: &str = "semid-checkpoint/1";

/// The metadata key of the content hash: SHA-256 (hex) of the `semid` metadata and of every
/// tensor's name, shape and values, in file order.
pub const HASH_KEY: &str = "semid.sha256";

/// The content hash stored under [`HASH_KEY`].
pub fn content_hash(meta_json: &str, tensors: &[NamedTensor]) -> String {
    let mut h = Sha256::new();
    h.update((meta_json.len() as u64).to_le_bytes());
    h.update(meta_json.as_bytes());
    for t in tensors {
        h.update((t.name.len() as u64).to_le_bytes());
        h.update(t.name.as_bytes());
        h.update((t.shape.len() as u64).to_le_bytes());
        for d in &t.shape {
            h.update((*d as u64).to_le_bytes());
        }
        h.update(bytemuck::cast_slice::<f32, u8>(&t.data));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 hex digits of a hash, for messages.
fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Tokenizer or model method, e.g. `psrq`.
    pub method: String,
    /// The run's configuration as JSON.
    pub config: serde_json::Value,
    /// Fingerprint of the training data ([`fingerprint`]).
    pub fingerprint: String,
    /// semid version that wrote it.
    pub semid_version: String,
    /// Free-form state (e.g. the levels completed, input width).
    pub state: serde_json::Value,
}

impl CheckpointMeta {
    /// Checks the method and data fingerprint, for `--resume`.
    pub fn check_resumable(&self, path: &Path, method: &str, fingerprint: &str) -> Result<()> {
        if self.method != method {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("was written by method `{}`, not `{method}`", self.method),
            });
        }
        if self.fingerprint != fingerprint {
            return Err(Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!(
                    "was fitted on other data (fingerprint {}, this data {fingerprint})",
                    self.fingerprint
                ),
            });
        }
        Ok(())
    }
}

/// A loaded checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The metadata.
    pub meta: CheckpointMeta,
    /// The tensors, in file order.
    pub tensors: Vec<NamedTensor>,
}

/// A stable fingerprint (FNV-1a, 64 bits) of a matrix's shape and values.
pub fn fingerprint(data: &[f32], shape: &[usize]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for s in shape {
        eat(&(*s as u64).to_le_bytes());
    }
    eat(bytemuck::cast_slice(data));
    format!("{h:016x}")
}

impl Checkpoint {
    /// Saves to `path` (write-then-rename). The bytes depend only on the content (sorted
    /// metadata keys, see [`super::st_write`]), so identical runs write identical files, and
    /// the metadata carries a SHA-256 of the content ([`HASH_KEY`]) that [`Checkpoint::load`]
    /// checks. A tensor holding NaN or infinity is refused with an error naming it: a model
    /// that diverged never replaces the last good checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        for t in &self.tensors {
            if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
                return Err(Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!(
                        "not written: tensor `{}` holds {} at {i} (training diverged; the \
                         previous checkpoint, if any, is kept)",
                        t.name, t.data[i]
                    ),
                });
            }
        }
        let meta_json =
            serde_json::to_string(&self.meta).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            HASH_KEY.to_string(),
            content_hash(&meta_json, &self.tensors),
        );
        meta.insert("semid".to_string(), meta_json);
        let views: Vec<F32Tensor<'_>> = self
            .tensors
            .iter()
            .map(|t| F32Tensor {
                name: &t.name,
                shape: &t.shape,
                data: &t.data,
            })
            .collect();
        write_atomic(path, &serialize_f32(&views, &meta)?)
    }

    /// Loads from `path`, with a clear error when the file is corrupt, was changed after it
    /// was written (its content hash differs, even where every value is still a finite
    /// float), or is not a checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bad = |m: String| Error::Checkpoint {
            path: path.to_path_buf(),
            message: m,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            bad(format!(
                "not a readable safetensors file ({e}); it may be truncated or corrupt"
            ))
        })?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("corrupt tensor data ({e})")))?;
        let meta_map = header
            .metadata()
            .clone()
            .ok_or_else(|| bad("no semid metadata: not a semid checkpoint".into()))?;
        if meta_map.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "format is {:?}, expected {FORMAT:?}: not a semid checkpoint",
                meta_map.get("format")
            )));
        }
        let meta_json = meta_map
            .get("semid")
            .ok_or_else(|| bad("metadata key `semid` is missing".into()))?;
        let meta: CheckpointMeta = serde_json::from_str(meta_json)
            .map_err(|e| bad(format!("metadata is not valid: {e}")))?;
        let tensors = read_f32_tensors(path, &st)?;
        for t in &tensors {
            if let Some(i) = t.data.iter().position(|x| !x.is_finite()) {
                return Err(bad(format!(
                    "tensor `{}` holds a non-finite value at {i}",
                    t.name
                )));
            }
        }
        let stored = meta_map.get(HASH_KEY).ok_or_else(|| {
            bad(format!(
                "metadata has no content hash `{HASH_KEY}` (written by an older semid, or \
                 not by semid); refit it"
            ))
        })?;
        let actual = content_hash(meta_json, &tensors);
        if *stored != actual {
            return Err(bad(format!(
                "content hash mismatch (stored {}, content {}): the file was changed or \
                 damaged after semid wrote it",
                short_hash(stored),
                short_hash(&actual)
            )));
        }
        Ok(Checkpoint { meta, tensors })
    }

    /// Checks the method and data fingerprint, for `--resume`.
    pub fn check_resumable(&self, path: &Path, method: &str, fingerprint: &str) -> Result<()> {
        self.meta.check_resumable(path, method, fingerprint)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Every tensor of a parsed safetensors file as f32, in file order (F32 as is; F64, F16 and
/// BF16 converted); any other dtype is an error naming the tensor and `path`.
pub fn read_f32_tensors(path: &Path, st: &SafeTensors<'_>) -> Result<Vec<NamedTensor>> {
    let bad = |m: String| Error::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (v.data().as_ptr() as usize, n))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for (_, name) in names {
        let v = st
            .tensor(&name)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let b = v.data();
        let data: Vec<f32> = match v.dtype() {
            Dtype::F32 => bytemuck::pod_collect_to_vec(b),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
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
                return Err(bad(format!(
                    "tensor `{name}` is {other:?}; expected a float type"
                )))
            }
        };
        out.push(NamedTensor {
            name,
            shape: v.shape().to_vec(),
            data,
        });
    }
    Ok(out)
}

//! Item embeddings in one safetensors file: one 2-D tensor `[items, dim]` per modality, named
//! after the modality. Read F32, F16, BF16 (and F64, converted); write F32 or F16 atomically.
//!
//! Modality order on read: the order asked for, else the `semid.modalities` entry of the
//! file's `__metadata__` (a JSON list that [`write_safetensors`] stores), else the order of the
//! tensors' data in the file. Errors name the file, the tensor as the field (or `header` /
//! `data` for a malformed file) and, for a bad value, its 0-based row. Data offsets beyond the
//! end of the file are reported as a truncated file before the file is parsed further.

use super::fileio::{
    check_finite, clip, data_err, read_bytes, snippet, snippet_list, write_atomic,
};
use super::types::Modality;
use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The metadata key holding the modality order.
pub const ORDER_KEY: &str = "semid.modalities";

/// The float type tensors are stored in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreAs {
    /// 32-bit floats.
    #[default]
    F32,
    /// 16-bit IEEE floats (round to nearest).
    F16,
}

/// The data length the header declares (the largest end offset), when the header parses.
fn declared_data_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let json: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let end = json
        .as_object()?
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0) as usize;
    Some((8 + n, end))
}

/// The most characters of a message from the safetensors or JSON parser that an error quotes
/// (they may quote tensor names or header text).
const LIBRARY_MESSAGE_CHARS: usize = 120;

/// Fails when the header parses but declares data beyond the end of the file: the file is
/// truncated (or the offsets lie). Checked before the safetensors parser sees the offsets, so
/// no offset arithmetic runs on absurd values.
fn check_declared_len(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some((start, want)) = declared_data_len(bytes) {
        let have = bytes.len().saturating_sub(start);
        if want > have {
            return Err(data_err(
                path,
                0,
                "data",
                format!(
                    "file is truncated: the header declares {want} data bytes, the file has {have}"
                ),
            ));
        }
    }
    Ok(())
}

fn header_error(path: &Path, bytes: &[u8], e: SafeTensorError) -> Error {
    if bytes.is_empty() {
        return data_err(path, 0, "header", "empty file");
    }
    match e {
        SafeTensorError::MetadataIncompleteBuffer => {
            let message = match declared_data_len(bytes) {
                Some((start, want)) if bytes.len() - start < want => format!(
                    "file is truncated: the header declares {want} data bytes, the file has {}",
                    bytes.len() - start
                ),
                Some((start, want)) => format!(
                    "file has {} data bytes but the header declares {want} (trailing bytes)",
                    bytes.len() - start
                ),
                None => "data section does not match the header".into(),
            };
            data_err(path, 0, "data", message)
        }
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooSmall => data_err(
            path,
            0,
            "header",
            "file is truncated inside its header (or is not a safetensors file)",
        ),
        other => data_err(
            path,
            0,
            "header",
            format!(
                "not a valid safetensors file: {}",
                clip(&other.to_string(), LIBRARY_MESSAGE_CHARS)
            ),
        ),
    }
}

fn to_f32(path: &Path, name: &str, t: &TensorView<'_>) -> Result<Vec<f32>> {
    let b = t.data();
    let v: Vec<f32> = match t.dtype() {
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
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => {
            return Err(data_err(
                path,
                0,
                name,
                format!("tensor dtype {other:?} is not a float type; expected F32, F16 or BF16"),
            ))
        }
    };
    Ok(v)
}

fn order(
    path: &Path,
    st: &SafeTensors<'_>,
    meta: Option<&HashMap<String, String>>,
) -> Result<Vec<String>> {
    if let Some(list) = meta.and_then(|m| m.get(ORDER_KEY)) {
        let names: Vec<String> = serde_json::from_str(list).map_err(|e| {
            data_err(
                path,
                0,
                "__metadata__",
                format!(
                    "`{ORDER_KEY}` is not a JSON list of names: {}",
                    clip(&e.to_string(), LIBRARY_MESSAGE_CHARS)
                ),
            )
        })?;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(data_err(
                path,
                0,
                "__metadata__",
                format!("`{ORDER_KEY}` names `{}` twice", snippet(dup)),
            ));
        }
        return Ok(names);
    }
    let mut names: Vec<(usize, String)> = st
        .iter()
        .map(|(n, t)| (t.data().as_ptr() as usize, n.to_string()))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// Reads modalities from a safetensors file: the tensors named in `names` (in that order), or
/// all of them. Every tensor must be 2-D with a nonzero width, a float type, and finite values.
/// Row counts are not compared here (see [`super::embeddings`]).
pub fn read_safetensors(path: &Path, names: Option<&[String]>) -> Result<Vec<Modality>> {
    let bytes = read_bytes(path)?;
    check_declared_len(path, &bytes)?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| header_error(path, &bytes, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| header_error(path, &bytes, e))?;
    let wanted = match names {
        Some(n) => n.to_vec(),
        None => order(path, &st, meta.metadata().as_ref())?,
    };
    if wanted.is_empty() {
        return Err(data_err(path, 0, "header", "file holds no tensors"));
    }
    let mut out = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let t = st.tensor(name).map_err(|_| {
            let have: Vec<&str> = st.names();
            data_err(
                path,
                0,
                name,
                format!(
                    "no tensor `{}` in the file (it has {})",
                    snippet(name),
                    snippet_list(&have)
                ),
            )
        })?;
        let shape = t.shape();
        if shape.len() != 2 || shape[1] == 0 {
            return Err(data_err(
                path,
                0,
                name,
                format!(
                    "expected a 2-D matrix [items, dim] with dim > 0, found shape {}",
                    clip(&format!("{shape:?}"), LIBRARY_MESSAGE_CHARS)
                ),
            ));
        }
        let data = to_f32(path, name, &t)?;
        check_finite(path, &format!("{} ", snippet(name)), &data, shape[1])?;
        out.push(Modality {
            name: name.clone(),
            dim: shape[1],
            data,
        });
    }
    Ok(out)
}

/// Writes modalities as one safetensors file (one `[rows, dim]` tensor per modality, named
/// after it, plus the modality order in `__metadata__`), via a temporary file and a rename.
pub fn write_safetensors(path: &Path, modalities: &[Modality], store: StoreAs) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut buffers = Vec::with_capacity(modalities.len());
    for m in modalities {
        if !seen.insert(m.name.as_str()) {
            return Err(Error::Invalid(format!(
                "duplicate modality name `{}`",
                m.name
            )));
        }
        if m.dim == 0 || m.data.len() % m.dim != 0 {
            return Err(Error::shape(
                "write_safetensors",
                format!(
                    "modality `{}`: {} values do not fill rows of {}",
                    m.name,
                    m.data.len(),
                    m.dim
                ),
            ));
        }
        let (dtype, bytes): (Dtype, Vec<u8>) = match store {
            StoreAs::F32 => (
                Dtype::F32,
                m.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            StoreAs::F16 => (
                Dtype::F16,
                m.data
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        };
        buffers.push((m.name.clone(), dtype, vec![m.rows(), m.dim], bytes));
    }
    let mut views = Vec::with_capacity(buffers.len());
    for (name, dtype, shape, bytes) in &buffers {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| Error::Invalid(format!("modality `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let order: Vec<&str> = modalities.iter().map(|m| m.name.as_str()).collect();
    let meta = HashMap::from([(
        ORDER_KEY.to_string(),
        serde_json::to_string(&order).unwrap_or_default(),
    )]);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))?;
    write_atomic(path, |w| w.write_all(&bytes))
}

//! A safetensors writer whose bytes depend only on what is written.
//!
//! `safetensors::serialize` takes the metadata as a `HashMap`, so two saves of the same model
//! wrote its keys in different orders and identical runs gave checkpoints that differed byte
//! for byte. This writer sorts the metadata keys and lays the tensors out in the order given
//! (the header lists them sorted by name, as JSON objects are sorted here), so the same tensors
//! and metadata always give the same file. The layout is the safetensors format: an 8-byte
//! little-endian header length, the JSON header padded with spaces to a multiple of 8 bytes,
//! then the tensors' bytes back to back.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// One f32 tensor to write: name, shape and row-major values.
pub struct F32Tensor<'a> {
    /// Name.
    pub name: &'a str,
    /// Shape.
    pub shape: &'a [usize],
    /// Values (`shape`'s product of them).
    pub data: &'a [f32],
}

/// The bytes of a safetensors file holding `tensors` (F32, in this order) and `metadata`.
pub fn serialize_f32(
    tensors: &[F32Tensor<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut seen = std::collections::HashSet::new();
    let mut offset = 0usize;
    for t in tensors {
        if !seen.insert(t.name) {
            return Err(Error::Invalid(format!(
                "tensor `{}` is written twice",
                t.name
            )));
        }
        let numel: usize = t.shape.iter().product();
        if numel != t.data.len() {
            return Err(Error::shape(
                "safetensors write",
                format!(
                    "tensor `{}` has shape {:?} but {} values",
                    t.name,
                    t.shape,
                    t.data.len()
                ),
            ));
        }
        let end = offset + 4 * numel;
        header.insert(
            t.name.to_string(),
            serde_json::json!({ "dtype": "F32", "shape": t.shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    if !metadata.is_empty() {
        let meta: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    }
    // serde_json's map is ordered by key (no `preserve_order` feature), so the header text is
    // fixed by its content.
    let mut text = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::Invalid(format!("safetensors header: {e}")))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for t in tensors {
        out.extend_from_slice(bytemuck::cast_slice(t.data));
    }
    Ok(out)
}

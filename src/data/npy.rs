//! NumPy `.npy` files: read float matrices (f32, f16, f64 converted) and integer arrays; write
//! f32, f16, u32 and i64 arrays atomically.
//!
//! Accepted on read: format versions 1.0, 2.0 and 3.0; byte order `<`, `>`, `|` or `=`; C order,
//! or Fortran order for arrays of at most two dimensions (transposed on load). Floats: `f2`,
//! `f4`, `f8` (f64 is converted to f32; a value outside f32's range is an error). Integers:
//! `i1`…`i8`, `u1`…`u8`. Anything else (`|b1`, complex, structured dtypes) is a data error on
//! field `descr`. The data must be exactly as long as the header's shape says: a shorter file
//! is reported as truncated, a longer one as having trailing bytes.
//!
//! Errors name the file, a row (0-based first index of the array, 0 for header problems) and a
//! field (`header`, `descr`, `shape`, `data`, or `column {c}` for a bad value). Nothing is
//! allocated from the header alone: the shape is checked against the file's length first.

use super::fileio::{check_finite, data_err, read_bytes, snippet, write_atomic};
use super::types::Modality;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An n-dimensional array read from a `.npy` file, row-major (C order).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray<T> {
    /// The shape; `[]` for a scalar.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them.
    pub data: Vec<T>,
}

/// The parsed header of a `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string, e.g. `<f4`.
    pub descr: String,
    /// Whether the data is stored column-major.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Uint,
}

struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

/// A shape for an error message: at most 8 dimensions are written out.
fn shape_text(shape: &[usize]) -> String {
    if shape.len() <= 8 {
        return format!("{shape:?}");
    }
    let head: Vec<String> = shape[..8].iter().map(usize::to_string).collect();
    format!("[{}, … ({} dimensions)]", head.join(", "), shape.len())
}

fn parse_descr(file: &Path, descr: &str) -> Result<Dtype> {
    let bad = || {
        data_err(
            file,
            0,
            "descr",
            format!(
                "unsupported dtype `{}`; expected a float (`<f4`, `<f2`, `<f8`) or an \
                 integer (`<i4`, `<u4`, `<i8`, ...)",
                snippet(descr)
            ),
        )
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(bad)?;
    let kind = match chars.next().ok_or_else(bad)? {
        'f' => Kind::Float,
        'i' => Kind::Int,
        'u' => Kind::Uint,
        _ => return Err(bad()),
    };
    let size: usize = chars.as_str().parse().map_err(|_| bad())?;
    let ok = match kind {
        Kind::Float => matches!(size, 2 | 4 | 8),
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
    };
    if !ok || !matches!(order, '<' | '>' | '|' | '=') || (order == '|' && size > 1) {
        return Err(bad());
    }
    Ok(Dtype {
        kind,
        size,
        big_endian: order == '>',
    })
}

/// A tiny parser for the Python dict literal of a `.npy` header.
struct DictParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DictParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn string(&mut self) -> Option<String> {
        self.ws();
        let q = *self.s.get(self.i)?;
        if q != b'\'' && q != b'"' {
            return None;
        }
        let start = self.i + 1;
        let end = start + self.s[start..].iter().position(|&c| c == q)?;
        self.i = end + 1;
        Some(String::from_utf8_lossy(&self.s[start..end]).into_owned())
    }
    fn word(&mut self) -> &str {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }
    fn tuple(&mut self) -> Option<Vec<usize>> {
        if !self.eat(b'(') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            if self.eat(b')') {
                return Some(out);
            }
            let w = self.word().trim_end_matches('L');
            out.push(w.parse().ok()?);
            if !self.eat(b',') {
                return self.eat(b')').then_some(out);
            }
        }
    }
}

fn parse_header_dict(file: &Path, text: &str) -> Result<NpyHeader> {
    let bad = |m: &str| data_err(file, 0, "header", m.to_string());
    let mut p = DictParser {
        s: text.as_bytes(),
        i: 0,
    };
    if !p.eat(b'{') {
        return Err(bad("header is not a Python dict"));
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string().ok_or_else(|| bad("expected a quoted key"))?;
        if !p.eat(b':') {
            return Err(bad("expected `:` after a key"));
        }
        match key.as_str() {
            "descr" => {
                let d = p.string().ok_or_else(|| {
                    data_err(
                        file,
                        0,
                        "descr",
                        "structured dtypes are not supported; save a plain numeric array",
                    )
                })?;
                descr = Some(d);
            }
            "fortran_order" => match p.word() {
                "True" => fortran = Some(true),
                "False" => fortran = Some(false),
                _ => return Err(bad("fortran_order is not True or False")),
            },
            "shape" => {
                shape = Some(p.tuple().ok_or_else(|| {
                    data_err(file, 0, "shape", "shape is not a tuple of integers")
                })?)
            }
            other => return Err(bad(&format!("unknown key `{}`", snippet(other)))),
        }
        if !p.eat(b',') {
            if p.eat(b'}') {
                break;
            }
            return Err(bad("expected `,` or `}`"));
        }
    }
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| bad("missing key `descr`"))?,
        fortran_order: fortran.ok_or_else(|| bad("missing key `fortran_order`"))?,
        shape: shape.ok_or_else(|| bad("missing key `shape`"))?,
    })
}

/// Parses the header of a `.npy` byte buffer; returns it and the offset of the data.
pub fn parse_header(file: &Path, bytes: &[u8]) -> Result<(NpyHeader, usize)> {
    let bad = |m: String| data_err(file, 0, "header", m);
    if bytes.is_empty() {
        return Err(bad("empty file".into()));
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            "not a .npy file (bad magic bytes or shorter than a header)".into(),
        ));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        2 | 3 => {
            return Err(bad(
                "file is truncated inside its header length field".into()
            ))
        }
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let end = start + len;
    if bytes.len() < end {
        return Err(bad(format!(
            "file is truncated: the header needs {end} bytes, the file has {}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad("header is not valid text".into()))?;
    Ok((parse_header_dict(file, text)?, end))
}

/// Reads the header and raw element bytes, checking the data length against the shape.
fn read_raw(path: &Path) -> Result<(NpyHeader, Dtype, Vec<u8>, usize)> {
    let bytes = read_bytes(path)?;
    let (header, start) = parse_header(path, &bytes)?;
    let dtype = parse_descr(path, &header.descr)?;
    if header.fortran_order && header.shape.len() > 2 {
        return Err(data_err(
            path,
            0,
            "header",
            "Fortran-order arrays of more than 2 dimensions are not supported",
        ));
    }
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size))
        .ok_or_else(|| data_err(path, 0, "shape", "shape overflows"))?;
    let have = bytes.len() - start;
    if have != count {
        let row_bytes = (count / header.shape.first().copied().unwrap_or(1).max(1)).max(1);
        let message = if have < count {
            format!(
                "file is truncated: shape {} of `{}` needs {count} data bytes, the file has {have}",
                shape_text(&header.shape),
                header.descr
            )
        } else {
            format!(
                "file has {have} data bytes but shape {} of `{}` needs {count} (trailing bytes)",
                shape_text(&header.shape),
                header.descr
            )
        };
        return Err(data_err(path, have.min(count) / row_bytes, "data", message));
    }
    Ok((header, dtype, bytes, start))
}

/// Element `i` of the raw data as little- or big-endian bytes in an 8-byte buffer.
fn elem(data: &[u8], i: usize, dt: &Dtype) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..dt.size].copy_from_slice(&data[i * dt.size..(i + 1) * dt.size]);
    if dt.big_endian {
        b[..dt.size].reverse();
    }
    b
}

/// Turns a Fortran-order 2-D array into C order (1-D, scalars and empty arrays are
/// unchanged; an empty array may declare any number of rows, so none are visited).
fn to_c_order<T: Copy>(shape: &[usize], data: Vec<T>) -> Vec<T> {
    if shape.len() < 2 || data.is_empty() {
        return data;
    }
    let (r, c) = (shape[0], shape[1]);
    let mut out = Vec::with_capacity(data.len());
    for i in 0..r {
        for j in 0..c {
            out.push(data[j * r + i]);
        }
    }
    out
}

fn col_of(shape: &[usize], i: usize) -> (usize, usize) {
    let cols = shape.iter().skip(1).product::<usize>().max(1);
    (i / cols, i % cols)
}

/// Reads a float array (f32, f16 or f64) as f32. Values are not checked for finiteness here;
/// [`read_npy_modality`] does that.
pub fn read_npy_f32(path: &Path) -> Result<NpyArray<f32>> {
    let (h, dt, bytes, start) = read_raw(path)?;
    if dt.kind != Kind::Float {
        return Err(data_err(
            path,
            0,
            "descr",
            format!(
                "dtype `{}` is not a float type; expected `<f4` (float32), `<f2` (float16) or \
                 `<f8` (float64, converted)",
                h.descr
            ),
        ));
    }
    let raw = &bytes[start..];
    let n = raw.len() / dt.size;
    let mut data = Vec::with_capacity(n);
    for i in 0..n {
        let b = elem(raw, i, &dt);
        let v = match dt.size {
            2 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            4 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            _ => {
                let v = f64::from_le_bytes(b);
                let f = v as f32;
                if v.is_finite() && !f.is_finite() {
                    let (row, col) = col_of(&h.shape, i);
                    return Err(data_err(
                        path,
                        row,
                        format!("column {col}"),
                        format!("float64 value {v} is outside the float32 range"),
                    ));
                }
                f
            }
        };
        data.push(v);
    }
    let data = if h.fortran_order {
        to_c_order(&h.shape, data)
    } else {
        data
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Reads an integer array (any of `i1`…`i8`, `u1`…`u8`) as i64; a u64 value above
/// `i64::MAX` is an error.
pub fn read_npy_i64(path: &Path) -> Result<NpyArray<i64>> {
    let (h, dt, bytes, start) = read_raw(path)?;
    if dt.kind == Kind::Float {
        return Err(data_err(
            path,
            0,
            "descr",
            format!(
                "dtype `{}` is a float type; expected an integer array",
                h.descr
            ),
        ));
    }
    let raw = &bytes[start..];
    let n = raw.len() / dt.size;
    let mut data = Vec::with_capacity(n);
    for i in 0..n {
        let b = elem(raw, i, &dt);
        let u = u64::from_le_bytes(b);
        let v: i128 = match (dt.kind, dt.size) {
            (Kind::Int, s) => {
                let shift = 64 - 8 * s as u32;
                (((u << shift) as i64) >> shift) as i128
            }
            _ => u as i128,
        };
        let v = i64::try_from(v).map_err(|_| {
            let (row, col) = col_of(&h.shape, i);
            data_err(
                path,
                row,
                format!("column {col}"),
                format!("value {v} exceeds i64"),
            )
        })?;
        data.push(v);
    }
    let data = if h.fortran_order {
        to_c_order(&h.shape, data)
    } else {
        data
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Reads an integer array as u32 (e.g. semantic-ID codes); a negative value or one above
/// `u32::MAX` is an error naming its row and column.
pub fn read_npy_u32(path: &Path) -> Result<NpyArray<u32>> {
    let a = read_npy_i64(path)?;
    let mut data = Vec::with_capacity(a.data.len());
    for (i, &v) in a.data.iter().enumerate() {
        let u = u32::try_from(v).map_err(|_| {
            let (row, col) = col_of(&a.shape, i);
            data_err(
                path,
                row,
                format!("column {col}"),
                format!("value {v} does not fit in u32"),
            )
        })?;
        data.push(u);
    }
    Ok(NpyArray {
        shape: a.shape,
        data,
    })
}

/// Reads a 2-D float matrix `[items, dim]` as the modality `name`. Fails unless the array is
/// 2-D with a nonzero width and every value is finite.
pub fn read_npy_modality(path: &Path, name: &str) -> Result<Modality> {
    let a = read_npy_f32(path)?;
    if a.shape.len() != 2 {
        return Err(data_err(
            path,
            0,
            "shape",
            format!(
                "expected a 2-D matrix [items, dim], found shape {}",
                shape_text(&a.shape)
            ),
        ));
    }
    if a.shape[1] == 0 {
        return Err(data_err(path, 0, "shape", "embedding width is 0"));
    }
    check_finite(path, "", &a.data, a.shape[1])?;
    Ok(Modality {
        name: name.to_string(),
        dim: a.shape[1],
        data: a.data,
    })
}

fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    // Pad so that magic + version + length + dict (ending in '\n') is a multiple of 64.
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn write_raw(path: &Path, descr: &str, shape: &[usize], n: usize, data: &[u8]) -> Result<()> {
    let holds = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if holds != Some(n) {
        return Err(Error::Invalid(format!(
            "writing {}: shape {} holds {} values, got {n}",
            path.display(),
            shape_text(shape),
            holds.map_or("too many".to_string(), |h| h.to_string())
        )));
    }
    let header = header_bytes(descr, shape);
    if header.len() - 10 > u16::MAX as usize {
        return Err(Error::Invalid(format!(
            "writing {}: shape {} has too many dimensions for a .npy header",
            path.display(),
            shape_text(shape)
        )));
    }
    write_atomic(path, |w| {
        w.write_all(&header)?;
        w.write_all(data)
    })
}

/// Writes an f32 array (`<f4`, C order) atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(path, "<f4", shape, data.len(), &bytes)
}

/// Writes f32 values as an f16 array (`<f2`, C order, round to nearest) atomically.
pub fn write_npy_f16(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    write_raw(path, "<f2", shape, data.len(), &bytes)
}

/// Writes a u32 array (`<u4`, C order) atomically, e.g. semantic-ID codes.
pub fn write_npy_u32(path: &Path, shape: &[usize], data: &[u32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(path, "<u4", shape, data.len(), &bytes)
}

/// Writes an i64 array (`<i8`, C order) atomically, e.g. codes for PyTorch's `LongTensor`.
pub fn write_npy_i64(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_raw(path, "<i8", shape, data.len(), &bytes)
}

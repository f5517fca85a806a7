//! Item embeddings from a CSV (or TSV) file: the fallback format, one file per modality.
//!
//! Accepted layout: one item per line, its values separated by `,` (or tabs: a `.tsv` file, or a
//! first line containing a tab). Blank lines are skipped; comma files may double-quote fields.
//!
//! - **Header (optional).** The first line is a header when any field after its first one is
//!   not a number (e.g. `id,e0,e1`), or when it has a single field that is not a number.
//! - **Id column (optional).** With [`IdColumn::Auto`] the first column holds item ids when the
//!   header's first name is one of `id`, `item`, `item_id`, `itemid`, `item_id:token`; without
//!   a header, when the first field of the first line is not a number. Numeric ids in a
//!   headerless file need [`IdColumn::Yes`].
//! - Every line must have the same number of values; every value must parse as a finite float
//!   (`nan`, `inf` are rejected).
//!
//! Errors give the 1-based line number and the column (its header name, or `column {c}` for the
//! 0-based value index; the id column is its header name, or `id` without a header). Invalid
//! UTF-8 is reported in the field that holds the bad byte (`text` when it is in the header).
//! A quoted bad value shows at most 40 characters.

use super::delimited::{field_index, lines, split, Sep};
use super::fileio::{data_err, read_text_lossy, snippet, Utf8Fault};
use super::types::Modality;
use crate::error::Result;
use std::path::Path;

/// Whether the first column of an embedding CSV holds item ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdColumn {
    /// Decide from the header or the first line (see the module docs).
    #[default]
    Auto,
    /// The first column is the item id.
    Yes,
    /// All columns are values.
    No,
}

/// A modality read from CSV, with the ids of its id column when it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvEmbeddings {
    /// Item ids from the id column, in row order.
    pub ids: Option<Vec<String>>,
    /// The 1-based line number of each row, for error messages.
    pub lines: Vec<usize>,
    /// The matrix.
    pub modality: Modality,
}

const ID_NAMES: &[&str] = &["id", "item", "item_id", "itemid", "item_id:token"];

fn is_number(s: &str) -> bool {
    s.trim().parse::<f64>().is_ok()
}

/// Reads one modality named `name` from a CSV/TSV file laid out as the module docs describe.
pub fn read_csv_embeddings(path: &Path, name: &str, id_column: IdColumn) -> Result<CsvEmbeddings> {
    let (text, fault) = read_text_lossy(path)?;
    let mut rows = lines(&text).peekable();
    let Some(&(first_no, first_line)) = rows.peek() else {
        return Err(data_err(path, 1, "text", "empty file: no embedding rows"));
    };
    let sep = Sep::detect(path, first_line);
    let first = split(first_line, sep).map_err(|m| data_err(path, first_no, "text", m))?;
    let has_header =
        first.iter().skip(1).any(|f| !is_number(f)) || (first.len() == 1 && !is_number(&first[0]));
    let has_id = match id_column {
        IdColumn::Yes => true,
        IdColumn::No => false,
        IdColumn::Auto if has_header => {
            ID_NAMES.contains(&first[0].trim().to_ascii_lowercase().as_str())
        }
        IdColumn::Auto => !is_number(&first[0]),
    };
    let skip = usize::from(has_id);
    let names: Option<Vec<String>> = has_header.then(|| first.iter().skip(skip).cloned().collect());
    if has_header {
        rows.next();
    }
    let field_name = |c: usize| match &names {
        Some(n) if c < n.len() && !n[c].is_empty() => n[c].clone(),
        _ => format!("column {c}"),
    };
    let id_name = match (has_header, first.first()) {
        (true, Some(n)) if !n.trim().is_empty() => n.trim().to_string(),
        _ => "id".to_string(),
    };
    let utf8_err = |f: &Utf8Fault| {
        let field = if has_header && f.line == first_no {
            "text".to_string()
        } else {
            match field_index(&f.before, sep) {
                0 if has_id => id_name.clone(),
                c => field_name(c - skip),
            }
        };
        data_err(path, f.line, field, "not valid UTF-8")
    };
    if let Some(f) = fault.as_ref().filter(|f| has_header && f.line <= first_no) {
        return Err(utf8_err(f));
    }
    let mut dim = names.as_ref().map(Vec::len);
    let mut ids = has_id.then(Vec::new);
    let mut data = Vec::new();
    let mut line_numbers = Vec::new();
    for (line_no, line) in rows {
        if let Some(f) = fault.as_ref().filter(|f| f.line == line_no) {
            return Err(utf8_err(f));
        }
        line_numbers.push(line_no);
        let fields = split(line, sep).map_err(|m| data_err(path, line_no, "text", m))?;
        let values = fields.get(skip..).unwrap_or(&[]);
        let want = *dim.get_or_insert(values.len());
        if values.len() != want {
            return Err(data_err(
                path,
                line_no,
                field_name(values.len().min(want)),
                format!("expected {want} values, found {}", values.len()),
            ));
        }
        if let Some(ids) = ids.as_mut() {
            ids.push(fields[0].trim().to_string());
        }
        for (c, v) in values.iter().enumerate() {
            let x: f32 = v.trim().parse().map_err(|_| {
                data_err(
                    path,
                    line_no,
                    field_name(c),
                    format!("`{}` is not a number", snippet(v.trim())),
                )
            })?;
            if !x.is_finite() {
                return Err(data_err(
                    path,
                    line_no,
                    field_name(c),
                    format!("value is {x} (only finite values are accepted)"),
                ));
            }
            data.push(x);
        }
    }
    if let Some(f) = &fault {
        return Err(utf8_err(f));
    }
    let dim = dim.unwrap_or(0);
    if line_numbers.is_empty() {
        return Err(data_err(path, first_no, "text", "no embedding rows"));
    }
    if dim == 0 {
        return Err(data_err(
            path,
            first_no,
            "text",
            "rows hold no values (only ids)",
        ));
    }
    Ok(CsvEmbeddings {
        ids,
        lines: line_numbers,
        modality: Modality {
            name: name.to_string(),
            dim,
            data,
        },
    })
}

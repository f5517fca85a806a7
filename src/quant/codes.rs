//! `Codes`: semantic IDs of a set of items, row-major `[items, levels]`.

use crate::error::{Error, Result};

/// Semantic IDs: one code per level per item.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Codes {
    /// Number of levels per item.
    pub levels: usize,
    /// Codebook size of each level.
    pub sizes: Vec<usize>,
    /// `items × levels` codes.
    pub data: Vec<u32>,
}

impl Codes {
    /// Codes from parts, checking the layout and the code ranges.
    pub fn new(levels: usize, sizes: Vec<usize>, data: Vec<u32>) -> Result<Codes> {
        if sizes.len() != levels || levels == 0 || !data.len().is_multiple_of(levels) {
            return Err(Error::Invalid(format!(
                "codes: {} values, {levels} levels and {} sizes do not fit",
                data.len(),
                sizes.len()
            )));
        }
        for (i, c) in data.iter().enumerate() {
            if *c as usize >= sizes[i % levels] {
                return Err(Error::Invalid(format!(
                    "codes: item {}, level {}: code {c} is not below {}",
                    i / levels,
                    i % levels,
                    sizes[i % levels]
                )));
            }
        }
        Ok(Codes {
            levels,
            sizes,
            data,
        })
    }
    /// Number of items.
    pub fn items(&self) -> usize {
        self.data.len().checked_div(self.levels).unwrap_or(0)
    }
    /// The codes of item `i`.
    pub fn item(&self, i: usize) -> &[u32] {
        &self.data[i * self.levels..(i + 1) * self.levels]
    }
    /// The codes of level `l` for every item.
    pub fn level(&self, l: usize) -> Vec<u32> {
        self.data
            .iter()
            .skip(l)
            .step_by(self.levels)
            .copied()
            .collect()
    }
    /// Builds codes from per-level columns.
    pub fn from_levels(sizes: Vec<usize>, columns: &[Vec<u32>]) -> Codes {
        let levels = columns.len();
        let n = columns.first().map_or(0, |c| c.len());
        let mut data = Vec::with_capacity(n * levels);
        for i in 0..n {
            for c in columns {
                data.push(c[i]);
            }
        }
        Codes {
            levels,
            sizes,
            data,
        }
    }
}

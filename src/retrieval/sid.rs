//! Semantic IDs as a generative retriever reads them: each item's `L` codes plus the TIGER
//! collision suffix ([`crate::quant::dedup`]), so every item has its own token sequence of
//! `T = L + 1` positions, and the token of position `t` has its own id range (level-specific
//! tokens: code 3 at level 0 and code 3 at level 1 are different tokens).

use crate::error::{Error, Result};
use crate::quant::dedup::dedup_suffix;
use crate::rank::FamilyCodes;

/// Every item's token sequence and the vocabulary of each position.
#[derive(Clone, Debug, PartialEq)]
pub struct SidTable {
    /// Row-major `[items, T]`: position-local codes (`0..vocab[t]`).
    pub codes: Vec<u32>,
    /// Codes per position; the last is the suffix's.
    pub vocab: Vec<usize>,
    /// Where each position's tokens start in the shared token table.
    pub offset: Vec<usize>,
    /// Items that shared their `L` codes with another item (told apart by the suffix only).
    pub collided_items: usize,
}

impl SidTable {
    /// From `[items, levels]` codes with codebook sizes `k` per level (the suffix is appended).
    pub fn new(codes: &[u32], k: &[usize]) -> Result<SidTable> {
        let levels = k.len();
        let d = dedup_suffix(codes, levels)?;
        for (i, row) in codes.chunks_exact(levels).enumerate() {
            if let Some(l) = (0..levels).find(|&l| row[l] as usize >= k[l]) {
                return Err(Error::Invalid(format!(
                    "semantic IDs: item row {i} has code {} at level {l}, but the level has {} codes",
                    row[l], k[l]
                )));
            }
        }
        let mut vocab = k.to_vec();
        vocab.push(d.suffix_size);
        let mut offset = Vec::with_capacity(vocab.len());
        let mut at = 0;
        for &v in &vocab {
            offset.push(at);
            at += v;
        }
        Ok(SidTable {
            codes: d.codes,
            vocab,
            offset,
            collided_items: d.collided_items,
        })
    }

    /// From a tokenizer run's family aligned to the log's items.
    pub fn from_family(f: &FamilyCodes) -> Result<SidTable> {
        SidTable::new(&f.table, &f.k)
    }

    /// Tokens per item.
    pub fn positions(&self) -> usize {
        self.vocab.len()
    }

    /// Items.
    pub fn n_items(&self) -> usize {
        self.codes.len() / self.positions().max(1)
    }

    /// Tokens of all positions together.
    pub fn n_tokens(&self) -> usize {
        self.vocab.iter().sum()
    }

    /// Item `i`'s position-local codes.
    pub fn item(&self, i: usize) -> &[u32] {
        let t = self.positions();
        &self.codes[i * t..(i + 1) * t]
    }

    /// Item `i`'s global token ids (position offset added).
    pub fn tokens(&self, i: usize) -> impl Iterator<Item = u32> + '_ {
        self.item(i)
            .iter()
            .zip(&self.offset)
            .map(|(&c, &o)| c + o as u32)
    }
}

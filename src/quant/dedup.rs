//! TIGER-style collision suffix: items that share a full code tuple get one extra level that
//! tells them apart.
//!
//! Within each group of items sharing a tuple, the suffix is `0, 1, 2, ...` in item order; an
//! item whose tuple is unique gets `0`. Every new tuple is then unique, the first `levels`
//! codes are unchanged, and the suffix level needs a codebook of [`Deduped::suffix_size`]
//! (the largest group) entries.
//!
//! ```
//! use semid::quant::dedup::dedup_suffix;
//! let codes = [1u32, 2, 1, 2, 3, 4, 1, 2]; // 4 items × 2 levels; items 0, 1, 3 collide
//! let d = dedup_suffix(&codes, 2).unwrap();
//! assert_eq!(d.codes, [1, 2, 0, 1, 2, 1, 3, 4, 0, 1, 2, 2]);
//! assert_eq!((d.collided_items, d.groups, d.suffix_size), (3, 1, 3));
//! ```

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Codes with a deduplicating suffix level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deduped {
    /// Row-major `[items, levels]`, the last level being the suffix.
    pub codes: Vec<u32>,
    /// Levels of `codes`: the input levels + 1.
    pub levels: usize,
    /// Items whose original tuple is shared with at least one other item.
    pub collided_items: usize,
    /// Tuples shared by two or more items.
    pub groups: usize,
    /// Codebook size the suffix level needs: the size of the largest group (1 when there are
    /// no collisions or no items).
    pub suffix_size: usize,
}

/// Appends the collision suffix to `codes` (`[items, levels]`, row-major).
///
/// Errors when `levels` is 0 or `codes.len()` is not a multiple of it.
pub fn dedup_suffix(codes: &[u32], levels: usize) -> Result<Deduped> {
    if levels == 0 {
        return Err(Error::shape("dedup_suffix", "levels is 0"));
    }
    if !codes.len().is_multiple_of(levels) {
        return Err(Error::shape(
            "dedup_suffix",
            format!("{} codes is not a multiple of {levels} levels", codes.len()),
        ));
    }
    let items = codes.len() / levels;
    let mut group_size: HashMap<&[u32], u32> = HashMap::with_capacity(items);
    for row in codes.chunks_exact(levels) {
        *group_size.entry(row).or_insert(0) += 1;
    }
    let mut next: HashMap<&[u32], u32> = HashMap::new();
    let mut out = Vec::with_capacity(items * (levels + 1));
    for row in codes.chunks_exact(levels) {
        out.extend_from_slice(row);
        let suffix = if group_size[row] > 1 {
            let n = next.entry(row).or_insert(0);
            *n += 1;
            *n - 1
        } else {
            0
        };
        out.push(suffix);
    }
    let (mut collided_items, mut groups, mut largest) = (0usize, 0usize, 1usize);
    for &n in group_size.values() {
        if n > 1 {
            collided_items += n as usize;
            groups += 1;
            largest = largest.max(n as usize);
        }
    }
    Ok(Deduped {
        codes: out,
        levels: levels + 1,
        collided_items,
        groups,
        suffix_size: largest,
    })
}

//! Interaction logs (CSV, TSV, RecBole atomic `.inter`) and item side tables (RecBole `.item`,
//! or any CSV/TSV with an item id column).
//!
//! Separator: `.tsv`, `.inter`, `.item`, `.user` files are tab-separated and read verbatim;
//! `.csv` files are comma-separated and may double-quote fields; other extensions are tab-
//! separated when the first line holds a tab, else comma-separated.
//!
//! Header names are matched case-insensitively, ignoring a RecBole `:type` suffix and the
//! characters `_`, `-`, space:
//!
//! | role | accepted names |
//! |---|---|
//! | user (required) | `user`, `user_id`, `userid`, `uid`, `users`, `visitorid`, `reviewerid`, `customer_id`, `session_id` |
//! | item (required) | `item`, `item_id`, `itemid`, `iid`, `items`, `movie_id`, `movieid`, `product_id`, `asin`, `track_id`, `song_id`, `business_id` |
//! | label (optional, default 1) | `rating`, `label`, `score`, `click`, `clicked`, `value`, `weight`, `play_count`, `playcount`, `count`, `target`, `stars` |
//! | timestamp (optional) | `timestamp`, `time`, `ts`, `unix_time`, `unixreviewtime`, `datetime`, `created_at` |
//!
//! The first matching column wins; other columns are ignored. A first line in which no field
//! is a known name is taken as data, with the columns user, item[, label[, timestamp]] by
//! position (the MovieLens `u.data` layout). Labels must be finite numbers; timestamps are
//! integers, or finite decimals rounded to the nearest integer; with no timestamp column the
//! 0-based position of the row in the file is its timestamp. Every row must have as many
//! fields as the header (or first line). Errors give the 1-based line number and the column
//! name (`user`, `item`, ... when headerless); a quoted bad value shows at most 40 characters.

use super::delimited::{base_name, Layout, Table};
use super::fileio::{data_err, snippet, snippet_list};
use super::types::{Interaction, Interactions, ItemTable};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

const USER: &[&str] = &[
    "user",
    "userid",
    "uid",
    "users",
    "visitorid",
    "reviewerid",
    "customerid",
    "sessionid",
];
const ITEM: &[&str] = &[
    "item",
    "itemid",
    "iid",
    "items",
    "movieid",
    "productid",
    "asin",
    "trackid",
    "songid",
    "businessid",
];
const LABEL: &[&str] = &[
    "rating",
    "label",
    "score",
    "click",
    "clicked",
    "value",
    "weight",
    "playcount",
    "count",
    "target",
    "stars",
];
const TIME: &[&str] = &[
    "timestamp",
    "time",
    "ts",
    "unixtime",
    "unixreviewtime",
    "datetime",
    "createdat",
];
const CLASS: &[&str] = &[
    "genre",
    "genres",
    "class",
    "category",
    "categories",
    "label",
];

/// A header name lower-cased, without a `:type` suffix and without `_`, `-`, spaces.
fn normalize(name: &str) -> String {
    base_name(name)
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

fn find(names: &[String], accepted: &[&str]) -> Option<usize> {
    names.iter().position(|n| accepted.contains(&n.as_str()))
}

struct Columns {
    user: usize,
    item: usize,
    label: Option<usize>,
    time: Option<usize>,
    names: [String; 4],
}

fn columns(path: &Path, t: &Table) -> Result<Columns> {
    let Some(h) = t.header() else {
        if t.width() < 2 || t.width() > 4 {
            return Err(data_err(
                path,
                1,
                "header",
                format!(
                    "no recognised header and {} columns; a headerless file has user, item[, label[, timestamp]]",
                    t.width()
                ),
            ));
        }
        return Ok(Columns {
            user: 0,
            item: 1,
            label: (t.width() > 2).then_some(2),
            time: (t.width() > 3).then_some(3),
            names: ["user", "item", "label", "timestamp"].map(String::from),
        });
    };
    let norm: Vec<String> = h.iter().map(|n| normalize(n)).collect();
    let need = |accepted: &[&str], role: &str| {
        find(&norm, accepted).ok_or_else(|| {
            data_err(
                path,
                1,
                "header",
                format!(
                    "no {role} column among [{}] (accepted names: {accepted:?})",
                    snippet_list(h)
                ),
            )
        })
    };
    let (user, item) = (need(USER, "user")?, need(ITEM, "item")?);
    let label = find(&norm, LABEL);
    let time = find(&norm, TIME);
    let name = |c: Option<usize>, d: &str| c.map_or(d.to_string(), |c| t.name(c));
    Ok(Columns {
        user,
        item,
        label,
        time,
        names: [
            name(Some(user), "user"),
            name(Some(item), "item"),
            name(label, "label"),
            name(time, "timestamp"),
        ],
    })
}

fn parse_time(path: &Path, row: usize, field: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.abs() < 9.0e18 => Ok(v.round() as i64),
        _ => Err(data_err(
            path,
            row,
            field,
            format!("`{}` is not a finite number of time units", snippet(s)),
        )),
    }
}

fn load(path: &Path, known_items: Option<&[String]>) -> Result<Interactions> {
    let is_header = |first: &[&str]| {
        first.iter().any(|f| {
            let n = normalize(f);
            [USER, ITEM, LABEL, TIME]
                .iter()
                .any(|a| a.contains(&n.as_str()))
        })
    };
    let t = Table::open(path, Layout::Detect(&is_header))?;
    let c = columns(path, &t)?;
    let mut users: Vec<String> = Vec::new();
    let mut user_index: HashMap<String, u32> = HashMap::new();
    let mut items: Vec<String> = known_items.map(<[String]>::to_vec).unwrap_or_default();
    let mut item_index: HashMap<String, u32> = HashMap::with_capacity(items.len());
    for (i, id) in items.iter().enumerate() {
        if item_index.insert(id.clone(), i as u32).is_some() {
            return Err(Error::Invalid(format!(
                "the known item ids repeat `{}`",
                snippet(id)
            )));
        }
    }
    let mut rows = Vec::new();
    t.for_each_row(|no, f| {
        let (u, it) = (f[c.user].trim(), f[c.item].trim());
        for (v, name) in [(u, &c.names[0]), (it, &c.names[1])] {
            if v.is_empty() {
                return Err(data_err(path, no, name, "empty id"));
            }
        }
        let user = *user_index.entry(u.to_string()).or_insert_with(|| {
            users.push(u.to_string());
            (users.len() - 1) as u32
        });
        let item = match item_index.get(it) {
            Some(&i) => i,
            None if known_items.is_some() => {
                return Err(data_err(
                    path,
                    no,
                    &c.names[1],
                    format!(
                        "unknown item `{}`: not among the {} embedding ids",
                        snippet(it),
                        items.len()
                    ),
                ))
            }
            None => {
                items.push(it.to_string());
                item_index.insert(it.to_string(), (items.len() - 1) as u32);
                (items.len() - 1) as u32
            }
        };
        let label = match c.label {
            None => 1.0,
            Some(l) => match f[l].trim().parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    return Err(data_err(
                        path,
                        no,
                        &c.names[2],
                        format!("`{}` is not a finite number", snippet(f[l].trim())),
                    ))
                }
            },
        };
        let timestamp = match c.time {
            None => rows.len() as i64,
            Some(ti) => parse_time(path, no, &c.names[3], f[ti])?,
        };
        rows.push(Interaction {
            user,
            item,
            label,
            timestamp,
        });
        Ok(())
    })?;
    if rows.is_empty() {
        return Err(data_err(path, 1, "text", "no interactions (only a header)"));
    }
    Ok(Interactions { users, items, rows })
}

/// Loads an interaction log; users and items are numbered in order of first appearance.
pub fn load_interactions(path: &Path) -> Result<Interactions> {
    load(path, None)
}

/// Loads an interaction log whose items must all be among `item_ids` (e.g. the ids of the
/// item embeddings); the result's `items` is exactly `item_ids`, so an item index is an
/// embedding row. An unknown item is an error naming its line.
pub fn load_interactions_for_items(path: &Path, item_ids: &[String]) -> Result<Interactions> {
    load(path, Some(item_ids))
}

/// Loads an item side table: a RecBole `.item` file (`item_id:token movie_title:token_seq
/// genre:token_seq ...`) or a CSV/TSV with a header. The id column is the first one named like
/// an item (see the module docs), else the first column; every other column becomes a field
/// named without its `:type` suffix, values kept as text (sequences stay space-separated).
/// The first of `genre`, `genres`, `class`, `category`, `categories`, `label` gives
/// [`ItemTable::labels`]: the first genre of each item (split on `|` when present, else on
/// whitespace; `(none)` when empty). Ids must be unique.
pub fn load_item_table(path: &Path) -> Result<ItemTable> {
    let t = Table::open(path, Layout::Detect(&|_| true))?;
    let header = t.header().unwrap_or_default();
    let norm: Vec<String> = header.iter().map(|n| normalize(n)).collect();
    let id_col = find(&norm, ITEM).unwrap_or(0);
    let id_name = t.name(id_col);
    let mut ids = Vec::new();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); t.width()];
    let mut seen: HashMap<String, usize> = HashMap::new();
    t.for_each_row(|no, f| {
        let id = f[id_col].trim().to_string();
        if id.is_empty() {
            return Err(data_err(path, no, &id_name, "empty id"));
        }
        if let Some(first) = seen.insert(id.clone(), no) {
            return Err(data_err(
                path,
                no,
                &id_name,
                format!("duplicate id `{}` (first on row {first})", snippet(&id)),
            ));
        }
        ids.push(id);
        for (c, v) in f.iter().enumerate().filter(|&(c, _)| c != id_col) {
            values[c].push(v.to_string());
        }
        Ok(())
    })?;
    if ids.is_empty() {
        return Err(data_err(path, 1, "text", "no items (only a header)"));
    }
    let (mut labels, mut label_names) = (None, Vec::new());
    if let Some(col) = find(&norm, CLASS).filter(|&c| c != id_col) {
        let mut index: HashMap<String, u32> = HashMap::new();
        let l = values[col]
            .iter()
            .map(|v| {
                let v = v.trim();
                let first = if v.contains('|') {
                    v.split('|').next()
                } else {
                    v.split_whitespace().next()
                };
                let name = first
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .unwrap_or("(none)");
                *index.entry(name.to_string()).or_insert_with(|| {
                    label_names.push(name.to_string());
                    (label_names.len() - 1) as u32
                })
            })
            .collect();
        labels = Some(l);
    }
    let fields: Vec<(String, Vec<String>)> = values
        .into_iter()
        .enumerate()
        .filter(|&(c, _)| c != id_col)
        .map(|(c, vals)| (t.name(c), vals))
        .collect();
    Ok(ItemTable {
        ids,
        fields,
        labels,
        label_names,
    })
}

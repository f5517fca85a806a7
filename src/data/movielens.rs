//! Loaders for MovieLens-1M and MovieLens-100k in RecBole's "atomic" format (as fetched by
//! [`crate::data::fetch`]), and the ML-100k knowledge-graph modality.
//!
//! Atomic files are tab-separated with a header of `name:type` fields; `\r\n` line ends and a
//! trailing empty line are accepted. Errors are [`Error::Data`] naming the file, the 1-based
//! line and the field; a quoted bad value shows at most 40 characters. Ratings and timestamps
//! must be finite (`nan`, `inf`, `1e999` are errors); a year is an integer of at most four
//! digits.
//!
//! Both loaders return an [`ItemTable`] (fields `title`, `year`, `genres`; labels = first
//! genre) whose ids are also the item vocabulary of the [`Interactions`] (labels = ratings,
//! rows in file order).

use crate::data::delimited::{Layout, Table};
use crate::data::fileio::{data_err, snippet};
use crate::data::types::{Interaction, Interactions, ItemTable, Modality};
use crate::error::{Error, Result};
use crate::rng::Rng;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Reads a RecBole atomic file and calls `f(line, values, types)` for each data row, with the
/// trimmed values and the header types of the columns `want`, in that order. A column missing
/// from the header is a data error naming it.
fn for_each_row<const N: usize>(
    path: &Path,
    want: &[&str; N],
    mut f: impl FnMut(usize, &[&str], &[&str]) -> Result<()>,
) -> Result<()> {
    let t = Table::open(path, Layout::Atomic)?;
    let mut idx = [0usize; N];
    for (i, w) in idx.iter_mut().zip(want) {
        *i = t.column(w)?;
    }
    let types = idx.map(|i| t.field_type(i));
    t.for_each_row(|row, fields| f(row, &idx.map(|i| fields[i].trim()), &types))
}

/// Column names of an item file.
struct ItemColumns {
    id: &'static str,
    title: &'static str,
    year: &'static str,
    genres: &'static str,
}

const ML1M_ITEM: ItemColumns = ItemColumns {
    id: "item_id",
    title: "movie_title",
    year: "release_year",
    genres: "genre",
};
const ML100K_ITEM: ItemColumns = ItemColumns {
    id: "item_id",
    title: "movie_title",
    year: "release_year",
    genres: "class",
};

/// The largest release year accepted (in absolute value); a larger number is not a year.
const MAX_YEAR: f64 = 9999.0;

/// Label name of items with no genre.
pub const NO_GENRE: &str = "(none)";

fn load_items(path: &Path, cols: &ItemColumns) -> Result<ItemTable> {
    let mut ids = Vec::new();
    let mut titles = Vec::new();
    let mut years = Vec::new();
    let mut genres = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for_each_row(
        path,
        &[cols.id, cols.title, cols.year, cols.genres],
        |row, v, types| {
            let id = v[0];
            if id.is_empty() {
                return Err(data_err(path, row, cols.id, "empty item id"));
            }
            if let Some(first) = seen.insert(id.to_string(), row) {
                return Err(data_err(
                    path,
                    row,
                    cols.id,
                    format!(
                        "duplicate item id `{}` (first on line {first})",
                        snippet(id)
                    ),
                ));
            }
            // A numeric column must hold a year; a `token` column may also say it is unknown
            // (ml-100k writes `unkonwn`), which becomes an empty year.
            let year = if v[2].is_empty() {
                String::new()
            } else {
                match v[2].parse::<f64>() {
                    Ok(y) if y.fract() == 0.0 && y.abs() <= MAX_YEAR => format!("{}", y as i64),
                    _ if types[2] == "token" => String::new(),
                    _ => {
                        return Err(data_err(
                            path,
                            row,
                            cols.year,
                            format!("`{}` is not a year", snippet(v[2])),
                        ))
                    }
                }
            };
            ids.push(id.to_string());
            titles.push(v[1].to_string());
            years.push(year);
            genres.push(v[3].split_whitespace().collect::<Vec<_>>().join(" "));
            Ok(())
        },
    )?;
    let first: Vec<&str> = genres
        .iter()
        .map(|g| {
            g.split(' ')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or(NO_GENRE)
        })
        .collect();
    let label_names: Vec<String> = first
        .iter()
        .copied()
        .collect::<BTreeSet<&str>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    let labels = first
        .iter()
        .map(|g| label_names.iter().position(|n| n == g).unwrap_or(0) as u32)
        .collect();
    Ok(ItemTable {
        ids,
        fields: vec![
            ("title".to_string(), titles),
            ("year".to_string(), years),
            ("genres".to_string(), genres),
        ],
        labels: Some(labels),
        label_names,
    })
}

fn load_inter(path: &Path, items: &ItemTable, item_file: &Path) -> Result<Interactions> {
    let index: HashMap<&str, u32> = items
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let mut users: Vec<String> = Vec::new();
    let mut user_index: HashMap<String, u32> = HashMap::new();
    let mut rows = Vec::new();
    let item_name = item_file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for_each_row(
        path,
        &["user_id", "item_id", "rating", "timestamp"],
        |row, v, _| {
            if v[0].is_empty() {
                return Err(data_err(path, row, "user_id", "empty user id"));
            }
            let item = *index.get(v[1]).ok_or_else(|| {
                data_err(
                    path,
                    row,
                    "item_id",
                    format!("item `{}` is not in {item_name}", snippet(v[1])),
                )
            })?;
            let label = match v[2].parse::<f32>() {
                Ok(r) if r.is_finite() => r,
                _ => {
                    return Err(data_err(
                        path,
                        row,
                        "rating",
                        format!("`{}` is not a number", snippet(v[2])),
                    ))
                }
            };
            let timestamp = match v[3].parse::<f64>() {
                Ok(t) if t.is_finite() && t.abs() < 9.0e15 => t.round() as i64,
                _ => {
                    return Err(data_err(
                        path,
                        row,
                        "timestamp",
                        format!("`{}` is not a timestamp", snippet(v[3])),
                    ))
                }
            };
            let user = match user_index.get(v[0]) {
                Some(&u) => u,
                None => {
                    let u = users.len() as u32;
                    users.push(v[0].to_string());
                    user_index.insert(v[0].to_string(), u);
                    u
                }
            };
            rows.push(Interaction {
                user,
                item,
                label,
                timestamp,
            });
            Ok(())
        },
    )?;
    Ok(Interactions {
        users,
        items: items.ids.clone(),
        rows,
    })
}

/// A loaded MovieLens data set.
#[derive(Clone, Debug, PartialEq)]
pub struct MovieLens {
    /// Ratings (label = rating 1–5, timestamp in seconds), users in order of first appearance,
    /// items in the order of the item file.
    pub interactions: Interactions,
    /// Movies: fields `title`, `year`, `genres` (space-separated); labels = first genre.
    pub items: ItemTable,
}

fn load_pair(dir: &Path, stem: &str, cols: &ItemColumns) -> Result<MovieLens> {
    let item_path: PathBuf = dir.join(format!("{stem}.item"));
    let inter_path: PathBuf = dir.join(format!("{stem}.inter"));
    let items = load_items(&item_path, cols)?;
    let interactions = load_inter(&inter_path, &items, &item_path)?;
    Ok(MovieLens {
        interactions,
        items,
    })
}

/// Loads `ml-1m.inter` and `ml-1m.item` from `dir` (item ids are title strings such as
/// `Toy Story (1995)`).
pub fn load_ml1m(dir: &Path) -> Result<MovieLens> {
    load_pair(dir, "ml-1m", &ML1M_ITEM)
}

/// Loads `ml-100k.inter` and `ml-100k.item` from `dir` (integer item ids).
pub fn load_ml100k(dir: &Path) -> Result<MovieLens> {
    load_pair(dir, "ml-100k", &ML100K_ITEM)
}

/// The text of each item for a sentence encoder: `Title (Year) Genre1 Genre2`, e.g.
/// `Toy Story (1995) Animation Children's Comedy` (the year part is left out when unknown).
pub fn item_texts(items: &ItemTable) -> Vec<String> {
    let field = |name: &str| {
        items
            .fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    let (titles, years, genres) = (field("title"), field("year"), field("genres"));
    (0..items.ids.len())
        .map(|i| {
            let title = titles.map_or(items.ids[i].as_str(), |t| t[i].as_str());
            let mut s = title.to_string();
            if let Some(y) = years.map(|y| y[i].as_str()).filter(|y| !y.is_empty()) {
                s.push_str(&format!(" ({y})"));
            }
            if let Some(g) = genres.map(|g| g[i].as_str()).filter(|g| !g.is_empty()) {
                s.push(' ');
                s.push_str(g);
            }
            s
        })
        .collect()
}

/// A copy of `inter` with click labels: 1 where the rating is at least `threshold`, else 0
/// (the papers use `rating ≥ 4` as positive).
pub fn ratings_to_clicks(inter: &Interactions, threshold: f32) -> Interactions {
    Interactions {
        users: inter.users.clone(),
        items: inter.items.clone(),
        rows: inter
            .rows
            .iter()
            .map(|r| Interaction {
                label: if r.label >= threshold { 1.0 } else { 0.0 },
                ..*r
            })
            .collect(),
    }
}

/// A knowledge graph linked to items: RecBole `.link` and `.kg` files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KnowledgeGraph {
    /// `(item id, entity id)` pairs, in file order; each item at most once.
    pub links: Vec<(String, String)>,
    /// `(head, relation, tail)` triples, in file order.
    pub triples: Vec<(String, String, String)>,
}

/// The `kg` modality built by [`KnowledgeGraph::modality`].
#[derive(Clone, Debug, PartialEq)]
pub struct KgModality {
    /// The embeddings, named `kg`, one L2-normalised row per requested item (all zeros for an
    /// item with no usable link).
    pub modality: Modality,
    /// Number of items with a non-zero row.
    pub covered: usize,
    /// Number of distinct neighbour entities used as features.
    pub features: usize,
}

/// Neighbour entities shared by fewer linked items than this are left out of the KG bags: an
/// entity of a single movie makes it no more similar to any other.
pub const KG_MIN_DF: usize = 2;

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl KnowledgeGraph {
    /// Reads a `.link` file (`item_id`, `entity_id`) and a `.kg` file (`head_id`,
    /// `relation_id`, `tail_id`).
    pub fn load(link_path: &Path, kg_path: &Path) -> Result<KnowledgeGraph> {
        let mut links = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for_each_row(link_path, &["item_id", "entity_id"], |row, v, _| {
            if v[0].is_empty() || v[1].is_empty() {
                let f = if v[0].is_empty() {
                    "item_id"
                } else {
                    "entity_id"
                };
                return Err(data_err(link_path, row, f, "empty value"));
            }
            if let Some(first) = seen.insert(v[0].to_string(), row) {
                return Err(data_err(
                    link_path,
                    row,
                    "item_id",
                    format!(
                        "item `{}` is linked twice (first on line {first})",
                        snippet(v[0])
                    ),
                ));
            }
            links.push((v[0].to_string(), v[1].to_string()));
            Ok(())
        })?;
        let mut triples = Vec::new();
        for_each_row(
            kg_path,
            &["head_id", "relation_id", "tail_id"],
            |row, v, _| {
                for (k, name) in ["head_id", "relation_id", "tail_id"].iter().enumerate() {
                    if v[k].is_empty() {
                        return Err(data_err(kg_path, row, *name, "empty value"));
                    }
                }
                triples.push((v[0].to_string(), v[1].to_string(), v[2].to_string()));
                Ok(())
            },
        )?;
        Ok(KnowledgeGraph { links, triples })
    }

    /// The `kg` modality for `item_ids`: for each item, the set of entities one hop from its
    /// linked entity (either direction, any relation; entities shared by fewer than
    /// [`KG_MIN_DF`] linked items are dropped), as a bag projected to `dim` columns by a seeded
    /// Gaussian random projection (each entity's column of the projection is drawn from a
    /// hash of its id and `seed`), then L2-normalised. Honest naming: these are knowledge-graph
    /// links (actors, directors, genres, awards, …), not another content signal.
    ///
    /// Caveat, measured on the `recbole==1.2.1` copy of ML-100k: its item→entity links do not
    /// line up with the items' own metadata (sequel/prequel pairs share a release year at the
    /// random rate, 11%; KG genres are unrelated to the MovieLens genres; a movie's five nearest
    /// KG neighbours share a genre with it 35% of the time, as do random pairs). Treat this
    /// modality as a weak or control signal, not as item semantics.
    pub fn modality(&self, item_ids: &[String], dim: usize, seed: u64) -> Result<KgModality> {
        if dim == 0 {
            return Err(Error::Invalid(
                "kg modality: `dim` must be at least 1".into(),
            ));
        }
        let entity_of: HashMap<&str, &str> = self
            .links
            .iter()
            .map(|(i, e)| (i.as_str(), e.as_str()))
            .collect();
        let mut neighbours: HashMap<&str, BTreeSet<&str>> = self
            .links
            .iter()
            .map(|(_, e)| (e.as_str(), BTreeSet::new()))
            .collect();
        for (h, _, t) in &self.triples {
            if let Some(s) = neighbours.get_mut(h.as_str()) {
                s.insert(t.as_str());
            }
            if let Some(s) = neighbours.get_mut(t.as_str()) {
                s.insert(h.as_str());
            }
        }
        let mut df: HashMap<&str, usize> = HashMap::new();
        for set in neighbours.values() {
            for &e in set {
                *df.entry(e).or_insert(0) += 1;
            }
        }
        let seed_mix = Rng::new(seed).next_u64();
        let mut proj: HashMap<&str, Vec<f32>> = HashMap::new();
        let mut data = vec![0f32; item_ids.len() * dim];
        let mut covered = 0;
        for (i, id) in item_ids.iter().enumerate() {
            let Some(set) = entity_of.get(id.as_str()).and_then(|e| neighbours.get(e)) else {
                continue;
            };
            let row = &mut data[i * dim..(i + 1) * dim];
            let mut any = false;
            for &e in set {
                if df.get(e).copied().unwrap_or(0) < KG_MIN_DF {
                    continue;
                }
                let g = proj
                    .entry(e)
                    .or_insert_with(|| Rng::new(fnv1a(e) ^ seed_mix).normal_vec(dim));
                for (r, x) in row.iter_mut().zip(g.iter()) {
                    *r += x;
                }
                any = true;
            }
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if any && norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
                covered += 1;
            } else {
                row.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        Ok(KgModality {
            modality: Modality {
                name: "kg".to_string(),
                dim,
                data,
            },
            covered,
            features: proj.len(),
        })
    }
}

/// Loads `ml-100k.link` and `ml-100k.kg` from `dir`.
pub fn load_ml100k_kg(dir: &Path) -> Result<KnowledgeGraph> {
    KnowledgeGraph::load(&dir.join("ml-100k.link"), &dir.join("ml-100k.kg"))
}

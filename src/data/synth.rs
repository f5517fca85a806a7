//! The synthetic multimodal generator: items with two modalities ("text" and "audio") that share
//! a known hierarchical cluster structure, users with known preferences, and time-ordered click
//! logs drawn from them. Everything is deterministic given [`SynthConfig::seed`], and the ground
//! truth is returned (and saved) beside the data so that semantic IDs and recommenders can be
//! scored against it.
//!
//! # The model
//! * **Shared latent** (`shared_dim`): each item picks a leaf of a cluster tree with
//!   `clusters = [k0, k1, ...]` branches per level (e.g. `[8, 4, 4]`: 8 top clusters, each with
//!   4 sub-clusters, each with 4 leaves). Its shared latent is the sum of one random offset per
//!   level along its path (scales `1, level_decay, level_decay², ...`) plus `noise`.
//! * **Specific latents** (`specific_dim`), one per modality: each item picks one of
//!   `specific_clusters` flat clusters of that modality (scale `specific_scale`) plus `noise`.
//! * **Embeddings**: each modality is a fixed random 2-layer MLP with tanh (weights from the
//!   seed) applied to `[shared ⊕ own specific]`, plus `output_noise`, giving `text_dim` and
//!   `audio_dim` columns. The two modalities therefore agree on the shared hierarchy and each
//!   also carries structure the other lacks.
//! * **Popularity**: a Zipf-like long tail; the item at random rank `r` has exposure weight
//!   `(r + 1)^-tail_exponent`.
//! * **Users** like 1..=`favorite_leaves` leaves of the tree (shared factor) and one specific
//!   cluster per modality (specific factors). Their affinity for an item is
//!   `max_f cos(pref_f, shared) + specific_pref_weight · Σ_m cos(pref_m, specific_m)`.
//! * **Interactions**: each user sees about `interactions_per_user` items in time order (log-
//!   normal spread). Each exposure comes from the leaf of the user's last click (`p_follow`),
//!   from one of the user's favourite leaves (`p_interest`), or from the global popularity
//!   distribution (the rest); within a leaf, items are drawn by popularity. The click label is
//!   Bernoulli(`sigmoid(click_scale · (affinity − click_threshold))`).
//!
//! Random streams are separated by purpose, so changing `users` or `interactions_per_user` leaves
//! the item embeddings unchanged.

use crate::data::fileio::write_atomic;
use crate::data::npy::write_npy_f32;
use crate::data::types::{Interaction, Interactions, ItemEmbeddings, ItemTable, Modality};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Settings of the synthetic generator. Every field has a default (see [`Default`]); from JSON,
/// missing fields take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Number of items (default 2,000).
    pub items: usize,
    /// Number of users (default 500).
    pub users: usize,
    /// Seed of every random draw (default 42).
    pub seed: u64,
    /// Width of the "text" embeddings (default 768).
    pub text_dim: usize,
    /// Width of the "audio" embeddings (default 512).
    pub audio_dim: usize,
    /// Width of the shared latent (default 32).
    pub shared_dim: usize,
    /// Width of each modality-specific latent (default 16).
    pub specific_dim: usize,
    /// Hidden width of the random MLP that maps latents to embeddings (default 128).
    pub hidden_dim: usize,
    /// Branches per level of the cluster tree, top first (default `[8, 4, 4]`).
    pub clusters: Vec<usize>,
    /// Scale of each level's offsets relative to the level above (default 0.5).
    pub level_decay: f32,
    /// Number of flat clusters of each modality-specific latent (default 6).
    pub specific_clusters: usize,
    /// Scale of the specific cluster centres, relative to the top-level scale 1 (default 0.7).
    pub specific_scale: f32,
    /// Standard deviation of the per-item latent noise around its leaf / cluster (default 0.1).
    pub noise: f32,
    /// Standard deviation of the noise added to each embedding value (default 0.05).
    pub output_noise: f32,
    /// Mean number of exposures per user (default 40; at least 3 per user).
    pub interactions_per_user: usize,
    /// Zipf exponent of item popularity; 0 = uniform (default 1.0).
    pub tail_exponent: f64,
    /// Most favourite leaves per user; each user has 1..=this many (default 3).
    pub favorite_leaves: usize,
    /// Weight of the specific factors in the user affinity (default 0.5).
    pub specific_pref_weight: f32,
    /// Probability that an exposure comes from the leaf of the user's last click (default 0.25).
    pub p_follow: f32,
    /// Probability that an exposure comes from one of the user's favourite leaves (default 0.3).
    pub p_interest: f32,
    /// Slope of the click probability in the affinity (default 6).
    pub click_scale: f32,
    /// Affinity at which the click probability is one half (default 1.0).
    pub click_threshold: f32,
    /// Earliest timestamp, seconds since the epoch (default 1,600,000,000).
    pub start_time: i64,
    /// Mean gap between a user's consecutive events, in seconds (default 3,600).
    pub mean_gap_s: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            items: 2000,
            users: 500,
            seed: 42,
            text_dim: 768,
            audio_dim: 512,
            shared_dim: 32,
            specific_dim: 16,
            hidden_dim: 128,
            clusters: vec![8, 4, 4],
            level_decay: 0.5,
            specific_clusters: 6,
            specific_scale: 0.7,
            noise: 0.1,
            output_noise: 0.05,
            interactions_per_user: 40,
            tail_exponent: 1.0,
            favorite_leaves: 3,
            specific_pref_weight: 0.5,
            p_follow: 0.25,
            p_interest: 0.3,
            click_scale: 6.0,
            click_threshold: 1.0,
            start_time: 1_600_000_000,
            mean_gap_s: 3600.0,
        }
    }
}

impl SynthConfig {
    /// Checks every setting; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("synth config: {m}")));
        for (name, v) in [
            ("items", self.items),
            ("text_dim", self.text_dim),
            ("audio_dim", self.audio_dim),
            ("shared_dim", self.shared_dim),
            ("specific_dim", self.specific_dim),
            ("hidden_dim", self.hidden_dim),
            ("specific_clusters", self.specific_clusters),
            ("interactions_per_user", self.interactions_per_user),
            ("favorite_leaves", self.favorite_leaves),
        ] {
            if v == 0 {
                return bad(format!("`{name}` must be at least 1"));
            }
        }
        if self.clusters.is_empty() || self.clusters.contains(&0) {
            return bad(format!(
                "`clusters` must list at least one level, each with at least 1 branch; got {:?}",
                self.clusters
            ));
        }
        if self.leaves().is_none() {
            return bad(format!(
                "`clusters` {:?} has too many leaves",
                self.clusters
            ));
        }
        for (name, dim) in [("text_dim", self.text_dim), ("audio_dim", self.audio_dim)] {
            if self
                .items
                .checked_mul(dim)
                .is_none_or(|n| n > isize::MAX as usize / 4)
            {
                return bad(format!("`items` × `{name}` is too large"));
            }
        }
        for (name, v, lo) in [
            ("level_decay", self.level_decay, f32::MIN_POSITIVE),
            ("specific_scale", self.specific_scale, 0.0),
            ("noise", self.noise, 0.0),
            ("output_noise", self.output_noise, 0.0),
            ("specific_pref_weight", self.specific_pref_weight, 0.0),
        ] {
            if !v.is_finite() || v < lo {
                return bad(format!(
                    "`{name}` must be finite and at least {lo}; got {v}"
                ));
            }
        }
        for (name, v) in [
            ("click_scale", self.click_scale),
            ("click_threshold", self.click_threshold),
        ] {
            if !v.is_finite() {
                return bad(format!("`{name}` must be finite; got {v}"));
            }
        }
        if !self.tail_exponent.is_finite() || self.tail_exponent < 0.0 {
            return bad(format!(
                "`tail_exponent` must be finite and non-negative; got {}",
                self.tail_exponent
            ));
        }
        if !self.mean_gap_s.is_finite() || self.mean_gap_s < 0.0 {
            return bad(format!(
                "`mean_gap_s` must be finite and non-negative; got {}",
                self.mean_gap_s
            ));
        }
        let p_ok = |p: f32| p.is_finite() && (0.0..=1.0).contains(&p);
        if !p_ok(self.p_follow) || !p_ok(self.p_interest) || self.p_follow + self.p_interest > 1.0 {
            return bad(format!(
                "`p_follow` ({}) and `p_interest` ({}) must be probabilities summing to at most 1",
                self.p_follow, self.p_interest
            ));
        }
        Ok(())
    }

    /// Number of leaves of the cluster tree (the product of `clusters`), or `None` on overflow.
    pub fn leaves(&self) -> Option<usize> {
        self.clusters
            .iter()
            .try_fold(1usize, |acc, &k| acc.checked_mul(k))
    }
}

/// One synthetic user's true preferences.
#[derive(Clone, Debug, PartialEq)]
pub struct UserTruth {
    /// Favourite leaves (flat leaf indices, see [`GroundTruth::leaf`]).
    pub favorite_leaves: Vec<u32>,
    /// One shared-space preference vector per favourite leaf, each `shared_dim` wide.
    pub shared: Vec<Vec<f32>>,
    /// One preference vector per modality (order of [`GroundTruth::specific`]), each
    /// `specific_dim` wide.
    pub specific: Vec<Vec<f32>>,
    /// The favourite specific cluster per modality.
    pub specific_cluster: Vec<u32>,
}

/// What the generator knows and a model has to discover.
#[derive(Clone, Debug, PartialEq)]
pub struct GroundTruth {
    /// Branches per level of the cluster tree (copy of [`SynthConfig::clusters`]).
    pub levels: Vec<usize>,
    /// Per item, its cluster id at each level (local to its parent: level `l` ids are in
    /// `0..levels[l]`).
    pub cluster_path: Vec<Vec<u32>>,
    /// Shared latents, `items × shared_dim`, named `shared`.
    pub shared: Modality,
    /// Specific latents, one matrix per modality (`text`, `audio`), `items × specific_dim`.
    pub specific: Vec<Modality>,
    /// Per modality (order of `specific`), each item's specific cluster.
    pub specific_cluster: Vec<Vec<u32>>,
    /// Each item's share of popularity-driven exposures (sums to 1).
    pub popularity: Vec<f32>,
    /// Each item's popularity rank (0 = most popular).
    pub popularity_rank: Vec<u32>,
    /// Per user, its true preferences.
    pub users: Vec<UserTruth>,
}

impl GroundTruth {
    /// Flat leaf index of item `i` (its path read as a mixed-radix number, top level first).
    pub fn leaf(&self, i: usize) -> u32 {
        leaf_index(&self.levels, &self.cluster_path[i]) as u32
    }
    /// Cluster id of every item at `level` made global (unique across parents): the prefix of
    /// the path up to and including `level`, read as a mixed-radix number.
    pub fn level_labels(&self, level: usize) -> Vec<u32> {
        let lv = &self.levels[..=level.min(self.levels.len() - 1)];
        self.cluster_path
            .iter()
            .map(|p| leaf_index(lv, &p[..lv.len()]) as u32)
            .collect()
    }
}

fn leaf_index(levels: &[usize], path: &[u32]) -> usize {
    levels
        .iter()
        .zip(path)
        .fold(0usize, |acc, (&k, &d)| acc * k + d as usize)
}

/// A generated data set with its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthData {
    /// The settings it was generated from.
    pub config: SynthConfig,
    /// Item embeddings: modalities `text` and `audio`.
    pub embeddings: ItemEmbeddings,
    /// Items: fields `path`, `popularity_rank`; labels = the true top-level cluster.
    pub items: ItemTable,
    /// Click log (labels 1/0), grouped by user and time-ordered within each user.
    pub interactions: Interactions,
    /// The truth behind it all.
    pub truth: GroundTruth,
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An independent random stream for one purpose.
fn stream(seed: u64, purpose: u64) -> Rng {
    Rng::new(mix64(seed ^ mix64(purpose.wrapping_add(0x5EED_0F5E_4D00))))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

/// Samples an index from a cumulative weight table (last entry = total > 0).
fn sample_cum(rng: &mut Rng, cum: &[f64]) -> usize {
    let total = *cum.last().unwrap_or(&0.0);
    let u = rng.uniform() * total;
    cum.partition_point(|&c| c <= u).min(cum.len() - 1)
}

/// A fixed random 2-layer tanh MLP.
struct Mlp {
    inp: usize,
    hidden: usize,
    out: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

impl Mlp {
    fn new(rng: &mut Rng, inp: usize, hidden: usize, out: usize) -> Mlp {
        let s1 = (1.0 / inp as f64).sqrt() as f32;
        let s2 = (1.0 / hidden as f64).sqrt() as f32;
        Mlp {
            inp,
            hidden,
            out,
            w1: (0..hidden * inp)
                .map(|_| rng.normal() as f32 * s1)
                .collect(),
            b1: (0..hidden).map(|_| rng.normal() as f32 * 0.1).collect(),
            w2: (0..out * hidden)
                .map(|_| rng.normal() as f32 * s2)
                .collect(),
            b2: (0..out).map(|_| rng.normal() as f32 * 0.1).collect(),
        }
    }
    fn apply(&self, x: &[f32], h: &mut [f32], y: &mut [f32]) {
        for (j, hj) in h.iter_mut().enumerate() {
            *hj = (self.b1[j] + dot(&self.w1[j * self.inp..(j + 1) * self.inp], x)).tanh();
        }
        for (o, yo) in y.iter_mut().enumerate() {
            *yo = self.b2[o] + dot(&self.w2[o * self.hidden..(o + 1) * self.hidden], h);
        }
        debug_assert_eq!(y.len(), self.out);
    }
}

const MODALITIES: [&str; 2] = ["text", "audio"];

/// Generates a synthetic data set. Deterministic: the same config gives bit-identical output.
pub fn generate(cfg: &SynthConfig) -> Result<SynthData> {
    cfg.validate()?;
    let n = cfg.items;
    let ds = cfg.shared_dim;
    let dsp = cfg.specific_dim;
    let levels = cfg.clusters.clone();
    let n_leaves = cfg.leaves().unwrap_or(1);

    // Cluster tree: offsets per level, leaf centres = sum of the offsets along the path.
    let mut rng = stream(cfg.seed, 1);
    let mut centers = vec![0f32; n_leaves * ds];
    let mut nodes = 1usize;
    let mut scale = 1.0f32;
    for &k in &levels {
        nodes *= k;
        let offs: Vec<f32> = (0..nodes * ds)
            .map(|_| rng.normal() as f32 * scale)
            .collect();
        let per_node = n_leaves / nodes;
        for leaf in 0..n_leaves {
            let node = leaf / per_node;
            let c = &mut centers[leaf * ds..(leaf + 1) * ds];
            for (cv, ov) in c.iter_mut().zip(&offs[node * ds..(node + 1) * ds]) {
                *cv += ov;
            }
        }
        scale *= cfg.level_decay;
    }
    let path_of = |leaf: usize| -> Vec<u32> {
        let mut p = vec![0u32; levels.len()];
        let mut rest = leaf;
        for (l, &k) in levels.iter().enumerate().rev() {
            p[l] = (rest % k) as u32;
            rest /= k;
        }
        p
    };

    // Items: leaf and shared latent.
    let mut rng = stream(cfg.seed, 2);
    let mut leaf_of = Vec::with_capacity(n);
    let mut shared = vec![0f32; n * ds];
    for i in 0..n {
        let leaf = rng.below(n_leaves);
        leaf_of.push(leaf);
        for (d, v) in shared[i * ds..(i + 1) * ds].iter_mut().enumerate() {
            *v = centers[leaf * ds + d] + cfg.noise * rng.normal() as f32;
        }
    }

    // Specific latents and embeddings per modality.
    let mut spec_centers = Vec::new();
    let mut specific = Vec::new();
    let mut specific_cluster = Vec::new();
    let mut modalities = Vec::new();
    for (m, name) in MODALITIES.iter().enumerate() {
        let mut rng = stream(cfg.seed, 10 + m as u64);
        let cen: Vec<f32> = (0..cfg.specific_clusters * dsp)
            .map(|_| rng.normal() as f32 * cfg.specific_scale)
            .collect();
        let mut lat = vec![0f32; n * dsp];
        let mut cl = Vec::with_capacity(n);
        for i in 0..n {
            let c = rng.below(cfg.specific_clusters);
            cl.push(c as u32);
            for (d, v) in lat[i * dsp..(i + 1) * dsp].iter_mut().enumerate() {
                *v = cen[c * dsp + d] + cfg.noise * rng.normal() as f32;
            }
        }
        let dim = if m == 0 { cfg.text_dim } else { cfg.audio_dim };
        let mlp = Mlp::new(
            &mut stream(cfg.seed, 20 + m as u64),
            ds + dsp,
            cfg.hidden_dim,
            dim,
        );
        let mut noise_rng = stream(cfg.seed, 30 + m as u64);
        let mut data = vec![0f32; n * dim];
        let mut x = vec![0f32; ds + dsp];
        let mut h = vec![0f32; cfg.hidden_dim];
        for i in 0..n {
            x[..ds].copy_from_slice(&shared[i * ds..(i + 1) * ds]);
            x[ds..].copy_from_slice(&lat[i * dsp..(i + 1) * dsp]);
            let y = &mut data[i * dim..(i + 1) * dim];
            mlp.apply(&x, &mut h, y);
            if cfg.output_noise > 0.0 {
                for v in y.iter_mut() {
                    *v += cfg.output_noise * noise_rng.normal() as f32;
                }
            }
        }
        modalities.push(Modality {
            name: name.to_string(),
            dim,
            data,
        });
        specific.push(Modality {
            name: name.to_string(),
            dim: dsp,
            data: lat,
        });
        specific_cluster.push(cl);
        spec_centers.push(cen);
    }

    // Popularity: a random rank per item, Zipf weights.
    let mut rng = stream(cfg.seed, 3);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut rank = vec![0u32; n];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as u32;
    }
    let weight: Vec<f64> = rank
        .iter()
        .map(|&r| (r as f64 + 1.0).powf(-cfg.tail_exponent))
        .collect();
    let total: f64 = weight.iter().sum();
    let popularity: Vec<f32> = weight.iter().map(|w| (w / total) as f32).collect();
    let cumulative = |ids: &[usize]| -> Vec<f64> {
        let mut acc = 0.0;
        ids.iter()
            .map(|&i| {
                acc += weight[i];
                acc
            })
            .collect()
    };
    let all: Vec<usize> = (0..n).collect();
    let all_cum = cumulative(&all);
    let mut leaf_items: Vec<Vec<usize>> = vec![Vec::new(); n_leaves];
    for (i, &l) in leaf_of.iter().enumerate() {
        leaf_items[l].push(i);
    }
    let leaf_cum: Vec<Vec<f64>> = leaf_items.iter().map(|v| cumulative(v)).collect();

    // Unit latents for the affinities.
    let shared_unit: Vec<Vec<f32>> = (0..n)
        .map(|i| normalized(&shared[i * ds..(i + 1) * ds]))
        .collect();
    let spec_unit: Vec<Vec<Vec<f32>>> = specific
        .iter()
        .map(|m| (0..n).map(|i| normalized(m.row(i))).collect())
        .collect();

    // Users.
    let mut rng = stream(cfg.seed, 4);
    let mut users = Vec::with_capacity(cfg.users);
    for _ in 0..cfg.users {
        let n_fav = 1 + rng.below(cfg.favorite_leaves);
        let mut favorite_leaves = Vec::with_capacity(n_fav);
        let mut prefs = Vec::with_capacity(n_fav);
        for _ in 0..n_fav {
            let leaf = leaf_of[rng.below(n)];
            favorite_leaves.push(leaf as u32);
            prefs.push(
                (0..ds)
                    .map(|d| centers[leaf * ds + d] + cfg.noise * rng.normal() as f32)
                    .collect::<Vec<f32>>(),
            );
        }
        let mut spec_pref = Vec::new();
        let mut spec_cl = Vec::new();
        for cen in &spec_centers {
            let c = rng.below(cfg.specific_clusters);
            spec_cl.push(c as u32);
            spec_pref.push(
                (0..dsp)
                    .map(|d| cen[c * dsp + d] + cfg.noise * rng.normal() as f32)
                    .collect::<Vec<f32>>(),
            );
        }
        users.push(UserTruth {
            favorite_leaves,
            shared: prefs,
            specific: spec_pref,
            specific_cluster: spec_cl,
        });
    }

    // Interactions.
    let mut rng = stream(cfg.seed, 5);
    let mut rows = Vec::new();
    for (u, ut) in users.iter().enumerate() {
        let pref_unit: Vec<Vec<f32>> = ut.shared.iter().map(|p| normalized(p)).collect();
        let spec_pref_unit: Vec<Vec<f32>> = ut.specific.iter().map(|p| normalized(p)).collect();
        let spread = (0.5 * rng.normal()).exp();
        let count = ((cfg.interactions_per_user as f64 * spread).round() as usize).max(3);
        let mut t = cfg.start_time + rng.below(30 * 86_400) as i64;
        let mut last_click: Option<usize> = None;
        for _ in 0..count {
            let r = rng.uniform() as f32;
            let leaf = if r < cfg.p_follow && last_click.is_some() {
                last_click
            } else if r < cfg.p_follow + cfg.p_interest {
                Some(ut.favorite_leaves[rng.below(ut.favorite_leaves.len())] as usize)
            } else {
                None
            };
            let item = match leaf {
                Some(l) if !leaf_items[l].is_empty() => {
                    leaf_items[l][sample_cum(&mut rng, &leaf_cum[l])]
                }
                _ => all[sample_cum(&mut rng, &all_cum)],
            };
            let shared_aff = pref_unit
                .iter()
                .map(|p| dot(p, &shared_unit[item]))
                .fold(f32::NEG_INFINITY, f32::max);
            let spec_aff: f32 = spec_pref_unit
                .iter()
                .zip(&spec_unit)
                .map(|(p, su)| dot(p, &su[item]))
                .sum();
            let aff = shared_aff + cfg.specific_pref_weight * spec_aff;
            let p_click = 1.0 / (1.0 + (-cfg.click_scale * (aff - cfg.click_threshold)).exp());
            let click = (rng.uniform() as f32) < p_click;
            if click {
                last_click = Some(leaf_of[item]);
            }
            rows.push(Interaction {
                user: u as u32,
                item: item as u32,
                label: if click { 1.0 } else { 0.0 },
                timestamp: t,
            });
            let gap = -(1.0 - rng.uniform()).ln() * cfg.mean_gap_s;
            t += 1 + gap.min(1e12) as i64;
        }
    }

    // Tables.
    let iw = digits(n.saturating_sub(1));
    let uw = digits(cfg.users.saturating_sub(1));
    let ids: Vec<String> = (0..n).map(|i| format!("i{i:0iw$}")).collect();
    let user_ids: Vec<String> = (0..cfg.users).map(|u| format!("u{u:0uw$}")).collect();
    let cluster_path: Vec<Vec<u32>> = leaf_of.iter().map(|&l| path_of(l)).collect();
    let path_strings: Vec<String> = cluster_path
        .iter()
        .map(|p| {
            p.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    let items = ItemTable {
        ids: ids.clone(),
        fields: vec![
            ("path".to_string(), path_strings),
            (
                "popularity_rank".to_string(),
                rank.iter().map(|r| r.to_string()).collect(),
            ),
        ],
        labels: Some(cluster_path.iter().map(|p| p[0]).collect()),
        label_names: (0..levels[0]).map(|c| format!("c{c}")).collect(),
    };
    Ok(SynthData {
        config: cfg.clone(),
        embeddings: ItemEmbeddings {
            ids: ids.clone(),
            modalities,
        },
        items,
        interactions: Interactions {
            users: user_ids,
            items: ids,
            rows,
        },
        truth: GroundTruth {
            levels,
            cluster_path,
            shared: Modality {
                name: "shared".to_string(),
                dim: ds,
                data: shared,
            },
            specific,
            specific_cluster,
            popularity,
            popularity_rank: rank,
            users,
        },
    })
}

fn digits(mut x: usize) -> usize {
    let mut d = 1;
    while x >= 10 {
        x /= 10;
        d += 1;
    }
    d
}

impl SynthData {
    /// Writes the data set into `dir` (created if needed) and returns the paths written:
    /// * `ids.txt` (one item id a line), `text.npy`, `audio.npy` (f32 `[items, dim]`, row order
    ///   of `ids.txt`);
    /// * `items.csv`: `id,label,label_name,path,text_cluster,audio_cluster,popularity_rank`;
    /// * `interactions.csv`: `user,item,label,timestamp`;
    /// * ground truth: `truth.json` (config, levels, cluster paths, specific clusters,
    ///   popularity, user preferences, stats) and latents `truth_shared.npy`,
    ///   `truth_specific_text.npy`, `truth_specific_audio.npy`.
    ///
    /// Every file is written to a temporary name first and renamed into place.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        let put = |name: &str,
                   fill: &dyn Fn(&mut BufWriter<File>) -> std::io::Result<()>|
         -> Result<PathBuf> {
            let p = dir.join(name);
            write_atomic(&p, fill)?;
            Ok(p)
        };
        let put_npy = |name: &str, m: &Modality| -> Result<PathBuf> {
            let p = dir.join(name);
            write_npy_f32(&p, &[m.rows(), m.dim], &m.data)?;
            Ok(p)
        };
        let emb = &self.embeddings;
        written.push(put("ids.txt", &|w| {
            for id in &emb.ids {
                writeln!(w, "{id}")?;
            }
            Ok(())
        })?);
        for m in &emb.modalities {
            written.push(put_npy(&format!("{}.npy", m.name), m)?);
        }
        let t = &self.truth;
        written.push(put("items.csv", &|w| {
            writeln!(
                w,
                "id,label,label_name,path,text_cluster,audio_cluster,popularity_rank"
            )?;
            let labels = self.items.labels.as_deref().unwrap_or(&[]);
            for (i, id) in self.items.ids.iter().enumerate() {
                let lab = labels.get(i).copied().unwrap_or(0);
                let path: Vec<String> = t.cluster_path[i].iter().map(|d| d.to_string()).collect();
                writeln!(
                    w,
                    "{id},{lab},{},{},{},{},{}",
                    self.items.label_names[lab as usize],
                    path.join("."),
                    t.specific_cluster[0][i],
                    t.specific_cluster[1][i],
                    t.popularity_rank[i]
                )?;
            }
            Ok(())
        })?);
        let inter = &self.interactions;
        written.push(put("interactions.csv", &|w| {
            writeln!(w, "user,item,label,timestamp")?;
            for r in &inter.rows {
                writeln!(
                    w,
                    "{},{},{},{}",
                    inter.users[r.user as usize],
                    inter.items[r.item as usize],
                    r.label,
                    r.timestamp
                )?;
            }
            Ok(())
        })?);
        written.push(put_npy("truth_shared.npy", &t.shared)?);
        for m in &t.specific {
            written.push(put_npy(&format!("truth_specific_{}.npy", m.name), m)?);
        }
        let positives = inter.rows.iter().filter(|r| r.label > 0.0).count();
        let truth = serde_json::json!({
            "config": self.config,
            "levels": t.levels,
            "cluster_path": t.cluster_path,
            "specific_cluster": {
                "text": t.specific_cluster[0],
                "audio": t.specific_cluster[1],
            },
            "popularity": t.popularity,
            "popularity_rank": t.popularity_rank,
            "users": t.users.iter().enumerate().map(|(u, ut)| serde_json::json!({
                "id": inter.users[u],
                "favorite_leaves": ut.favorite_leaves,
                "shared": ut.shared,
                "specific_cluster": { "text": ut.specific_cluster[0], "audio": ut.specific_cluster[1] },
                "specific": { "text": ut.specific[0], "audio": ut.specific[1] },
            })).collect::<Vec<_>>(),
            "latents": {
                "shared": "truth_shared.npy",
                "specific": { "text": "truth_specific_text.npy", "audio": "truth_specific_audio.npy" },
            },
            "stats": {
                "items": self.embeddings.len(),
                "users": inter.users.len(),
                "interactions": inter.rows.len(),
                "positives": positives,
            },
        });
        written.push(put("truth.json", &|w| {
            serde_json::to_writer(&mut *w, &truth)?;
            writeln!(w)
        })?);
        Ok(written)
    }
}

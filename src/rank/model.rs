//! The ranker: DIN over item IDs, DIN + one family's semantic IDs, and MCCA, as one model with
//! switches ([`RankerConfig::model`], [`RankerConfig::ablation`]).
//!
//! **Embeddings.** `id.weight` `[items, d]`; per family `z` and level `j` a table
//! `sid.<z>.<j>.weight` `[k_j, d]`, randomly initialised (never from the tokenizer's
//! centroids). An item's embedding of family `z` is the sum over its levels. Indices are
//! looked up on the CPU (a batch's codes) and each table is read by one gather over the
//! batch's `[B, H + 1]` positions (the history, then the target), whose backward is a
//! deterministic scatter-add over segments built on the CPU with the indices.
//!
//! **Branches** (each an [`ActivationUnit`] pooling a history against a query; `e^r` the ID
//! embedding, `e^z` family `z`'s, `o` the joint family, `t` the target):
//!
//! | model | histories (query) | prediction MLP input |
//! |---|---|---|
//! | `din` | `e^r` (`e^r_t`) | `[h, e^r_t]` |
//! | `din-sid` | `e^r + e^s` (same of the target) | `[h, e^r_t + e^s_t]` |
//! | `mcca` | each modality `m`: `e^m` (`e^o_t`); `e^o` (`e^o_t`); `e^r` (`e^r_t`) | `[h_m…, h_o, h_r, e^r_t, e^o_t]` |
//! | `mcca` `wo-msc` | `e^o` (`e^o_t`); `e^r` (`e^r_t`) | `[h_o, h_r, e^r_t, e^o_t]` |
//! | `mcca` `wo-mjc` | each `m`: `e^m` (`e^m_t`); `e^r` (`e^r_t`) | `[h_m…, h_r, e^r_t, e^m_t…]` |
//!
//! The prediction MLP (`mlp.*`) maps that to one logit; the loss is binary cross-entropy.

use super::attention::{ActivationUnit, HistoryContext};
use super::codes::{CodeTables, FamilyCodes};
use super::config::{Ablation, ModelKind, RankerConfig};
use super::protocol::Batch;
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::movement::Segments;
use crate::nn::{Init, Mlp, MlpConfig, ParamStore};
use crate::tensor::Tensor;
use crate::Gpu;

/// Family names semid gives a modal-joint family (PSRQ/RQ runs: `joint`; MMQ: `mmq`).
pub const JOINT_NAMES: [&str; 2] = ["joint", "mmq"];

/// What an item embedding is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The ID embedding.
    Id,
    /// Family `i` of [`Ranker::families`] (sum over levels).
    Family(usize),
    /// The ID embedding plus family `i`.
    IdFamily(usize),
}

/// One attention branch: a history of `hist`, queried by the target's `query`.
#[derive(Clone, Debug)]
struct Branch {
    hist: Source,
    query: Source,
    unit: usize,
}

/// A ranker's parameters and layout.
#[derive(Debug)]
pub struct Ranker {
    /// The settings it was built with (families resolved).
    pub config: RankerConfig,
    /// The parameters.
    pub store: ParamStore,
    /// Items of the log it embeds.
    pub n_items: usize,
    /// History width `H`.
    pub history: usize,
    /// The semantic-ID families it embeds, in [`RankerConfig::families`] order.
    pub families: Vec<FamilyCodes>,
    units: Vec<ActivationUnit>,
    branches: Vec<Branch>,
    targets: Vec<Source>,
    mlp: Mlp,
}

/// A batch on the GPU: one index tensor (with its segments) per embedding table, the history
/// context and the labels.
#[derive(Debug)]
pub struct BatchInputs {
    /// Samples.
    pub batch: usize,
    /// Per table ([`Ranker::table_names`] order): `[B·(H+1)]` U32 and its segments.
    idx: Vec<(Tensor, Segments)>,
    /// The item at each of the `B·(H+1)` positions (each row's history, then its target).
    pub items: Vec<u32>,
    /// Masks and broadcast indices.
    pub ctx: HistoryContext,
    /// `[B, 1]` 0/1.
    pub labels: Tensor,
}

/// Which families play which part, from the settings and the code tables.
fn resolve_families(cfg: &RankerConfig, codes: Option<&CodeTables>) -> Result<Vec<FamilyCodes>> {
    let need = |what: &str| {
        Error::Invalid(format!(
            "model `{}` needs {what}: pass --codes RUN (a finished tokenizer run)",
            cfg.label()
        ))
    };
    if cfg.model == ModelKind::Din {
        return Ok(Vec::new());
    }
    let tables = codes.ok_or_else(|| need("semantic IDs"))?;
    let pick = |names: &[String]| -> Result<Vec<FamilyCodes>> {
        names.iter().map(|n| tables.family(n).cloned()).collect()
    };
    if !cfg.families.is_empty() {
        let fams = pick(&cfg.families)?;
        let ok = match (cfg.model, cfg.ablation) {
            (ModelKind::DinSid, _) => fams.len() == 1,
            (ModelKind::Mcca, Ablation::WoMsc) => !fams.is_empty(),
            (ModelKind::Mcca, Ablation::WoMjc) => !fams.is_empty(),
            (ModelKind::Mcca, Ablation::Full) => fams.len() >= 2,
            (ModelKind::Din, _) => true,
        };
        if !ok {
            return Err(Error::Invalid(format!(
                "model `{}` cannot use the families [{}]: din-sid takes one; mcca takes the \
                 modality families then the joint one (at least two), wo-msc the joint one, \
                 wo-mjc the modality families",
                cfg.label(),
                cfg.families.join(", ")
            )));
        }
        // wo-msc reads only the joint family: the last one named.
        return Ok(match cfg.ablation {
            Ablation::WoMsc => vec![fams.last().expect("checked non-empty").clone()],
            _ => fams,
        });
    }
    let all: Vec<&FamilyCodes> = tables.families.iter().collect();
    let is_joint = |f: &FamilyCodes| JOINT_NAMES.contains(&f.family.to_ascii_lowercase().as_str());
    let names = || {
        all.iter()
            .map(|f| f.family.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match cfg.model {
        ModelKind::DinSid => match all.as_slice() {
            [one] => Ok(vec![(*one).clone()]),
            _ => Err(Error::Invalid(format!(
                "din-sid embeds one family; the codes hold [{}]: name one with --families",
                names()
            ))),
        },
        _ => {
            let joint: Vec<FamilyCodes> = all
                .iter()
                .filter(|f| is_joint(f))
                .map(|f| (*f).clone())
                .collect();
            let modal: Vec<FamilyCodes> = all
                .iter()
                .filter(|f| !is_joint(f))
                .map(|f| (*f).clone())
                .collect();
            let one_joint = || match joint.as_slice() {
                [j] => Ok(j.clone()),
                _ => Err(Error::Invalid(format!(
                    "mcca needs one joint family (named `joint` or `mmq`); the codes hold [{}]: \
                     name the families with --families",
                    names()
                ))),
            };
            match cfg.ablation {
                Ablation::WoMsc => Ok(vec![one_joint()?]),
                Ablation::WoMjc if modal.is_empty() => Err(Error::Invalid(format!(
                    "mcca wo-mjc needs modality families; the codes hold [{}]",
                    names()
                ))),
                Ablation::WoMjc => Ok(modal),
                Ablation::Full if modal.is_empty() => Err(Error::Invalid(format!(
                    "mcca needs modality families besides the joint one; the codes hold [{}]",
                    names()
                ))),
                Ablation::Full => {
                    let mut f = modal;
                    f.push(one_joint()?);
                    Ok(f)
                }
            }
        }
    }
}

impl Ranker {
    /// Builds a ranker over `n_items` items with histories of `history`, initialised from
    /// `cfg.seed`. `codes` (aligned to the same items) is needed for every model but `din`.
    pub fn new(
        gpu: &Gpu,
        cfg: &RankerConfig,
        n_items: usize,
        history: usize,
        codes: Option<&CodeTables>,
    ) -> Result<Ranker> {
        cfg.check()?;
        if n_items == 0 || history == 0 {
            return Err(Error::Invalid(format!(
                "a ranker needs items and a history width, not {n_items} items and H = {history}"
            )));
        }
        if let Some(c) = codes {
            if c.n_items != n_items {
                return Err(Error::Invalid(format!(
                    "the code tables cover {} items, the log {n_items}",
                    c.n_items
                )));
            }
        }
        let families = resolve_families(cfg, codes)?;
        let mut config = cfg.clone();
        config.families = families.iter().map(|f| f.family.clone()).collect();
        let d = cfg.dim;
        let mut store = ParamStore::new(gpu, cfg.seed);
        let init = Init::Uniform {
            lo: -cfg.embedding_init,
            hi: cfg.embedding_init,
        };
        store.init("id.weight", &[n_items, d], init, d, n_items)?;
        for f in &families {
            for (j, &k) in f.k.iter().enumerate() {
                store.init(&format!("sid.{}.{j}.weight", f.family), &[k, d], init, d, k)?;
            }
        }
        let act = cfg.activation.activation();
        let mut units = Vec::new();
        let mut unit = |store: &mut ParamStore, name: &str| -> Result<usize> {
            units.push(ActivationUnit::new(
                store,
                name,
                d,
                &cfg.attention_hidden,
                act,
                cfg.weights,
            )?);
            Ok(units.len() - 1)
        };
        let (mut branches, targets);
        match cfg.model {
            ModelKind::Din => {
                let u = unit(&mut store, "att.id")?;
                branches = vec![Branch {
                    hist: Source::Id,
                    query: Source::Id,
                    unit: u,
                }];
                targets = vec![Source::Id];
            }
            ModelKind::DinSid => {
                let u = unit(&mut store, "att.id")?;
                let s = Source::IdFamily(0);
                branches = vec![Branch {
                    hist: s,
                    query: s,
                    unit: u,
                }];
                targets = vec![s];
            }
            ModelKind::Mcca => {
                branches = Vec::new();
                let shared = if cfg.shared_attention {
                    Some(unit(&mut store, "att.sid")?)
                } else {
                    None
                };
                let joint = (cfg.ablation != Ablation::WoMjc).then(|| families.len() - 1);
                let modal = match cfg.ablation {
                    Ablation::Full => families.len() - 1,
                    Ablation::WoMsc => 0,
                    Ablation::WoMjc => families.len(),
                };
                for (m, f) in families.iter().enumerate().take(modal) {
                    let u = match shared {
                        Some(u) => u,
                        None => unit(&mut store, &format!("att.{}", f.family))?,
                    };
                    let query = Source::Family(joint.unwrap_or(m));
                    branches.push(Branch {
                        hist: Source::Family(m),
                        query,
                        unit: u,
                    });
                }
                if let Some(o) = joint {
                    let u = match shared {
                        Some(u) => u,
                        None => unit(&mut store, &format!("att.{}", families[o].family))?,
                    };
                    branches.push(Branch {
                        hist: Source::Family(o),
                        query: Source::Family(o),
                        unit: u,
                    });
                }
                let u = unit(&mut store, "att.id")?;
                branches.push(Branch {
                    hist: Source::Id,
                    query: Source::Id,
                    unit: u,
                });
                targets = match joint {
                    Some(o) => vec![Source::Id, Source::Family(o)],
                    None => std::iter::once(Source::Id)
                        .chain((0..modal).map(Source::Family))
                        .collect(),
                };
            }
        }
        let mut widths = vec![d * (branches.len() + targets.len())];
        widths.extend_from_slice(&cfg.mlp_hidden);
        widths.push(1);
        let mlp = Mlp::new(&mut store, "mlp", &MlpConfig::new(&widths).act(act))?;
        Ok(Ranker {
            config,
            store,
            n_items,
            history,
            families,
            units,
            branches,
            targets,
            mlp,
        })
    }

    /// The embedding tables, in the order of a batch's index tensors.
    pub fn table_names(&self) -> Vec<String> {
        let mut v = vec!["id.weight".to_string()];
        for f in &self.families {
            for j in 0..f.levels {
                v.push(format!("sid.{}.{j}.weight", f.family));
            }
        }
        v
    }

    /// Uploads `batch` (its items must be the ranker's): per table the `[B, H + 1]` indices
    /// (history, then target) with their segments, the history masks and the labels.
    pub fn inputs(&self, batch: &Batch) -> Result<BatchInputs> {
        let gpu = self.store.gpu();
        let (b, h) = (batch.items.len(), batch.history);
        if h != self.history {
            return Err(Error::shape(
                "ranker inputs",
                format!(
                    "a batch of history {h} for a ranker of history {}",
                    self.history
                ),
            ));
        }
        let mut items = Vec::with_capacity(b * (h + 1));
        for r in 0..b {
            items.extend_from_slice(&batch.hist[r * h..(r + 1) * h]);
            items.push(batch.items[r]);
        }
        if let Some(&bad) = items.iter().find(|&&i| i as usize >= self.n_items) {
            return Err(Error::Invalid(format!(
                "ranker inputs: item {bad} outside the ranker's {} items",
                self.n_items
            )));
        }
        let upload = |idx: &[u32], n: usize| -> Result<(Tensor, Segments)> {
            Ok((
                Tensor::from_u32(gpu, idx, &[idx.len()])?,
                Segments::from_slice(gpu, idx, n)?,
            ))
        };
        let mut idx = vec![upload(&items, self.n_items)?];
        for f in &self.families {
            for (j, &k) in f.k.iter().enumerate() {
                let codes: Vec<u32> = items.iter().map(|&i| f.item(i as usize)[j]).collect();
                idx.push(upload(&codes, k)?);
            }
        }
        Ok(BatchInputs {
            batch: b,
            idx,
            items,
            ctx: HistoryContext::new(gpu, h, &batch.hist_len)?,
            labels: Tensor::from_slice(gpu, &batch.labels, &[b, 1])?,
        })
    }

    /// The logits `[B, 1]` of a batch, recorded into `g`.
    pub fn logits(&self, g: &Graph, inp: &BatchInputs) -> Result<Var> {
        self.logits_with(g, inp, &[])
    }

    /// [`Ranker::logits`] with some families' item embeddings given instead of looked up:
    /// `(i, e)` replaces family `i` ([`Ranker::families`] order) by `e` `[B·(H+1), d]`, the
    /// positions in [`BatchInputs::items`] order (behaviour-aware fine-tuning passes the soft
    /// index of the tokenizer being tuned).
    pub fn logits_with(&self, g: &Graph, inp: &BatchInputs, given: &[(usize, Var)]) -> Result<Var> {
        let (b, h, d) = (inp.batch, self.history, self.config.dim);
        let names = self.table_names();
        let gather = |t: usize| -> Result<Var> {
            let w = g.param(&self.store, &names[t])?;
            g.gather_rows_with(&w, &inp.idx[t].0, &inp.idx[t].1)
        };
        let mut first_table = vec![1usize];
        for f in &self.families {
            first_table.push(first_table.last().expect("non-empty") + f.levels);
        }
        let want = [inp.items.len(), d];
        if let Some((i, e)) = given
            .iter()
            .find(|(i, e)| *i >= self.families.len() || e.shape() != want)
        {
            return Err(Error::shape(
                "ranker logits",
                format!(
                    "family {i} given as {:?}; the ranker has {} families and needs {want:?}",
                    e.shape(),
                    self.families.len()
                ),
            ));
        }
        let family = |i: usize| -> Result<Var> {
            if let Some((_, e)) = given.iter().find(|(j, _)| *j == i) {
                return Ok(e.clone());
            }
            let mut acc = gather(first_table[i])?;
            for t in first_table[i] + 1..first_table[i + 1] {
                acc = g.add(&acc, &gather(t)?)?;
            }
            Ok(acc)
        };
        // Each source embedded once, split into history [B·H, d] and target [B, d].
        let mut cache: Vec<(Source, Var, Var)> = Vec::new();
        let mut embed = |s: Source| -> Result<(Var, Var)> {
            if let Some((_, hv, tv)) = cache.iter().find(|(c, _, _)| *c == s) {
                return Ok((hv.clone(), tv.clone()));
            }
            let all = match s {
                Source::Id => gather(0)?,
                Source::Family(i) => family(i)?,
                Source::IdFamily(i) => g.add(&gather(0)?, &family(i)?)?,
            };
            let wide = g.reshape(&all, &[b, (h + 1) * d])?;
            let hist = g.reshape(&g.slice_cols(&wide, 0, h * d)?, &[b * h, d])?;
            let tgt = g.slice_cols(&wide, h * d, (h + 1) * d)?;
            cache.push((s, hist.clone(), tgt.clone()));
            Ok((hist, tgt))
        };
        let mut parts = Vec::new();
        for br in &self.branches {
            let (hist, _) = embed(br.hist)?;
            let (_, q) = embed(br.query)?;
            parts.push(self.units[br.unit].pool(g, &self.store, &inp.ctx, &hist, &q)?);
        }
        for &t in &self.targets {
            parts.push(embed(t)?.1);
        }
        let refs: Vec<&Var> = parts.iter().collect();
        let x = g.concat_cols(&refs)?;
        self.mlp.forward(g, &self.store, &x)
    }

    /// The mean binary cross-entropy of a batch, recorded into `g` (shape `[1]`).
    pub fn loss(&self, g: &Graph, inp: &BatchInputs) -> Result<Var> {
        self.loss_with(g, inp, &[])
    }

    /// [`Ranker::loss`] over [`Ranker::logits_with`].
    pub fn loss_with(&self, g: &Graph, inp: &BatchInputs, given: &[(usize, Var)]) -> Result<Var> {
        let logits = self.logits_with(g, inp, given)?;
        g.bce_with_logits(&logits, &g.input(&inp.labels))
    }

    /// Replaces family `i`'s codes (e.g. after fine-tuning moved the tokenizer): `table` is
    /// `[items, levels]` in the ranker's item order, each code below its level's size.
    pub fn set_codes(&mut self, i: usize, table: Vec<u32>) -> Result<()> {
        let n = self.n_items;
        let f = self
            .families
            .get_mut(i)
            .ok_or_else(|| Error::Invalid(format!("the ranker has no family {i}")))?;
        if table.len() != n * f.levels {
            return Err(Error::shape(
                "ranker codes",
                format!("{} codes for {n} items of {} levels", table.len(), f.levels),
            ));
        }
        for (j, c) in table.iter().enumerate() {
            if *c as usize >= f.k[j % f.levels] {
                return Err(Error::Invalid(format!(
                    "ranker codes: item {} level {} has code {c}, its table holds {}",
                    j / f.levels,
                    j % f.levels,
                    f.k[j % f.levels]
                )));
            }
        }
        f.table = table;
        Ok(())
    }
}

//! One fine-tuning step: the tokenizer's forward pass over the batch's distinct items, the soft
//! index of each of its tokens into the ranker's table for that token, the ranker's loss over
//! those embeddings, and both models updated from one backward pass, all in one submission.

use super::config::FinetuneConfig;
use super::tokenizer::TunedTokenizer;
use crate::autograd::{Graph, Var};
use crate::error::{Error, Result};
use crate::io::NamedTensor;
use crate::kernels::movement::{gather_rows, Segments};
use crate::optim::{Adam, Optimizer, OptimizerState};
use crate::quant::any::AnyTokenizer;
use crate::quant::codes::Codes;
use crate::rank::model::{BatchInputs, Ranker};
use crate::rank::protocol::{RankProtocol, SplitName};
use crate::rank::train::{StepRule, EXTRA_PREFIX};
use crate::tensor::Tensor;
use crate::Gpu;

const TOK: &str = "ft.tok.";
const OPT: &str = "ft.opt.";

/// The inputs of the tokenizer being tuned, one row per item of its run, and where each of
/// the log's items is among them.
#[derive(Clone, Debug)]
pub struct TunedInputs {
    /// `items × dim` values, the rows in the run's item order (as the run was fitted on them).
    pub data: Vec<f32>,
    /// Row width.
    pub dim: usize,
    /// For each item of the log (the ranker's item order), its row in `data`.
    pub rows: Vec<u32>,
}

impl TunedInputs {
    /// `codes` (one row per item of the run) picked out for the log's items, in the ranker's
    /// item order: `[items, levels]` flat.
    pub fn log_table(&self, codes: &Codes) -> Vec<u32> {
        self.rows
            .iter()
            .flat_map(|&r| codes.item(r as usize).to_vec())
            .collect()
    }
}

/// Behaviour-aware fine-tuning as a [`StepRule`]: trains the ranker and the tokenizer of one
/// of its families together ([`super`] gives the equations).
#[derive(Debug)]
pub struct FineTuner {
    /// The tokenizer being tuned.
    pub tok: TunedTokenizer,
    cfg: FinetuneConfig,
    family: usize,
    epochs: usize,
    input: TunedInputs,
    x: Tensor,
    opt: Adam,
}

/// Distinct values of `items` in ascending order, and each item's position among them.
fn distinct(items: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut u = items.to_vec();
    u.sort_unstable();
    u.dedup();
    let pos = items
        .iter()
        .map(|i| u.binary_search(i).expect("present") as u32)
        .collect();
    (u, pos)
}

impl FineTuner {
    /// Tunes `tok` (a fitted MMQ or RQ-VAE over `input`) as family `family` of the ranker it
    /// will train with. `epochs` is the first stage's epoch count, kept in the written model.
    pub fn new(
        gpu: &Gpu,
        tok: &AnyTokenizer,
        cfg: &FinetuneConfig,
        family: usize,
        epochs: usize,
        input: TunedInputs,
    ) -> Result<FineTuner> {
        cfg.check()?;
        let n = input.data.len() / input.dim.max(1);
        if input.dim == 0 || n * input.dim != input.data.len() {
            return Err(Error::shape(
                "fine-tuning",
                format!(
                    "{} values are no rows of width {}",
                    input.data.len(),
                    input.dim
                ),
            ));
        }
        if let Some(r) = input.rows.iter().find(|&&r| r as usize >= n) {
            return Err(Error::Invalid(format!(
                "fine-tuning: row {r} of the tokenizer's {n} items"
            )));
        }
        Ok(FineTuner {
            tok: TunedTokenizer::new(gpu, tok)?,
            cfg: cfg.clone(),
            family,
            epochs,
            x: Tensor::from_slice(gpu, &input.data, &[n, input.dim])?,
            input,
            opt: Adam::new(cfg.lr),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// The index of the tuned family among the ranker's.
    pub fn family(&self) -> usize {
        self.family
    }

    /// The inputs it encodes.
    pub fn input(&self) -> &TunedInputs {
        &self.input
    }

    /// The codes of every item of the run under the current parameters.
    pub fn codes(&self) -> Result<Codes> {
        self.tok.encode(self.x.gpu(), &self.input.data)
    }

    /// The codes of the log's items (the ranker's item order), `[items, levels]` flat.
    pub fn log_table(&self, codes: &Codes) -> Vec<u32> {
        self.input.log_table(codes)
    }

    /// The tuned tokenizer as a finished model.
    pub fn model(&self) -> Result<AnyTokenizer> {
        self.tok.model(&self.input.data, self.epochs)
    }

    /// Records the fine-tuning loss of a batch into `g`: `rank_weight · L_rank + recon_weight
    /// · L_recon + aux_weight · L_aux`, the tuned family's embeddings given by the soft index
    /// of the batch's distinct items. Returns the loss `[1]` and the ranking loss `[1]`.
    pub fn loss(&self, g: &Graph, ranker: &Ranker, inp: &BatchInputs) -> Result<(Var, Var)> {
        let gpu = self.x.gpu();
        let fam = ranker
            .families
            .get(self.family)
            .ok_or_else(|| Error::Invalid(format!("the ranker has no family {}", self.family)))?;
        let (uniq, pos) = distinct(&inp.items);
        let rows: Vec<u32> =
            uniq.iter()
                .map(|&i| {
                    self.input.rows.get(i as usize).copied().ok_or_else(|| {
                        Error::Invalid(format!("fine-tuning: item {i} outside the log"))
                    })
                })
                .collect::<Result<_>>()?;
        let xu = gather_rows(&self.x, &Tensor::from_u32(gpu, &rows, &[rows.len()])?)?;
        let sf = self.tok.soft_forward(g, &xu, 1.0 / self.cfg.tau)?;
        if sf.soft.len() != fam.levels {
            return Err(Error::Invalid(format!(
                "fine-tuning: the tokenizer gives {} tokens, the ranker's family `{}` has {} levels",
                sf.soft.len(),
                fam.family,
                fam.levels
            )));
        }
        let pos_t = Tensor::from_u32(gpu, &pos, &[pos.len()])?;
        let seg = Segments::from_slice(gpu, &pos, uniq.len())?;
        let mut emb: Option<Var> = None;
        for (l, (soft, hard)) in sf.soft.iter().zip(&sf.hard).enumerate() {
            let table = g.param(&ranker.store, &format!("sid.{}.{l}.weight", fam.family))?;
            let per_item = g.soft_index(soft, hard, &table)?;
            let e = g.gather_rows_with(&per_item, &pos_t, &seg)?;
            emb = Some(match emb {
                None => e,
                Some(s) => g.add(&s, &e)?,
            });
        }
        let emb = emb.ok_or_else(|| Error::Invalid("fine-tuning: no tokens".into()))?;
        let rank = ranker.loss_with(g, inp, &[(self.family, emb)])?;
        let mut loss = g.scale(&rank, self.cfg.rank_weight)?;
        loss = g.add(&loss, &g.scale(&sf.recon, self.cfg.recon_weight)?)?;
        if let Some(a) = &sf.aux {
            loss = g.add(&loss, &g.scale(a, self.cfg.aux_weight)?)?;
        }
        Ok((loss, rank))
    }
}

impl StepRule for FineTuner {
    fn step(
        &mut self,
        ranker: &mut Ranker,
        opt: &mut dyn Optimizer,
        p: &RankProtocol,
        idx: &[usize],
    ) -> Result<Tensor> {
        let inp = ranker.inputs(&p.batch(SplitName::Train, idx)?)?;
        let g = Graph::new(ranker.store.gpu());
        let (loss, _) = self.loss(&g, ranker, &inp)?;
        let grads = g.backward(&loss)?;
        opt.step(&mut ranker.store, &grads)?;
        self.opt.step(self.tok.store_mut(), &grads)?;
        ranker.store.gpu().flush()?;
        Ok(loss.value().clone())
    }

    fn sync_codes(&mut self, ranker: &mut Ranker) -> Result<()> {
        let codes = self.codes()?;
        ranker.set_codes(self.family, self.log_table(&codes))
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut st = OptimizerState {
            tensors: self.best_params()?,
            steps: Default::default(),
        };
        let o = self.opt.export_state()?;
        st.tensors
            .extend(o.tensors.into_iter().map(|t| NamedTensor {
                name: format!("{OPT}{}", t.name),
                ..t
            }));
        st.steps = o.steps;
        Ok(st)
    }

    fn best_params(&self) -> Result<Vec<NamedTensor>> {
        Ok(self
            .tok
            .store()
            .to_named()?
            .into_iter()
            .map(|t| NamedTensor {
                name: format!("{TOK}{}", t.name),
                ..t
            })
            .collect())
    }

    fn restore(&mut self, _ranker: &mut Ranker, state: &OptimizerState) -> Result<()> {
        let mut opt = OptimizerState {
            tensors: Vec::new(),
            steps: state.steps.clone(),
        };
        for t in &state.tensors {
            if let Some(n) = t.name.strip_prefix(TOK) {
                self.tok.store_mut().set(n, &t.data)?;
            } else if let Some(n) = t.name.strip_prefix(OPT) {
                opt.tensors.push(NamedTensor {
                    name: n.into(),
                    ..t.clone()
                });
            } else {
                return Err(Error::Invalid(format!(
                    "fine-tuning state: unexpected tensor `{}` (names begin with {EXTRA_PREFIX})",
                    t.name
                )));
            }
        }
        if !opt.tensors.is_empty() || !opt.steps.is_empty() {
            self.opt.import_state(self.tok.store(), &opt)?;
        }
        Ok(())
    }
}

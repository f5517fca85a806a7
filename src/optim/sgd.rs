//! Stochastic gradient descent.

use super::{named, restore, updates, Optimizer, OptimizerState};
use crate::autograd::Grads;
use crate::error::Result;
use crate::kernels::optim::{sgd_step, sum_of_squares, Clip, SgdHyper};
use crate::nn::ParamStore;
use crate::tensor::Tensor;
use std::collections::HashMap;

/// SGD with optional momentum (Nesterov or not), dampening, L2 weight decay and clipping by
/// global norm, with PyTorch's `torch.optim.SGD` semantics (the momentum buffer starts as the
/// first gradient).
#[derive(Debug)]
pub struct Sgd {
    /// Hyper-parameters.
    pub hyper: SgdHyper,
    /// Clip the global gradient norm to this value first.
    pub clip_norm: Option<f32>,
    bufs: HashMap<String, Tensor>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: f32) -> Sgd {
        Sgd {
            hyper: SgdHyper {
                lr,
                momentum: 0.0,
                dampening: 0.0,
                weight_decay: 0.0,
                nesterov: false,
            },
            clip_norm: None,
            bufs: HashMap::new(),
        }
    }
    /// Sets the momentum factor.
    pub fn momentum(mut self, m: f32) -> Self {
        self.hyper.momentum = m;
        self
    }
    /// Sets the dampening.
    pub fn dampening(mut self, d: f32) -> Self {
        self.hyper.dampening = d;
        self
    }
    /// Uses Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.hyper.nesterov = on;
        self
    }
    /// Sets the L2 weight decay.
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.hyper.weight_decay = wd;
        self
    }
    /// Clips the global gradient norm to `max_norm` before each step.
    pub fn clip_grad_norm(mut self, max_norm: f32) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }
    /// The momentum buffer of parameter `name`, once it exists.
    pub fn momentum_buffer(&self, name: &str) -> Option<&Tensor> {
        self.bufs.get(name)
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, store: &mut ParamStore, grads: &Grads) -> Result<()> {
        let ups = updates(store, grads)?;
        if ups.is_empty() {
            return Ok(());
        }
        let sum_sq = match self.clip_norm {
            Some(_) => Some(sum_of_squares(
                &ups.iter().map(|(_, g)| *g).collect::<Vec<_>>(),
            )?),
            None => None,
        };
        let clip = match (&sum_sq, self.clip_norm) {
            (Some(s), Some(max_norm)) => Some(Clip {
                sum_sq: s,
                max_norm,
            }),
            _ => None,
        };
        let momentum = self.hyper.momentum != 0.0;
        for (p, g) in ups {
            let (buf, first) = if momentum {
                match self.bufs.get(&p.name) {
                    Some(b) => (Some(b.clone()), false),
                    None => {
                        let b = Tensor::empty(store.gpu(), p.value.shape())?;
                        self.bufs.insert(p.name.clone(), b.clone());
                        (Some(b), true)
                    }
                }
            } else {
                (None, false)
            };
            sgd_step(&p.value, g, buf.as_ref(), first, &self.hyper, clip)?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.hyper.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.hyper.lr = lr;
    }

    fn export_state(&self) -> Result<OptimizerState> {
        let mut out = OptimizerState::default();
        let mut names: Vec<&String> = self.bufs.keys().collect();
        names.sort();
        for name in names {
            out.tensors
                .push(named(format!("momentum.{name}"), &self.bufs[name])?);
            out.steps.insert(name.clone(), 0);
        }
        Ok(out)
    }
    fn import_state(&mut self, store: &ParamStore, state: &OptimizerState) -> Result<()> {
        self.bufs.clear();
        for name in state.steps.keys() {
            let p = store.param(name).ok_or_else(|| {
                crate::error::Error::Invalid(format!(
                    "optimizer state: no parameter `{name}` in the store"
                ))
            })?;
            let b = restore(store, state, &format!("momentum.{name}"), p)?;
            self.bufs.insert(name.clone(), b);
        }
        Ok(())
    }
}

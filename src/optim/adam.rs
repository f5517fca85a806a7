//! Adam and AdamW.

use super::{named, restore, updates, Optimizer, OptimizerState};
use crate::autograd::Grads;
use crate::error::Result;
use crate::kernels::optim::{adam_step, sum_of_squares, AdamHyper, Clip};
use crate::nn::ParamStore;
use crate::tensor::Tensor;
use std::collections::HashMap;

#[derive(Debug)]
struct State {
    m: Tensor,
    v: Tensor,
    step: u64,
}

/// Adam (L2 weight decay added to the gradient) or AdamW (decoupled weight decay), with bias
/// correction and optional clipping by global norm; PyTorch's semantics. Each parameter keeps
/// its own step count.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay (0.9).
    pub beta1: f32,
    /// Second-moment decay (0.999).
    pub beta2: f32,
    /// Denominator epsilon (1e-8).
    pub eps: f32,
    /// Weight decay (0 for Adam, 0.01 for [`Adam::adamw`]'s default in PyTorch).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// Clip the global gradient norm to this value first.
    pub clip_norm: Option<f32>,
    state: HashMap<String, State>,
}

impl Adam {
    /// Adam with learning rate `lr` and PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, no
    /// weight decay).
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            clip_norm: None,
            state: HashMap::new(),
        }
    }
    /// AdamW with learning rate `lr` and decoupled weight decay `weight_decay`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Adam {
        Adam {
            weight_decay,
            decoupled: true,
            ..Adam::new(lr)
        }
    }
    /// Sets the moment decays.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }
    /// Sets the denominator epsilon.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }
    /// Clips the global gradient norm to `max_norm` before each step.
    pub fn clip_grad_norm(mut self, max_norm: f32) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }
    /// The moments `(m, v)` and step count of parameter `name`, once it has been updated.
    pub fn state(&self, name: &str) -> Option<(&Tensor, &Tensor, u64)> {
        self.state.get(name).map(|s| (&s.m, &s.v, s.step))
    }
}

impl Optimizer for Adam {
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
        for (p, g) in ups {
            if !self.state.contains_key(&p.name) {
                let gpu = store.gpu();
                self.state.insert(
                    p.name.clone(),
                    State {
                        m: Tensor::zeros(gpu, p.value.shape())?,
                        v: Tensor::zeros(gpu, p.value.shape())?,
                        step: 0,
                    },
                );
            }
            let st = self
                .state
                .get_mut(&p.name)
                .expect("state was just inserted");
            st.step += 1;
            let h = AdamHyper {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                decoupled: self.decoupled,
                step: st.step,
            };
            adam_step(&p.value, g, &st.m, &st.v, &h, clip)?;
        }
        Ok(())
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn export_state(&self) -> Result<OptimizerState> {
        let mut out = OptimizerState::default();
        let mut names: Vec<&String> = self.state.keys().collect();
        names.sort();
        for name in names {
            let st = &self.state[name];
            out.tensors.push(named(format!("m.{name}"), &st.m)?);
            out.tensors.push(named(format!("v.{name}"), &st.v)?);
            out.steps.insert(name.clone(), st.step);
        }
        Ok(out)
    }
    fn import_state(&mut self, store: &ParamStore, state: &OptimizerState) -> Result<()> {
        self.state.clear();
        for (name, &step) in &state.steps {
            let p = store.param(name).ok_or_else(|| {
                crate::error::Error::Invalid(format!(
                    "optimizer state: no parameter `{name}` in the store"
                ))
            })?;
            let m = restore(store, state, &format!("m.{name}"), p)?;
            let v = restore(store, state, &format!("v.{name}"), p)?;
            self.state.insert(name.clone(), State { m, v, step });
        }
        Ok(())
    }
}

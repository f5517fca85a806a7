//! The tape: [`Graph`] records nodes, [`Var`] names one, [`Graph::backward`] walks them in
//! reverse and returns [`Grads`].

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::elementwise::{binary, Binary};
use crate::kernels::movement::full;
use crate::kernels::reduce::{reduce_rows, sum_all, sum_cols, RowReduce};
use crate::nn::ParamStore;
use crate::tensor::{DType, Tensor};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// A gradient rule: from the gradient of the node's output and, for each input, whether its
/// gradient is needed, the gradients of the inputs (in input order; `None` where not needed
/// or zero). It runs GPU kernels only: it must never read back.
pub(crate) type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>>;

struct Node {
    op: &'static str,
    value: Tensor,
    inputs: Vec<usize>,
    backward: Option<BackwardFn>,
    requires_grad: bool,
    param: Option<String>,
}

/// A value recorded in a [`Graph`]: the tensor plus its place on the tape. Cheap to clone
/// (the tensor's storage is shared).
#[derive(Clone)]
pub struct Var {
    graph: u64,
    id: usize,
    value: Tensor,
    requires_grad: bool,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Var(#{} {:?}{})",
            self.id,
            self.value.shape(),
            if self.requires_grad { ", grad" } else { "" }
        )
    }
}

impl Var {
    /// The forward value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    /// Whether a gradient flows to this value (it depends on a parameter or a leaf).
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }
    /// The node's index on its graph's tape.
    pub fn id(&self) -> usize {
        self.id
    }
}

static NEXT_GRAPH: AtomicU64 = AtomicU64::new(1);

/// A reverse-mode autograd tape over GPU tensors. See the [module docs](crate::autograd).
///
/// Ops take `&self` (the tape sits in a `RefCell`), so they compose freely:
/// `g.relu(&g.matmul(&x, &w, false, true)?)?`. A graph is meant to live for one step: build
/// it, call [`Graph::backward`], drop it (its values and saved tensors return to the pool).
pub struct Graph {
    gpu: Gpu,
    id: u64,
    nodes: RefCell<Vec<Node>>,
    params: RefCell<HashMap<String, usize>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph({} nodes)", self.nodes.borrow().len())
    }
}

impl Graph {
    /// An empty tape on `gpu`.
    pub fn new(gpu: &Gpu) -> Graph {
        Graph {
            gpu: gpu.clone(),
            id: NEXT_GRAPH.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Vec::new()),
            params: RefCell::new(HashMap::new()),
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The op names of the tape, in order (for debugging).
    pub fn ops(&self) -> Vec<&'static str> {
        self.nodes.borrow().iter().map(|n| n.op).collect()
    }

    fn push_leaf(
        &self,
        op: &'static str,
        t: &Tensor,
        requires_grad: bool,
        param: Option<String>,
    ) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        let id = nodes.len();
        nodes.push(Node {
            op,
            value: t.clone(),
            inputs: Vec::new(),
            backward: None,
            requires_grad,
            param,
        });
        Var {
            graph: self.id,
            id,
            value: t.clone(),
            requires_grad,
        }
    }

    /// A constant input: no gradient flows to it. The tensor's storage is shared, not copied.
    /// Values are f32 (a U32 tensor would be read as raw bits by the f32 kernels; index
    /// tensors go to [`Graph::gather_rows`] and [`Graph::softmax_cross_entropy`] directly).
    pub fn input(&self, t: &Tensor) -> Var {
        self.push_leaf("input", t, false, None)
    }

    /// A constant input uploaded from f32 data.
    pub fn input_from(&self, data: &[f32], shape: &[usize]) -> Result<Var> {
        Ok(self.input(&Tensor::from_slice(&self.gpu, data, shape)?))
    }

    /// A leaf that wants its gradient (returned by [`Grads::get`]), e.g. an input whose
    /// gradient is checked, or soft indices being optimised.
    pub fn leaf(&self, t: &Tensor) -> Result<Var> {
        if t.dtype() != DType::F32 {
            return Err(Error::Invalid(format!(
                "Graph::leaf: a differentiable leaf must be f32, not {:?}",
                t.dtype()
            )));
        }
        Ok(self.push_leaf("leaf", t, true, None))
    }

    /// The parameter `name` of `store`, as a leaf whose gradient [`Grads::param`] returns
    /// (none if the parameter is frozen). Asking twice for one name gives the same node, so a
    /// shared weight gets one summed gradient.
    pub fn param(&self, store: &ParamStore, name: &str) -> Result<Var> {
        if let Some(&id) = self.params.borrow().get(name) {
            let nodes = self.nodes.borrow();
            return Ok(Var {
                graph: self.id,
                id,
                value: nodes[id].value.clone(),
                requires_grad: nodes[id].requires_grad,
            });
        }
        let p = store.param(name).ok_or_else(|| {
            Error::Invalid(format!("no parameter `{name}` in the parameter store"))
        })?;
        let v = self.push_leaf("param", &p.value, p.trainable, Some(name.to_string()));
        self.params.borrow_mut().insert(name.to_string(), v.id);
        Ok(v)
    }

    /// Checks that `v` was recorded on this graph.
    pub(crate) fn check(&self, v: &Var, op: &str) -> Result<()> {
        if v.graph != self.id {
            return Err(Error::Invalid(format!(
                "{op}: a value from another graph was passed in"
            )));
        }
        Ok(())
    }

    /// Records an op node: `value` computed from `inputs`, differentiated by `backward`. The
    /// rule is dropped at once when no input needs a gradient.
    pub(crate) fn record(
        &self,
        op: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: BackwardFn,
    ) -> Result<Var> {
        for v in inputs {
            self.check(v, op)?;
        }
        let requires_grad = inputs.iter().any(|v| v.requires_grad);
        let mut nodes = self.nodes.borrow_mut();
        let id = nodes.len();
        nodes.push(Node {
            op,
            value: value.clone(),
            inputs: inputs.iter().map(|v| v.id).collect(),
            backward: if requires_grad { Some(backward) } else { None },
            requires_grad,
            param: None,
        });
        Ok(Var {
            graph: self.id,
            id,
            value,
            requires_grad,
        })
    }

    /// Records a value with no gradient (a stop-gradient result or an integer output).
    pub(crate) fn record_constant(&self, op: &'static str, value: Tensor) -> Var {
        self.push_leaf(op, &value, false, None)
    }

    /// Back-propagates from a scalar (one-element) `loss`: its gradient is 1. Returns the
    /// gradients of every parameter and leaf that `loss` depends on.
    pub fn backward(&self, loss: &Var) -> Result<Grads> {
        if loss.value.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!(
                    "the loss must have one element, not shape {:?}; use backward_with for other outputs",
                    loss.shape()
                ),
            ));
        }
        let seed = full(&self.gpu, loss.shape(), 1.0)?;
        self.backward_with(loss, &seed)
    }

    /// Back-propagates from any output `y` with the upstream gradient `seed` (of `y`'s shape):
    /// the gradients returned are those of Σ seed ⊙ y.
    pub fn backward_with(&self, y: &Var, seed: &Tensor) -> Result<Grads> {
        self.check(y, "backward")?;
        if seed.shape() != y.shape() || seed.dtype() != DType::F32 {
            return Err(Error::shape(
                "backward",
                format!(
                    "the seed gradient {:?} ({:?}) must be f32 of the output's shape {:?}",
                    seed.shape(),
                    seed.dtype(),
                    y.shape()
                ),
            ));
        }
        let nodes = self.nodes.borrow();
        let mut out = Grads {
            graph: self.id,
            by_id: HashMap::new(),
            by_name: BTreeMap::new(),
        };
        if !y.requires_grad {
            return Ok(out);
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; y.id + 1];
        grads[y.id] = Some(seed.clone());
        for i in (0..=y.id).rev() {
            let Some(g) = grads[i].take() else { continue };
            let node = &nodes[i];
            let Some(rule) = &node.backward else {
                if node.requires_grad {
                    if let Some(name) = &node.param {
                        out.by_name.insert(name.clone(), g.clone());
                    }
                    out.by_id.insert(i, g);
                }
                continue;
            };
            let needs: Vec<bool> = node
                .inputs
                .iter()
                .map(|&j| nodes[j].requires_grad)
                .collect();
            let input_grads = rule(&g, &needs)?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::Invalid(format!(
                    "backward of `{}` gave {} gradients for {} inputs",
                    node.op,
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            drop(g);
            for (k, gi) in input_grads.into_iter().enumerate() {
                let j = node.inputs[k];
                let Some(gi) = gi else { continue };
                if !needs[k] {
                    continue;
                }
                let target = &nodes[j].value;
                if gi.numel() != target.numel() {
                    return Err(Error::Invalid(format!(
                        "backward of `{}`: gradient {:?} for input {k} of shape {:?}",
                        node.op,
                        gi.shape(),
                        target.shape()
                    )));
                }
                let gi = if gi.shape() == target.shape() {
                    gi
                } else {
                    gi.reshape(target.shape())?
                };
                grads[j] = Some(match grads[j].take() {
                    None => gi,
                    Some(prev) => binary(&prev, &gi, Binary::Add)?,
                });
            }
        }
        Ok(out)
    }
}

/// The gradients of one backward pass: by leaf ([`Grads::get`]) and by parameter name
/// ([`Grads::param`]). Parameters the loss does not depend on have none.
#[derive(Clone)]
pub struct Grads {
    graph: u64,
    by_id: HashMap<usize, Tensor>,
    by_name: BTreeMap<String, Tensor>,
}

impl std::fmt::Debug for Grads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.by_name.iter().map(|(k, v)| (k, v.shape())))
            .finish()
    }
}

impl Grads {
    /// The gradient of a leaf or parameter node of the graph that produced these gradients.
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        if v.graph != self.graph {
            return None;
        }
        self.by_id.get(&v.id)
    }

    /// The gradient of the parameter `name`.
    pub fn param(&self, name: &str) -> Option<&Tensor> {
        self.by_name.get(name)
    }

    /// Every parameter gradient, sorted by name.
    pub fn params(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.by_name.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of parameter gradients.
    pub fn num_params(&self) -> usize {
        self.by_name.len()
    }
}

/// Number of rows of the 2-D view of `shape` (product of all but the last dimension).
pub(crate) fn rows_of(shape: &[usize]) -> usize {
    if shape.is_empty() {
        1
    } else {
        shape[..shape.len() - 1].iter().product()
    }
}

/// The last dimension of `shape` (1 for a scalar).
pub(crate) fn cols_of(shape: &[usize]) -> usize {
    shape.last().copied().unwrap_or(1)
}

/// Sums a gradient of the broadcast shape down to an operand of `shape` that was broadcast
/// over rows (one row), columns (one column) or both, as the elementwise kernels broadcast.
pub(crate) fn reduce_to(grad: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let (tr, tc) = (rows_of(shape), cols_of(shape));
    let (r, c) = (grad.rows(), grad.cols());
    let out = if tr == r && tc == c {
        grad.clone()
    } else if tr == 1 && tc == c {
        sum_cols(grad)?
    } else if tc == 1 && tr == r {
        reduce_rows(grad, RowReduce::Sum)?
    } else if tr == 1 && tc == 1 {
        sum_all(grad)?
    } else {
        return Err(Error::shape(
            "backward",
            format!(
                "cannot reduce a gradient {:?} to the broadcast operand {shape:?}",
                grad.shape()
            ),
        ));
    };
    out.reshape(shape)
}

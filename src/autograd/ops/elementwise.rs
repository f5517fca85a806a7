//! Elementwise ops: broadcasting arithmetic, scalar affine maps, and activations.

use crate::autograd::graph::{reduce_to, Graph, Var};
use crate::error::{Error, Result};
use crate::kernels::autograd::unary_backward;
use crate::kernels::elementwise::{binary, unary, Binary, Unary};

impl Graph {
    fn binary_op(&self, name: &'static str, a: &Var, b: &Var, op: Binary) -> Result<Var> {
        let value = binary(a.value(), b.value(), op)?;
        let (at, bt, ct) = (a.value().clone(), b.value().clone(), value.clone());
        self.record(
            name,
            value,
            &[a, b],
            Box::new(move |g, needs| {
                let (sa, sb) = (at.shape(), bt.shape());
                let (da, db) = match op {
                    Binary::Add => (
                        needs[0].then(|| reduce_to(g, sa)).transpose()?,
                        needs[1].then(|| reduce_to(g, sb)).transpose()?,
                    ),
                    Binary::Sub => (
                        needs[0].then(|| reduce_to(g, sa)).transpose()?,
                        needs[1]
                            .then(|| reduce_to(&unary(g, Unary::Neg)?, sb))
                            .transpose()?,
                    ),
                    Binary::Mul => (
                        needs[0]
                            .then(|| reduce_to(&binary(g, &bt, Binary::Mul)?, sa))
                            .transpose()?,
                        needs[1]
                            .then(|| reduce_to(&binary(g, &at, Binary::Mul)?, sb))
                            .transpose()?,
                    ),
                    Binary::Div => (
                        needs[0]
                            .then(|| reduce_to(&binary(g, &bt, Binary::Div)?, sa))
                            .transpose()?,
                        // d(a/b)/db = −(a/b)/b = −c/b.
                        needs[1]
                            .then(|| {
                                let gc = binary(g, &ct, Binary::Mul)?;
                                let q = binary(&gc, &bt, Binary::Div)?;
                                reduce_to(&unary(&q, Unary::Neg)?, sb)
                            })
                            .transpose()?,
                    ),
                    _ => unreachable!("only add, sub, mul and div are recorded"),
                };
                Ok(vec![da, db])
            }),
        )
    }

    /// `a + b`, broadcasting as the elementwise kernels do: an operand may have one row (a
    /// bias row), one column, or one element. A broadcast operand's gradient is summed over
    /// the broadcast dimensions.
    pub fn add(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op("add", a, b, Binary::Add)
    }

    /// `a − b`, broadcasting as [`Graph::add`].
    pub fn sub(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op("sub", a, b, Binary::Sub)
    }

    /// `a ⊙ b`, broadcasting as [`Graph::add`]. Gradients `g⊙b` and `g⊙a`.
    pub fn mul(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op("mul", a, b, Binary::Mul)
    }

    /// `a / b`, broadcasting as [`Graph::add`]. Gradients `g/b` and `−g⊙(a/b)/b`.
    pub fn div(&self, a: &Var, b: &Var) -> Result<Var> {
        self.binary_op("div", a, b, Binary::Div)
    }

    /// `alpha · x`.
    pub fn scale(&self, x: &Var, alpha: f32) -> Result<Var> {
        self.affine(x, alpha, 0.0)
    }

    /// `x + c`.
    pub fn add_scalar(&self, x: &Var, c: f32) -> Result<Var> {
        self.affine(x, 1.0, c)
    }

    /// `−x`.
    pub fn neg(&self, x: &Var) -> Result<Var> {
        self.affine(x, -1.0, 0.0)
    }

    /// `alpha · x + beta`; gradient `alpha · g`.
    pub fn affine(&self, x: &Var, alpha: f32, beta: f32) -> Result<Var> {
        let value = unary(x.value(), Unary::Scale { alpha, beta })?;
        self.record(
            "affine",
            value,
            &[x],
            Box::new(move |g, _| {
                Ok(vec![Some(if alpha == 1.0 {
                    g.clone()
                } else {
                    unary(g, Unary::Scale { alpha, beta: 0.0 })?
                })])
            }),
        )
    }

    /// A differentiable unary op: relu, GELU (erf or tanh form), sigmoid, tanh, exp, log,
    /// square, sqrt, or the affine `Scale` and `Neg` (others are an error). The gradient is
    /// `g ⊙ f'(x)`, computed by one kernel from the saved input and output.
    pub fn unary(&self, x: &Var, op: Unary) -> Result<Var> {
        match op {
            Unary::Scale { alpha, beta } => return self.affine(x, alpha, beta),
            Unary::Neg => return self.neg(x),
            Unary::Copy => return self.affine(x, 1.0, 0.0),
            Unary::Relu
            | Unary::Gelu
            | Unary::GeluTanh
            | Unary::Sigmoid
            | Unary::Tanh
            | Unary::Exp
            | Unary::Log
            | Unary::Square
            | Unary::Sqrt => {}
            other => {
                return Err(Error::Invalid(format!(
                    "Graph::unary: {other:?} has no gradient rule"
                )))
            }
        }
        let value = unary(x.value(), op)?;
        let (xt, yt) = (x.value().clone(), value.clone());
        self.record(
            "unary",
            value,
            &[x],
            Box::new(move |g, _| Ok(vec![Some(unary_backward(&xt, &yt, g, op)?)])),
        )
    }

    /// `max(x, 0)`.
    pub fn relu(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Relu)
    }
    /// GELU, exact (erf) form.
    pub fn gelu(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Gelu)
    }
    /// GELU, tanh approximation.
    pub fn gelu_tanh(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::GeluTanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Sigmoid)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Tanh)
    }
    /// `e^x`.
    pub fn exp(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Exp)
    }
    /// Natural log.
    pub fn log(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Log)
    }
    /// `x²`.
    pub fn square(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Square)
    }
    /// `√x`.
    pub fn sqrt(&self, x: &Var) -> Result<Var> {
        self.unary(x, Unary::Sqrt)
    }
}

//! Launcher for `shaders/elementwise.wgsl`: unary and binary ops with broadcasting, and select.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, ShaderSource};
use crate::kernels::launch::{elems, flat_chunks, groups, u32_of, WG};
use crate::tensor::Tensor;

/// The elementwise shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "elementwise",
    code: with_prelude!("elementwise.wgsl"),
};

/// Unary operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// Identity copy.
    Copy,
    /// max(x, 0).
    Relu,
    /// GELU with the exact (erf) form, as BERT uses.
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// e^x.
    Exp,
    /// Natural log.
    Log,
    /// Square root.
    Sqrt,
    /// x².
    Square,
    /// alpha·x + beta.
    Scale {
        /// Multiplier.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// Clamp to [min, max].
    Clamp {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// −x.
    Neg,
    /// |x|.
    Abs,
    /// 1/x.
    Recip,
}

impl Unary {
    /// The number the shaders know this op by: the `UNARY_*` constants of
    /// `shaders/prelude.wgsl`, which the elementwise kernel, the matmul epilogue and the
    /// autograd derivative kernel all switch on (a test checks the two lists agree).
    pub fn opcode(self) -> u32 {
        match self {
            Unary::Copy => 0,
            Unary::Relu => 1,
            Unary::Gelu => 2,
            Unary::Sigmoid => 3,
            Unary::Tanh => 4,
            Unary::Exp => 5,
            Unary::Log => 6,
            Unary::Sqrt => 7,
            Unary::Square => 8,
            Unary::Scale { .. } => 9,
            Unary::Clamp { .. } => 10,
            Unary::Neg => 11,
            Unary::Abs => 12,
            Unary::Recip => 13,
            Unary::GeluTanh => 14,
        }
    }

    /// The op's number and its two parameters (`alpha`, `beta` of scale and clamp).
    fn code(self) -> (u32, f32, f32) {
        let (alpha, beta) = match self {
            Unary::Scale { alpha, beta } => (alpha, beta),
            Unary::Clamp { min, max } => (min, max),
            _ => (0.0, 0.0),
        };
        (self.opcode(), alpha, beta)
    }

    /// The name of the op's `UNARY_*` constant in `shaders/prelude.wgsl`.
    pub fn wgsl_name(self) -> &'static str {
        match self {
            Unary::Copy => "UNARY_COPY",
            Unary::Relu => "UNARY_RELU",
            Unary::Gelu => "UNARY_GELU",
            Unary::Sigmoid => "UNARY_SIGMOID",
            Unary::Tanh => "UNARY_TANH",
            Unary::Exp => "UNARY_EXP",
            Unary::Log => "UNARY_LOG",
            Unary::Sqrt => "UNARY_SQRT",
            Unary::Square => "UNARY_SQUARE",
            Unary::Scale { .. } => "UNARY_SCALE",
            Unary::Clamp { .. } => "UNARY_CLAMP",
            Unary::Neg => "UNARY_NEG",
            Unary::Abs => "UNARY_ABS",
            Unary::Recip => "UNARY_RECIP",
            Unary::GeluTanh => "UNARY_GELU_TANH",
        }
    }

    /// Every op, with placeholder parameters where it has some.
    pub const ALL: [Unary; 15] = [
        Unary::Copy,
        Unary::Relu,
        Unary::Gelu,
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::Exp,
        Unary::Log,
        Unary::Sqrt,
        Unary::Square,
        Unary::Scale {
            alpha: 1.0,
            beta: 0.0,
        },
        Unary::Clamp { min: 0.0, max: 1.0 },
        Unary::Neg,
        Unary::Abs,
        Unary::Recip,
        Unary::GeluTanh,
    ];

    /// The CPU reference of this op.
    pub fn cpu(self, x: f32) -> f32 {
        match self {
            Unary::Copy => x,
            Unary::Relu => x.max(0.0),
            Unary::Gelu => 0.5 * x * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2) as f32),
            Unary::GeluTanh => {
                let c = (2.0f32 / std::f32::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Tanh => x.tanh(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Square => x * x,
            Unary::Scale { alpha, beta } => alpha * x + beta,
            Unary::Clamp { min, max } => x.clamp(min, max),
            Unary::Neg => -x,
            Unary::Abs => x.abs(),
            Unary::Recip => 1.0 / x,
        }
    }
}

/// Error function, f64, for CPU references: erfc by the Chebyshev-fitted rational form of
/// Numerical Recipes (`erfcc`, fractional error < 1.2e-7), the formula the shaders' prelude
/// uses (`shaders/prelude.wgsl`), so CPU references and kernels differ only by rounding.
pub fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - y
    } else {
        y - 1.0
    }
}

/// Binary operations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    /// a + b.
    Add,
    /// a − b.
    Sub,
    /// a · b.
    Mul,
    /// a / b.
    Div,
    /// max(a, b).
    Max,
    /// min(a, b).
    Min,
    /// alpha·a + beta·b.
    Axpby {
        /// Weight of a.
        alpha: f32,
        /// Weight of b.
        beta: f32,
    },
    /// a^b.
    Pow,
}

impl Binary {
    fn code(self) -> (u32, f32, f32) {
        match self {
            Binary::Add => (0, 0.0, 0.0),
            Binary::Sub => (1, 0.0, 0.0),
            Binary::Mul => (2, 0.0, 0.0),
            Binary::Div => (3, 0.0, 0.0),
            Binary::Max => (4, 0.0, 0.0),
            Binary::Min => (5, 0.0, 0.0),
            Binary::Axpby { alpha, beta } => (6, alpha, beta),
            Binary::Pow => (7, 0.0, 0.0),
        }
    }
    /// The CPU reference of this op.
    pub fn cpu(self, x: f32, y: f32) -> f32 {
        match self {
            Binary::Add => x + y,
            Binary::Sub => x - y,
            Binary::Mul => x * y,
            Binary::Div => x / y,
            Binary::Max => x.max(y),
            Binary::Min => x.min(y),
            Binary::Axpby { alpha, beta } => alpha * x + beta * y,
            Binary::Pow => x.powf(y),
        }
    }
}

uniform! {
    struct Params {
        op: u32,
        rows: u32,
        cols: u32,
        a_rs: u32,
        a_cs: u32,
        b_rs: u32,
        b_cs: u32,
        _pad: u32,
        alpha: f32,
        beta: f32,
        _pad2: [f32; 2],
    }
}

/// out = op(a), elementwise; `out` may not be `a`.
pub fn unary(a: &Tensor, op: Unary) -> Result<Tensor> {
    let out = Tensor::empty(a.gpu(), a.shape())?;
    unary_into(a, op, &out)?;
    Ok(out)
}

/// Writes op(a) into `out` (same element count, different storage).
pub fn unary_into(a: &Tensor, op: Unary, out: &Tensor) -> Result<()> {
    if a.numel() != out.numel() {
        return Err(Error::shape(
            "unary",
            format!("input {:?} and output {:?} differ", a.shape(), out.shape()),
        ));
    }
    if a.same_storage(out) {
        return Err(Error::aliasing("unary", "output must not alias the input"));
    }
    let (code, alpha, beta) = op.code();
    for (start, n) in flat_chunks(a.gpu(), a.numel(), 64)? {
        let params = Params {
            op: code,
            rows: 1,
            cols: u32_of(n, "the chunk length", "unary")?,
            a_rs: 0,
            a_cs: 1,
            b_rs: 0,
            b_cs: 0,
            _pad: 0,
            alpha,
            beta,
            _pad2: [0.0; 2],
        };
        a.gpu().dispatch(
            &SHADER,
            "unary",
            &[],
            bytemuck::bytes_of(&params),
            &[elems(a, start, n), elems(out, start, n)],
            groups(n, WG, "unary")?,
        )?;
    }
    Ok(())
}

/// How an operand of shape `s` broadcasts to `[rows, cols]`: (row stride, column stride).
fn strides(s: &Tensor, rows: usize, cols: usize, op: &'static str) -> Result<(u32, u32)> {
    let (r, c) = (s.rows(), s.cols());
    let rs = if r == rows {
        u32_of(c, "the row stride", op)?
    } else if r == 1 {
        0
    } else {
        u32::MAX
    };
    let cs = if c == cols {
        1
    } else if c == 1 {
        0
    } else {
        u32::MAX
    };
    if rs == u32::MAX || cs == u32::MAX {
        return Err(Error::shape(
            op,
            format!(
                "operand {:?} does not broadcast to [{rows}, {cols}] (it must match, or be 1 in a dimension)",
                s.shape()
            ),
        ));
    }
    Ok((rs, cs))
}

/// out = op(a, b) with broadcasting of the 2-D views `[rows, cols]`: either operand may have
/// one row (row broadcast), one column (column broadcast), or be 1×1. The output takes the
/// larger shape (the shape of whichever operand is full-size, `a` first).
pub fn binary(a: &Tensor, b: &Tensor, op: Binary) -> Result<Tensor> {
    let rows = a.rows().max(b.rows());
    let cols = a.cols().max(b.cols());
    let shape = if a.rows() == rows && a.cols() == cols {
        a.shape().to_vec()
    } else if b.rows() == rows && b.cols() == cols {
        b.shape().to_vec()
    } else {
        vec![rows, cols]
    };
    let out = Tensor::empty(a.gpu(), &shape)?;
    binary_into(a, b, op, &out)?;
    Ok(out)
}

/// Writes op(a, b) into `out`, whose 2-D view gives the broadcast shape.
pub fn binary_into(a: &Tensor, b: &Tensor, op: Binary, out: &Tensor) -> Result<()> {
    let (rows, cols) = (out.rows(), out.cols());
    let (a_rs, a_cs) = strides(a, rows, cols, "binary")?;
    let (b_rs, b_cs) = strides(b, rows, cols, "binary")?;
    const OP: &str = "binary";
    if a.same_storage(out) || b.same_storage(out) {
        return Err(Error::aliasing("binary", "output must not alias an input"));
    }
    let (code, alpha, beta) = op.code();
    let gpu = a.gpu();
    let cb = cols as u64 * 4;
    let mut row_bytes = vec![cb];
    if a_rs != 0 {
        row_bytes.push(a.cols() as u64 * 4);
    }
    if b_rs != 0 {
        row_bytes.push(b.cols() as u64 * 4);
    }
    for (start, n) in gpu.row_chunks(rows, &row_bytes)? {
        let bind = |t: &Tensor, rs: u32| -> (u64, u64) {
            if rs == 0 {
                (0, t.bytes())
            } else {
                let rb = t.cols() as u64 * 4;
                (start as u64 * rb, n as u64 * rb)
            }
        };
        let (ao, asz) = bind(a, a_rs);
        let (bo, bsz) = bind(b, b_rs);
        let params = Params {
            op: code,
            rows: u32_of(n, "rows", OP)?,
            cols: u32_of(cols, "cols", OP)?,
            a_rs,
            a_cs,
            b_rs,
            b_cs,
            _pad: 0,
            alpha,
            beta,
            _pad2: [0.0; 2],
        };
        gpu.dispatch(
            &SHADER,
            "binary",
            &[],
            bytemuck::bytes_of(&params),
            &[
                BufRange {
                    buf: a.buffer(),
                    offset: ao,
                    size: asz,
                },
                BufRange {
                    buf: b.buffer(),
                    offset: bo,
                    size: bsz,
                },
                BufRange {
                    buf: out.buffer(),
                    offset: start as u64 * cb,
                    size: n as u64 * cb,
                },
            ],
            groups(n * cols, WG, OP)?,
        )?;
    }
    Ok(())
}

/// out = cond ≠ 0 ? a : b, elementwise over three tensors of one shape.
pub fn select(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cond.numel() != a.numel() || a.numel() != b.numel() {
        return Err(Error::shape(
            "select",
            format!(
                "cond {:?}, a {:?} and b {:?} must have one element count",
                cond.shape(),
                a.shape(),
                b.shape()
            ),
        ));
    }
    let out = Tensor::empty(a.gpu(), a.shape())?;
    for (start, n) in flat_chunks(a.gpu(), a.numel(), 64)? {
        let params = Params {
            op: 0,
            rows: 1,
            cols: u32_of(n, "the chunk length", "select")?,
            a_rs: 0,
            a_cs: 1,
            b_rs: 0,
            b_cs: 1,
            _pad: 0,
            alpha: 0.0,
            beta: 0.0,
            _pad2: [0.0; 2],
        };
        a.gpu().dispatch(
            &SHADER,
            "select_op",
            &[],
            bytemuck::bytes_of(&params),
            &[
                elems(a, start, n),
                elems(b, start, n),
                elems(cond, start, n),
                elems(&out, start, n),
            ],
            groups(n, WG, "select")?,
        )?;
    }
    Ok(out)
}

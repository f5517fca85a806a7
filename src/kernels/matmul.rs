//! Launcher for `shaders/matmul.wgsl`: C = op(A)·op(B) (+ bias) then an activation, batched.
//!
//! - `op(X)` is `X` or `Xᵀ` ([`MatmulOpts::trans_a`], [`MatmulOpts::trans_b`]).
//! - A is `[.., m, k]` (`[.., k, m]` when transposed) with any number of leading batch
//!   dimensions; B is `[k, n]` (`[n, k]` when transposed), shared by every batch, or has the
//!   same leading dimensions as A. A rank-2 A with a batched B is shared across B's batches.
//! - The optional bias is a row of `n` values added to every row; the activation follows it.
//! - Accumulation is in f32.
//!
//! Two kernel variants ([`Variant`]): a workgroup-memory tile for real GPUs and a barrier-free
//! register tile for CPU adapters (lavapipe), chosen by adapter unless forced. Work is split
//! into batch groups and row ranges bound at aligned offsets, and, when a transposed A or a B
//! that every row reads is itself too large, into ranges of the reduction whose partial sums
//! accumulate in C (bias and activation after the last), so tensors above the storage binding
//! cap (128 MiB under default limits) work.

use crate::error::{Error, Result};
use crate::gpu::{BufRange, Gpu, ShaderSource};
use crate::kernels::elementwise::Unary;
use crate::kernels::launch::{check_f32, too_large, u32_of};
use crate::tensor::Tensor;

/// The matmul shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "matmul",
    code: with_prelude!("matmul.wgsl"),
};

/// The activation fused after the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity.
    #[default]
    None,
    /// max(x, 0).
    Relu,
    /// GELU, exact (erf) form, with the erf of the shader prelude (`shaders/prelude.wgsl`).
    Gelu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// The activation as the unary op it is ([`Activation::None`] is [`Unary::Copy`]).
    pub fn unary(self) -> Unary {
        match self {
            Activation::None => Unary::Copy,
            Activation::Relu => Unary::Relu,
            Activation::Gelu => Unary::Gelu,
            Activation::Sigmoid => Unary::Sigmoid,
            Activation::Tanh => Unary::Tanh,
        }
    }

    /// The shader's number for it: the unary op's ([`Unary::opcode`]).
    fn code(self) -> u32 {
        self.unary().opcode()
    }

    /// The CPU reference of this activation (the same as [`Unary::cpu`]).
    pub fn cpu(self, x: f32) -> f32 {
        self.unary().cpu(x)
    }
}

/// Kernel variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// 64×64 tiles staged through workgroup memory (entry `matmul_shared`); the default on
    /// real GPUs.
    Shared,
    /// Barrier-free 16×16 register tile per invocation (entries `matmul_regtile` with vec4 loads
    /// when every access is aligned, else `matmul_regtile_scalar`); the default on CPU adapters.
    RegTile,
}

impl Variant {
    /// The variant chosen for `gpu` when none is forced: [`Variant::RegTile`] on CPU adapters,
    /// [`Variant::Shared`] elsewhere.
    pub fn for_gpu(gpu: &Gpu) -> Variant {
        if gpu.adapter().is_cpu {
            Variant::RegTile
        } else {
            Variant::Shared
        }
    }

    /// Every variant, for tests.
    pub const ALL: [Variant; 2] = [Variant::Shared, Variant::RegTile];
}

/// Options of [`matmul`]; `MatmulOpts::default()` is a plain C = A·B.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulOpts<'a> {
    /// Use Aᵀ: A is stored `[.., k, m]`.
    pub trans_a: bool,
    /// Use Bᵀ: B is stored `[n, k]` (or `[.., n, k]`).
    pub trans_b: bool,
    /// A row of `n` values (shape `[n]` or `[1, n]`) added to every output row.
    pub bias: Option<&'a Tensor>,
    /// Activation applied after the bias.
    pub act: Activation,
    /// Force a kernel variant; `None` picks [`Variant::for_gpu`].
    pub variant: Option<Variant>,
}

impl<'a> MatmulOpts<'a> {
    /// Plain C = A·B.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets [`MatmulOpts::trans_a`].
    pub fn trans_a(mut self, t: bool) -> Self {
        self.trans_a = t;
        self
    }
    /// Sets [`MatmulOpts::trans_b`].
    pub fn trans_b(mut self, t: bool) -> Self {
        self.trans_b = t;
        self
    }
    /// Sets the bias row.
    pub fn bias(mut self, bias: &'a Tensor) -> Self {
        self.bias = Some(bias);
        self
    }
    /// Sets the activation.
    pub fn act(mut self, act: Activation) -> Self {
        self.act = act;
        self
    }
    /// Forces a kernel variant.
    pub fn variant(mut self, v: Variant) -> Self {
        self.variant = Some(v);
        self
    }
}

/// The checked geometry of one matmul.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Geometry {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    /// Whether A / B have a batch stride (else shared across the batch).
    a_batched: bool,
    b_batched: bool,
    out_shape: Vec<usize>,
}

fn geometry(
    a_shape: &[usize],
    b_shape: &[usize],
    trans_a: bool,
    trans_b: bool,
) -> Result<Geometry> {
    if a_shape.len() < 2 || b_shape.len() < 2 {
        return Err(Error::shape(
            "matmul",
            format!("A {a_shape:?} and B {b_shape:?} must both have at least 2 dimensions"),
        ));
    }
    let (ar, ac) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (br, bc) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    let (m, ka) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::shape(
            "matmul",
            format!(
                "inner dimensions differ: A{} {a_shape:?} gives k = {ka}, B{} {b_shape:?} gives k = {kb}",
                if trans_a { "ᵀ" } else { "" },
                if trans_b { "ᵀ" } else { "" },
            ),
        ));
    }
    let a_lead = &a_shape[..a_shape.len() - 2];
    let b_lead = &b_shape[..b_shape.len() - 2];
    let (lead, a_batched, b_batched) = if b_lead.is_empty() {
        (a_lead, !a_lead.is_empty(), false)
    } else if a_lead.is_empty() {
        (b_lead, false, true)
    } else if a_lead == b_lead {
        (a_lead, true, true)
    } else {
        return Err(Error::shape(
            "matmul",
            format!(
                "batch dimensions differ: A {a_shape:?} has {a_lead:?}, B {b_shape:?} has {b_lead:?} (B may also be 2-D, shared by every batch)"
            ),
        ));
    };
    let batch = lead.iter().product();
    let mut out_shape = lead.to_vec();
    out_shape.extend([m, n]);
    Ok(Geometry {
        batch,
        m,
        n,
        k: ka,
        a_batched,
        b_batched,
        out_shape,
    })
}

/// The output shape of `matmul(a, b, opts)` for operands of these shapes.
pub fn output_shape(a_shape: &[usize], b_shape: &[usize], opts: &MatmulOpts) -> Result<Vec<usize>> {
    Ok(geometry(a_shape, b_shape, opts.trans_a, opts.trans_b)?.out_shape)
}

/// C = op(A)·op(B) (+ bias) then the activation, in a new tensor of shape `[.., m, n]`.
pub fn matmul(a: &Tensor, b: &Tensor, opts: &MatmulOpts) -> Result<Tensor> {
    let g = geometry(a.shape(), b.shape(), opts.trans_a, opts.trans_b)?;
    let out = Tensor::empty(a.gpu(), &g.out_shape)?;
    run(a, b, opts, &out, &g)?;
    Ok(out)
}

/// Writes op(A)·op(B) (+ bias) then the activation into `out`, which must hold
/// `batch·m·n` values with `n` columns and share no storage with the inputs.
pub fn matmul_into(a: &Tensor, b: &Tensor, opts: &MatmulOpts, out: &Tensor) -> Result<()> {
    let g = geometry(a.shape(), b.shape(), opts.trans_a, opts.trans_b)?;
    if out.numel() != g.out_shape.iter().product::<usize>() || out.cols() != g.n {
        return Err(Error::shape(
            "matmul",
            format!(
                "output {:?} cannot hold the result {:?}",
                out.shape(),
                g.out_shape
            ),
        ));
    }
    run(a, b, opts, out, &g)
}

uniform! {
    #[derive(Debug, Default)]
    struct Params {
        m: u32,
        n: u32,
        k: u32,
        batch: u32,
        a_off: u32,
        b_off: u32,
        c_off: u32,
        flags: u32,
        a_bs: u32,
        b_bs: u32,
        c_bs: u32,
        act: u32,
        lda: u32,
        ldb: u32,
        tiles_m: u32,
        tiles_n: u32,
    }
}

/// Rows and columns of C computed by one register-tile invocation (fixed in the shader).
const REG_TILE: usize = 16;

/// Register-tile workgroup: 8 invocations (one SIMD row on CPU adapters), all across columns,
/// so one workgroup computes 16 rows × 128 columns. Small workgroups keep small and heavily
/// batched products from paying for idle invocations (on CPU adapters every invocation of a
/// workgroup runs, masked or not); on lavapipe 8 and 64 invocations ran equally fast on large
/// products, while 16 and 32 took ten times longer to compile.
const REG_WG: u32 = 8;

/// Invocations across columns (of [`REG_WG`]) for an `m × n` output: the one of 1, 2, 4, 8 that
/// computes the fewest padded outputs, ties going to the wider row of invocations (their B
/// reads are contiguous). A fixed 8 (16 rows × 128 columns) spent 37% of a ranker's
/// `n = 80` products and 99% of its `n = 1` scores on padding, which every lane of a CPU
/// adapter computes; `n = 80` then takes one column of invocations in five 16-wide tiles.
fn reg_gx(m: usize, n: usize) -> u32 {
    let padded = |gx: usize| {
        let (bm, bn) = ((REG_WG as usize / gx) * REG_TILE, gx * REG_TILE);
        m.div_ceil(bm) * bm * (n.div_ceil(bn) * bn)
    };
    [8usize, 4, 2, 1]
        .into_iter()
        .min_by_key(|&gx| padded(gx))
        .unwrap_or(8) as u32
}

/// Workgroup-memory tile.
const SH_BM: usize = 64;
const SH_BN: usize = 64;

/// One dispatch: batches `b0..b0+nb`, rows `r0..r0+nr` of each, reduction steps `k0..k0+kc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    b0: usize,
    nb: usize,
    r0: usize,
    nr: usize,
    k0: usize,
    kc: usize,
}

/// Sizes and element strides of one product as the kernel sees it (after flattening).
#[derive(Clone, Copy, Debug)]
struct Layout {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    /// Batch strides in elements (0: shared).
    a_bs: usize,
    b_bs: usize,
    c_bs: usize,
}

impl Layout {
    fn lda(&self) -> usize {
        if self.ta {
            self.m
        } else {
            self.k
        }
    }

    fn ldb(&self) -> usize {
        if self.tb {
            self.k
        } else {
            self.n
        }
    }

    /// Element range `(start, len)` of A that `j` reads.
    fn a_range(&self, j: &Job) -> (usize, usize) {
        let (m, k) = (self.m, self.k);
        let base = j.b0 * self.a_bs;
        let tail = (j.nb - 1) * self.a_bs;
        if self.ta {
            // Storage [k, m]: rows k0.., columns r0..r0+nr.
            (
                base + j.k0 * m + j.r0,
                tail + j.kc.max(1).saturating_sub(1) * m + j.nr,
            )
        } else {
            // Storage [m, k]: rows r0.., columns k0..k0+kc.
            (base + j.r0 * k + j.k0, tail + (j.nr - 1) * k + j.kc)
        }
    }

    /// Element range `(start, len)` of B that `j` reads.
    fn b_range(&self, j: &Job) -> (usize, usize) {
        let (n, k) = (self.n, self.k);
        let base = j.b0 * self.b_bs;
        let tail = (j.nb - 1) * self.b_bs;
        if self.tb {
            // Storage [n, k]: every row, columns k0..k0+kc.
            (base + j.k0, tail + (n - 1) * k + j.kc)
        } else {
            // Storage [k, n]: rows k0..k0+kc.
            (base + j.k0 * n, tail + j.kc * n)
        }
    }

    /// Element range `(start, len)` of C that `j` writes.
    fn c_range(&self, j: &Job) -> (usize, usize) {
        (
            j.b0 * self.c_bs + j.r0 * self.n,
            (j.nb - 1) * self.c_bs + j.nr * self.n,
        )
    }
}

/// A binding of the element range `[start, start+len)` of a tensor: the bound byte range starts
/// at the aligned offset at or below `start`, and the shader skips `skip` elements.
struct Bind {
    offset: u64,
    size: u64,
    skip: u32,
}

fn bind(start: usize, len: usize, align: u64) -> Bind {
    let s = start as u64 * 4;
    let offset = s / align * align;
    Bind {
        offset,
        size: s + len as u64 * 4 - offset,
        // Less than `align / 4` (at most 64): the cast cannot truncate.
        skip: ((s - offset) / 4) as u32,
    }
}

fn run(a: &Tensor, b: &Tensor, opts: &MatmulOpts, out: &Tensor, g: &Geometry) -> Result<()> {
    let gpu = a.gpu();
    check_f32(a, "matmul", "A")?;
    check_f32(b, "matmul", "B")?;
    check_f32(out, "matmul", "the output")?;
    if let Some(bias) = opts.bias {
        check_f32(bias, "matmul", "the bias")?;
        if bias.numel() != g.n || bias.cols() != g.n {
            return Err(Error::shape(
                "matmul",
                format!(
                    "bias {:?} must be a row of n = {} values",
                    bias.shape(),
                    g.n
                ),
            ));
        }
        if bias.same_storage(out) {
            return Err(Error::aliasing(
                "matmul",
                "the output must not alias the bias",
            ));
        }
    }
    if a.same_storage(out) || b.same_storage(out) {
        return Err(Error::aliasing(
            "matmul",
            "the output must not alias an input",
        ));
    }
    if g.batch == 0 || g.m == 0 || g.n == 0 {
        return Ok(());
    }
    let variant = opts.variant.unwrap_or_else(|| Variant::for_gpu(gpu));
    let (ta, tb) = (opts.trans_a, opts.trans_b);
    let (m, n, k) = (g.m, g.n, g.k);

    // A batch of A that is read by rows (not transposed) and shared B flatten into one tall
    // matrix: rows of A and C are then independent and can be chunked freely.
    let (batch, m, a_batched) = if g.a_batched && !g.b_batched && !ta {
        (1, g.batch * m, false)
    } else {
        (g.batch, m, g.a_batched)
    };
    let l = Layout {
        batch,
        m,
        n,
        k,
        ta,
        tb,
        a_bs: if a_batched { m * k } else { 0 },
        b_bs: if g.b_batched { k * n } else { 0 },
        c_bs: m * n,
    };
    let align = gpu.kernel_limits().storage_offset_alignment;
    let jobs = plan(gpu, &l)?;

    for job in jobs {
        let gx = reg_gx(job.nr, n);
        let (bm, bn) = match variant {
            Variant::Shared => (SH_BM, SH_BN),
            Variant::RegTile => ((REG_WG / gx) as usize * REG_TILE, gx as usize * REG_TILE),
        };
        let constants: Vec<(&str, f64)> = match variant {
            Variant::Shared => vec![("TRANS_A", ta as u8 as f64), ("TRANS_B", tb as u8 as f64)],
            Variant::RegTile => vec![
                ("TRANS_A", ta as u8 as f64),
                ("TRANS_B", tb as u8 as f64),
                ("WG", REG_WG as f64),
                ("GX", gx as f64),
            ],
        };
        let (a_start, a_len) = l.a_range(&job);
        let (b_start, b_len) = l.b_range(&job);
        let (c_start, c_len) = l.c_range(&job);
        let ab = bind(a_start, a_len, align);
        let bb = bind(b_start, b_len, align);
        let cb = bind(c_start, c_len, align);
        // With the reduction split, partial sums accumulate in C and the bias and activation
        // wait for the last part.
        let first = job.k0 == 0;
        let last = job.k0 + job.kc >= k;
        let mut flags = 0u32;
        if last && opts.bias.is_some() {
            flags |= 1;
        }
        if !first {
            flags |= 2;
        }
        let act = if last { opts.act } else { Activation::None };
        let tiles_m = job.nr.div_ceil(bm);
        let tiles_n = n.div_ceil(bn);
        let groups = job
            .nb
            .checked_mul(tiles_m)
            .and_then(|v| v.checked_mul(tiles_n))
            .ok_or_else(|| Error::Invalid("matmul: too many workgroups".into()))?;
        let params = Params {
            m: u32_of(job.nr, "m", "matmul")?,
            n: u32_of(n, "n", "matmul")?,
            k: u32_of(job.kc, "k", "matmul")?,
            batch: u32_of(job.nb, "batch", "matmul")?,
            a_off: ab.skip,
            b_off: bb.skip,
            c_off: cb.skip,
            flags,
            a_bs: u32_of(l.a_bs, "the batch stride of A", "matmul")?,
            b_bs: u32_of(l.b_bs, "the batch stride of B", "matmul")?,
            c_bs: u32_of(l.c_bs, "the batch stride of C", "matmul")?,
            act: act.code(),
            lda: u32_of(l.lda(), "lda", "matmul")?,
            ldb: u32_of(l.ldb(), "ldb", "matmul")?,
            tiles_m: u32_of(tiles_m, "row tiles", "matmul")?,
            tiles_n: u32_of(tiles_n, "column tiles", "matmul")?,
        };
        let aligned = [job.kc, n, l.lda(), l.ldb(), l.a_bs, l.b_bs, l.c_bs]
            .iter()
            .all(|v| v % 4 == 0)
            && [ab.skip, bb.skip, cb.skip].iter().all(|v| v % 4 == 0)
            && job.kc > 0;
        let entry = match variant {
            Variant::Shared => "matmul_shared",
            Variant::RegTile if aligned => "matmul_regtile",
            Variant::RegTile => "matmul_regtile_scalar",
        };
        // Without a bias, B's binding stands in (read-only twice is allowed; flags skip it).
        let bias_range = match opts.bias {
            Some(t) => t.range(),
            None => BufRange {
                buf: b.buffer(),
                offset: bb.offset,
                size: bb.size,
            },
        };
        gpu.dispatch(
            &SHADER,
            entry,
            &constants,
            bytemuck::bytes_of(&params),
            &[
                BufRange {
                    buf: a.buffer(),
                    offset: ab.offset,
                    size: ab.size,
                },
                BufRange {
                    buf: b.buffer(),
                    offset: bb.offset,
                    size: bb.size,
                },
                bias_range,
                BufRange {
                    buf: out.buffer(),
                    offset: cb.offset,
                    size: cb.size,
                },
            ],
            u32_of(groups, "the workgroup count", "matmul")?,
        )?;
    }
    Ok(())
}

/// Most reduction steps one dispatch runs. llvmpipe (lavapipe) silently stops any shader loop
/// after 65,535 iterations, so a longer reduction (k > 262,140 in the register tile) would be
/// cut short; longer reductions are split into parts whose partial sums accumulate in C, which
/// also keeps single dispatches short (the Windows GPU timeout).
pub const MAX_K_PER_DISPATCH: usize = 1 << 15;

/// [`plan_bindings`], with every job's reduction split into parts of at most
/// [`MAX_K_PER_DISPATCH`] steps.
fn plan(gpu: &Gpu, l: &Layout) -> Result<Vec<Job>> {
    let mut out = Vec::new();
    for j in plan_bindings(gpu, l)? {
        if j.kc <= MAX_K_PER_DISPATCH {
            out.push(j);
            continue;
        }
        for k0 in (j.k0..j.k0 + j.kc).step_by(MAX_K_PER_DISPATCH) {
            out.push(Job {
                k0,
                kc: MAX_K_PER_DISPATCH.min(j.k0 + j.kc - k0),
                ..j
            });
        }
    }
    Ok(out)
}

/// Splits the work into dispatches whose bindings stay within the storage-binding cap: groups
/// of whole batches, else row ranges of one batch; and when a transposed A or a B must be bound
/// whole and is too large, ranges of the reduction whose partial sums accumulate in C.
fn plan_bindings(gpu: &Gpu, l: &Layout) -> Result<Vec<Job>> {
    let lim = gpu.kernel_limits();
    let cap = lim.max_storage_binding;
    // Bindings start at the aligned offset below their range: leave room for the difference.
    let room = cap.saturating_sub(lim.storage_offset_alignment);
    let (m, n, k) = (l.m, l.n, l.k);
    let whole = |nb: usize, b0: usize, r0: usize, nr: usize| Job {
        b0,
        nb,
        r0,
        nr,
        k0: 0,
        kc: k,
    };
    // Bytes bound whatever the row split: all of a transposed A's batch, all of B's.
    let a_fixed = if l.ta { (k * m) as u64 * 4 } else { 0 };
    let b_fixed = (k * n) as u64 * 4;
    if a_fixed <= room && b_fixed <= room {
        if l.batch == 1 {
            // Rows of C (and of A unless transposed) at aligned offsets.
            let mut row_bytes = vec![n as u64 * 4];
            if !l.ta {
                row_bytes.push(k as u64 * 4);
            }
            let chunks = gpu.row_chunks(m, &row_bytes)?;
            return Ok(chunks
                .into_iter()
                .map(|(r0, nr)| whole(1, 0, r0, nr))
                .collect());
        }
        // Whole batches per dispatch when they fit.
        let mut per_batch = vec![l.c_bs as u64 * 4];
        for bs in [l.a_bs, l.b_bs] {
            if bs != 0 {
                per_batch.push(bs as u64 * 4);
            }
        }
        if let Ok(chunks) = gpu.row_chunks(l.batch, &per_batch) {
            return Ok(chunks
                .into_iter()
                .map(|(b0, nb)| whole(nb, b0, 0, m))
                .collect());
        }
    }
    // One batch at a time: rows split, and the reduction too if needed.
    let kc = if a_fixed <= room && b_fixed <= room {
        k
    } else {
        if l.tb && b_fixed > room {
            return Err(too_large(
                "a transposed B (all of it is read for every row of C)",
                b_fixed,
                cap,
            ));
        }
        // Bytes per reduction step of the operands bound whole.
        let per_k = (if l.ta { m } else { 0 }).max(if l.tb { 0 } else { n }) as u64 * 4;
        let kc = (room / per_k.max(1)) as usize;
        let kc = if kc >= 4 { kc / 4 * 4 } else { kc };
        if kc == 0 {
            return Err(too_large(
                "one reduction step of a matmul operand",
                per_k,
                cap,
            ));
        }
        kc.min(k)
    };
    let mut widest = n as u64 * 4;
    if !l.ta {
        widest = widest.max(k as u64 * 4);
    }
    let rows = (room / widest.max(1)) as usize;
    if rows == 0 {
        return Err(too_large("one row of a matmul operand", widest, cap));
    }
    let mut jobs = Vec::new();
    for b0 in 0..l.batch {
        for r0 in (0..m).step_by(rows) {
            let nr = rows.min(m - r0);
            if k == 0 {
                jobs.push(whole(1, b0, r0, nr));
            }
            for k0 in (0..k).step_by(kc.max(1)) {
                jobs.push(Job {
                    b0,
                    nb: 1,
                    r0,
                    nr,
                    k0,
                    kc: kc.min(k - k0),
                });
            }
        }
    }
    Ok(jobs)
}

/// Plain-Rust reference of [`matmul`] with f64 accumulation, for tests and other modules.
///
/// `a` and `b` are row-major data of shapes `a_shape` and `b_shape`, read with the transpose
/// flags and activation of `opts` (its `bias` and `variant` are not read: the bias row, if any,
/// is `bias`). Returns the data and shape of the result.
pub fn matmul_cpu(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    bias: Option<&[f32]>,
    opts: &MatmulOpts,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let g = geometry(a_shape, b_shape, opts.trans_a, opts.trans_b)?;
    if a.len() != a_shape.iter().product::<usize>() || b.len() != b_shape.iter().product::<usize>()
    {
        return Err(Error::shape(
            "matmul_cpu",
            "data lengths do not match the shapes",
        ));
    }
    if let Some(bias) = bias {
        if bias.len() != g.n {
            return Err(Error::shape(
                "matmul_cpu",
                format!("bias has {} values, n = {}", bias.len(), g.n),
            ));
        }
    }
    let (m, n, k) = (g.m, g.n, g.k);
    let mut out = vec![0f32; g.batch * m * n];
    let mut row = vec![0f64; n];
    for bt in 0..g.batch {
        let a0 = if g.a_batched { bt * m * k } else { 0 };
        let b0 = if g.b_batched { bt * k * n } else { 0 };
        for i in 0..m {
            row.iter_mut().for_each(|v| *v = 0.0);
            for kk in 0..k {
                let av = if opts.trans_a {
                    a[a0 + kk * m + i]
                } else {
                    a[a0 + i * k + kk]
                } as f64;
                if opts.trans_b {
                    for (j, r) in row.iter_mut().enumerate() {
                        *r += av * b[b0 + j * k + kk] as f64;
                    }
                } else {
                    let br = &b[b0 + kk * n..b0 + kk * n + n];
                    for (r, &bv) in row.iter_mut().zip(br) {
                        *r += av * bv as f64;
                    }
                }
            }
            let o = &mut out[(bt * m + i) * n..(bt * m + i) * n + n];
            for (j, (dst, &v)) in o.iter_mut().zip(row.iter()).enumerate() {
                let v = v + bias.map_or(0.0, |bs| bs[j] as f64);
                *dst = opts.act.cpu(v as f32);
            }
        }
    }
    Ok((out, g.out_shape))
}

/// The CPU reference of one output row, `(batch, row)` = `at`, for spot checks of results too
/// large to recompute whole (f64 accumulation, as [`matmul_cpu`]).
pub fn matmul_cpu_row(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    bias: Option<&[f32]>,
    opts: &MatmulOpts,
    at: (usize, usize),
) -> Result<Vec<f32>> {
    let g = geometry(a_shape, b_shape, opts.trans_a, opts.trans_b)?;
    let (bt, i) = at;
    if bt >= g.batch || i >= g.m {
        return Err(Error::Invalid(format!(
            "matmul_cpu_row: row ({bt}, {i}) is outside {:?}",
            g.out_shape
        )));
    }
    let (m, n, k) = (g.m, g.n, g.k);
    let a0 = if g.a_batched { bt * m * k } else { 0 };
    let b0 = if g.b_batched { bt * k * n } else { 0 };
    let mut row = vec![0f64; n];
    for kk in 0..k {
        let av = if opts.trans_a {
            a[a0 + kk * m + i]
        } else {
            a[a0 + i * k + kk]
        } as f64;
        for (j, r) in row.iter_mut().enumerate() {
            let bv = if opts.trans_b {
                b[b0 + j * k + kk]
            } else {
                b[b0 + kk * n + j]
            };
            *r += av * bv as f64;
        }
    }
    Ok(row
        .into_iter()
        .enumerate()
        .map(|(j, v)| {
            opts.act
                .cpu((v + bias.map_or(0.0, |bs| bs[j] as f64)) as f32)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_checks() {
        let g = geometry(&[3, 5, 7], &[7, 2], false, false).unwrap();
        assert_eq!((g.batch, g.m, g.n, g.k), (3, 5, 2, 7));
        assert!(g.a_batched && !g.b_batched);
        assert_eq!(g.out_shape, vec![3, 5, 2]);
        let g = geometry(&[7, 5], &[4, 2, 7], true, true).unwrap();
        assert_eq!((g.batch, g.m, g.n, g.k), (4, 5, 2, 7));
        assert!(!g.a_batched && g.b_batched);
        assert!(geometry(&[5, 7], &[6, 2], false, false).is_err());
        assert!(geometry(&[2, 5, 7], &[3, 7, 2], false, false).is_err());
        assert!(geometry(&[7], &[7, 2], false, false).is_err());
    }

    #[test]
    fn register_tile_width_follows_the_output() {
        assert_eq!(reg_gx(10240, 80), 1);
        assert_eq!(reg_gx(10240, 1), 1);
        assert_eq!(reg_gx(1024, 1024), 8);
        assert_eq!(reg_gx(1, 40), 8);
        assert_eq!(reg_gx(32, 64), 4);
    }

    #[test]
    fn bind_aligns_down() {
        let b = bind(70, 10, 256);
        assert_eq!((b.offset, b.size, b.skip), (256, 280 + 40 - 256, 6));
    }
}

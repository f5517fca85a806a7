//! Launcher for `shaders/beam.wgsl`: one step of (constrained) beam search over a prefix trie of
//! semantic IDs, with plain-Rust references.
//!
//! Rows are laid out user-major, `beams` rows per user. A candidate of a user is a pair (beam
//! `b`, token `c`) numbered `j = b · vocab + c`, scored `score[b] + logp[b, c]`; when
//! constrained, only the pairs for which beam `b`'s trie node has a child along `c` count.
//! [`constrained_top_k`] keeps each user's first `beams` candidates in the order (score
//! descending, `j` ascending), so ties go to the lower (beam, token), and returns per (user,
//! slot) the new score, the parent beam, the token and the child node ([`INVALID`] where the
//! trie has no such edge; a beam at [`INVALID`] stays there). Slots left without a candidate
//! (a constrained user with fewer than `beams` trie continuations) get score −∞, parent 0,
//! token 0 and node [`INVALID`].
//!
//! The dispatches of one call: `child_table` (each row's child per token, by binary search of
//! the node's sorted children), `topk_raw` (one 256-invocation workgroup per user and window of
//! candidates, `beams` selection rounds of a strided scan and a tree reduction), `topk_merge`
//! while a user has more than one window's list, and `finalize`. Windows are sized so that no
//! invocation loops more than [`LOOP_BUDGET`] times per dispatch ([`top_k_plan`]); users are
//! cut into chunks that fit one storage binding, and dispatches of more than 65,535 workgroups
//! are folded. Nothing is read back.

use crate::error::{Error, Result};
use crate::gpu::ShaderSource;
use crate::kernels::launch::{check_f32, check_u32, elems, groups, rows_of, u32_of, WG};
use crate::kernels::LOOP_BUDGET;
use crate::tensor::{DType, Tensor};

/// The beam shader.
pub const SHADER: ShaderSource = ShaderSource {
    name: "beam",
    code: with_prelude!("beam.wgsl"),
};

/// The node of a beam, or the child along a token, where the trie has no such prefix.
pub const INVALID: u32 = u32::MAX;

/// Most beams [`constrained_top_k`] supports: each selection round costs an invocation about
/// ten fixed loop iterations (the reduction), so `beams` rounds must leave room in
/// [`LOOP_BUDGET`] for the scan, and a merge must take at least two lists at a time.
pub const MAX_BEAMS: usize = 1024;

uniform! {
    /// Uniform of every beam entry point; mirrors `Params` in beam.wgsl.
    struct Params {
        users: u32,
        beams: u32,
        vocab: u32,
        constrained: u32,
        win: u32,
        n_in: u32,
        n_out: u32,
        width: u32,
        neg_inf: f32,
        _pad: [u32; 3],
    }
}

impl Params {
    fn new(users: usize, beams: usize, vocab: usize, op: &'static str) -> Result<Params> {
        Ok(Params {
            users: u32_of(users, "users", op)?,
            beams: u32_of(beams, "beams", op)?,
            vocab: u32_of(vocab, "vocab", op)?,
            constrained: 0,
            win: 0,
            n_in: 0,
            n_out: 0,
            width: 0,
            neg_inf: f32::NEG_INFINITY,
            _pad: [0; 3],
        })
    }
}

/// The trie's children in CSR form, as u32 tensors: node `n`'s children are entries
/// `offsets[n]..offsets[n + 1]` of `tokens` (sorted ascending) and `children` (their nodes).
#[derive(Clone, Copy, Debug)]
pub struct TrieCsr<'a> {
    /// `[n_nodes + 1]` start of each node's children.
    pub offsets: &'a Tensor,
    /// `[n_edges]` token of each edge, sorted within a node.
    pub tokens: &'a Tensor,
    /// `[n_edges]` child node of each edge.
    pub children: &'a Tensor,
}

/// The outputs of [`constrained_top_k`], one element per (user, slot), user-major.
#[derive(Clone, Debug)]
pub struct TopK {
    /// f32 `[users · beams]`: the candidate's score, −∞ for an empty slot.
    pub score: Tensor,
    /// u32 `[users · beams]`: the beam (within its user) the candidate extends.
    pub parent: Tensor,
    /// u32 `[users · beams]`: the candidate's token.
    pub token: Tensor,
    /// u32 `[users · beams]`: the trie node of the extended prefix, or [`INVALID`].
    pub node: Tensor,
}

/// `(window, windows)`: candidates per `topk_raw` window and windows per user for `beams` beams
/// over `vocab` tokens. `beams` rounds of `window / 256` scan steps plus the reduction stay
/// within [`LOOP_BUDGET`]; more than one window means `topk_merge` dispatches follow.
pub fn top_k_plan(beams: usize, vocab: usize) -> (usize, usize) {
    let per = (LOOP_BUDGET / beams.max(1)).saturating_sub(12).max(1);
    let window = WG * per;
    (window, (beams * vocab).div_ceil(window).max(1))
}

/// One step of beam search: each user's first `beams` candidates among `logp [users · beams,
/// vocab]` added to the running `score [users · beams]` of beams at trie nodes `node [users ·
/// beams]`; with `constrained`, only trie children are candidates. See the module docs for the
/// order, ties and empty slots.
pub fn constrained_top_k(
    logp: &Tensor,
    score: &Tensor,
    node: &Tensor,
    trie: TrieCsr<'_>,
    beams: usize,
    constrained: bool,
) -> Result<TopK> {
    const OP: &str = "constrained_top_k";
    check_f32(logp, OP, "the log-probabilities")?;
    check_f32(score, OP, "the scores")?;
    check_u32(node, OP, "the beams' nodes")?;
    check_u32(trie.offsets, OP, "the trie offsets")?;
    check_u32(trie.tokens, OP, "the trie tokens")?;
    check_u32(trie.children, OP, "the trie children")?;
    if beams == 0 || beams > MAX_BEAMS {
        return Err(Error::Invalid(format!(
            "{OP}: beams must be in 1..={MAX_BEAMS}, not {beams}"
        )));
    }
    let (rows, vocab) = (logp.rows(), logp.cols());
    if logp.rank() != 2 || vocab == 0 || !rows.is_multiple_of(beams) {
        return Err(Error::shape(
            OP,
            format!(
                "log-probabilities {:?} must be [users · {beams}, vocab] with vocab ≥ 1",
                logp.shape()
            ),
        ));
    }
    for (t, what) in [(score, "scores"), (node, "nodes")] {
        if t.numel() != rows {
            return Err(Error::shape(
                OP,
                format!(
                    "the {what} {:?} must hold one value per row of the log-probabilities {:?}",
                    t.shape(),
                    logp.shape()
                ),
            ));
        }
    }
    if trie.offsets.numel() < 2 || trie.tokens.numel() != trie.children.numel() {
        return Err(Error::shape(
            OP,
            format!(
                "the trie CSR needs offsets of n_nodes + 1 ≥ 2 values and as many tokens as children, got {:?}, {:?}, {:?}",
                trie.offsets.shape(),
                trie.tokens.shape(),
                trie.children.shape()
            ),
        ));
    }
    u32_of(beams * vocab, "beams · vocab candidates", OP)?;
    let users = rows / beams;
    let gpu = logp.gpu();
    let out = TopK {
        score: Tensor::empty(gpu, &[rows])?,
        parent: Tensor::empty_typed(gpu, &[rows], DType::U32)?,
        token: Tensor::empty_typed(gpu, &[rows], DType::U32)?,
        node: Tensor::empty_typed(gpu, &[rows], DType::U32)?,
    };
    if users == 0 {
        return Ok(out);
    }
    let (window, n_win) = top_k_plan(beams, vocab);
    let row_bytes = (beams * vocab) as u64 * 4;
    for (u0, nu) in gpu.row_chunks(users, &[row_bytes, beams as u64 * 4])? {
        let r0 = u0 * beams;
        let nr = nu * beams;
        let mut p = Params::new(nu, beams, vocab, OP)?;
        p.constrained = u32::from(constrained);
        // The child of every (row, token) of this chunk.
        let dense = Tensor::empty_typed(gpu, &[nr * vocab], DType::U32)?;
        let cells = nr * vocab;
        let mut pc = p;
        pc.width = u32_of(cells, "rows · vocab", OP)?;
        gpu.dispatch(
            &SHADER,
            "child_table",
            &[],
            bytemuck::bytes_of(&pc),
            &[
                elems(node, r0, nr),
                trie.offsets.range(),
                trie.tokens.range(),
                trie.children.range(),
                dense.range(),
            ],
            groups(cells, WG, OP)?,
        )?;
        // Each window's list, then merges of `per_merge` lists until one is left per user.
        let mut lists = n_win;
        let mut cur_s = Tensor::empty(gpu, &[nu * lists * beams])?;
        let mut cur_i = Tensor::empty_typed(gpu, &[nu * lists * beams], DType::U32)?;
        let mut pr = p;
        pr.win = u32_of(window, "window", OP)?;
        pr.n_out = u32_of(lists, "windows", OP)?;
        gpu.dispatch(
            &SHADER,
            "topk_raw",
            &[],
            bytemuck::bytes_of(&pr),
            &[
                rows_of(logp, r0, nr, vocab),
                elems(score, r0, nr),
                dense.range(),
                cur_s.range(),
                cur_i.range(),
            ],
            groups(nu * lists, 1, OP)?,
        )?;
        let per_merge = (window / beams).max(2);
        while lists > 1 {
            let next = lists.div_ceil(per_merge);
            let ns = Tensor::empty(gpu, &[nu * next * beams])?;
            let ni = Tensor::empty_typed(gpu, &[nu * next * beams], DType::U32)?;
            let mut pm = p;
            pm.win = u32_of(per_merge, "lists per merge", OP)?;
            pm.n_in = u32_of(lists, "lists", OP)?;
            pm.n_out = u32_of(next, "merged lists", OP)?;
            gpu.dispatch(
                &SHADER,
                "topk_merge",
                &[],
                bytemuck::bytes_of(&pm),
                &[cur_s.range(), cur_i.range(), ns.range(), ni.range()],
                groups(nu * next, 1, OP)?,
            )?;
            (cur_s, cur_i, lists) = (ns, ni, next);
        }
        gpu.dispatch(
            &SHADER,
            "finalize",
            &[],
            bytemuck::bytes_of(&p),
            &[
                cur_s.range(),
                cur_i.range(),
                dense.range(),
                elems(&out.score, r0, nr),
                elems(&out.parent, r0, nr),
                elems(&out.token, r0, nr),
                elems(&out.node, r0, nr),
            ],
            groups(nr, WG, OP)?,
        )?;
    }
    Ok(out)
}

/// The prefixes after a step: row `r` of the result (`[rows, width + 1]`) is row `parent[r]` of
/// its user's `beams` rows of `prefixes [rows, width]` followed by `token[r]`. Parents are not
/// validated on the GPU; they come from [`constrained_top_k`], which only names beams below
/// `beams`.
pub fn extend_prefixes(
    prefixes: &Tensor,
    parent: &Tensor,
    token: &Tensor,
    beams: usize,
) -> Result<Tensor> {
    const OP: &str = "extend_prefixes";
    check_u32(prefixes, OP, "the prefixes")?;
    check_u32(parent, OP, "the parents")?;
    check_u32(token, OP, "the tokens")?;
    let rows = parent.numel();
    let width = if prefixes.rank() == 2 {
        prefixes.cols()
    } else {
        usize::MAX
    };
    if beams == 0
        || !rows.is_multiple_of(beams)
        || width == usize::MAX
        || prefixes.shape()[0] != rows
        || token.numel() != rows
    {
        return Err(Error::shape(
            OP,
            format!(
                "prefixes {:?} must be [rows, width] with the rows of parents {:?} and tokens {:?}, a multiple of beams = {beams}",
                prefixes.shape(),
                parent.shape(),
                token.shape()
            ),
        ));
    }
    let gpu = parent.gpu();
    let out = Tensor::empty_typed(gpu, &[rows, width + 1], DType::U32)?;
    let users = rows / beams;
    let rb = |w: usize| (beams * w) as u64 * 4;
    for (u0, nu) in gpu.row_chunks(users, &[rb(width), rb(width + 1), rb(1)])? {
        let (r0, nr) = (u0 * beams, nu * beams);
        let mut p = Params::new(nu, beams, 1, OP)?;
        p.width = u32_of(width, "width", OP)?;
        let cells = nr * (width + 1);
        u32_of(cells, "prefix elements", OP)?;
        gpu.dispatch(
            &SHADER,
            "extend_prefixes",
            &[],
            bytemuck::bytes_of(&p),
            &[
                rows_of(prefixes, r0, nr, width),
                elems(parent, r0, nr),
                elems(token, r0, nr),
                rows_of(&out, r0, nr, width + 1),
            ],
            groups(cells, WG, OP)?,
        )?;
    }
    Ok(out)
}

/// The outputs of [`constrained_top_k_cpu`], as [`TopK`] in plain vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct TopKCpu {
    /// Score per (user, slot).
    pub score: Vec<f32>,
    /// Parent beam per (user, slot).
    pub parent: Vec<u32>,
    /// Token per (user, slot).
    pub token: Vec<u32>,
    /// Child node per (user, slot), or [`INVALID`].
    pub node: Vec<u32>,
}

/// The child of `node` along `token` in a CSR trie, or [`INVALID`].
pub fn trie_child_cpu(
    offsets: &[u32],
    tokens: &[u32],
    children: &[u32],
    node: u32,
    token: u32,
) -> u32 {
    if node == INVALID {
        return INVALID;
    }
    let (a, b) = (
        offsets[node as usize] as usize,
        offsets[node as usize + 1] as usize,
    );
    match tokens[a..b].binary_search(&token) {
        Ok(k) => children[a + k],
        Err(_) => INVALID,
    }
}

/// CPU reference of [`constrained_top_k`]: `logp` is `[users · beams, vocab]`, `score` and
/// `node` `[users · beams]`, the trie in CSR form as in [`TrieCsr`].
#[allow(clippy::too_many_arguments)]
pub fn constrained_top_k_cpu(
    logp: &[f32],
    score: &[f32],
    node: &[u32],
    offsets: &[u32],
    tokens: &[u32],
    children: &[u32],
    beams: usize,
    vocab: usize,
    constrained: bool,
) -> TopKCpu {
    let users = score.len() / beams.max(1);
    let mut out = TopKCpu {
        score: Vec::with_capacity(users * beams),
        parent: Vec::with_capacity(users * beams),
        token: Vec::with_capacity(users * beams),
        node: Vec::with_capacity(users * beams),
    };
    for u in 0..users {
        let mut cands: Vec<(f32, usize, u32)> = Vec::new();
        for b in 0..beams {
            let row = u * beams + b;
            for c in 0..vocab {
                let child = trie_child_cpu(offsets, tokens, children, node[row], c as u32);
                if constrained && child == INVALID {
                    continue;
                }
                cands.push((score[row] + logp[row * vocab + c], b * vocab + c, child));
            }
        }
        cands.sort_by(|x, y| {
            y.0.partial_cmp(&x.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(x.1.cmp(&y.1))
        });
        for slot in 0..beams {
            match cands.get(slot) {
                Some(&(s, j, child)) => {
                    out.score.push(s);
                    out.parent.push((j / vocab) as u32);
                    out.token.push((j % vocab) as u32);
                    out.node.push(child);
                }
                None => {
                    out.score.push(f32::NEG_INFINITY);
                    out.parent.push(0);
                    out.token.push(0);
                    out.node.push(INVALID);
                }
            }
        }
    }
    out
}

/// CPU reference of [`extend_prefixes`]: `prefixes` is `[rows, width]`.
pub fn extend_prefixes_cpu(
    prefixes: &[u32],
    width: usize,
    parent: &[u32],
    token: &[u32],
    beams: usize,
) -> Vec<u32> {
    let mut out = Vec::with_capacity(parent.len() * (width + 1));
    for (r, (&p, &t)) in parent.iter().zip(token).enumerate() {
        let src = (r / beams) * beams + p as usize;
        out.extend_from_slice(&prefixes[src * width..(src + 1) * width]);
        out.push(t);
    }
    out
}

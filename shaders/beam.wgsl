// Constrained beam-search steps (`kernels::beam`): the trie child table of the live beams, the
// per-user top-k over (beam, token) candidates, the step's outputs and the extended prefixes.
//
// A candidate is a (beam b, token c) pair of one user, numbered j = b * vocab + c: its score is
// score[b] + logp[b, c], and the order is (score descending, j ascending), so ties go to the
// lower (beam, token). `NONE` (u32::MAX) marks both an absent trie edge and an empty slot.
// The top-k runs as `beams` selection rounds in one 256-invocation workgroup per (user, window
// of candidates): each round every invocation finds its best candidate strictly after the
// previous round's winner, and a tree reduction picks the workgroup's. Windows (and the merges
// of their lists) keep each invocation within `kernels::LOOP_BUDGET` loop iterations.

const NONE: u32 = 0xffffffffu;

struct Params {
    users: u32,       // users of this dispatch (the bindings start at its first user)
    beams: u32,       // beams per user, in and out
    vocab: u32,       // tokens at this position
    constrained: u32, // 1: only trie children are candidates
    win: u32,         // candidates per window (topk_raw) or lists per group (topk_merge)
    n_in: u32,        // lists per user read (topk_merge)
    n_out: u32,       // windows or groups per user written
    width: u32,       // prefix length before this step (extend_prefixes); elements (flat kernels)
    neg_inf: f32,     // -inf, for empty slots (WGSL has no infinite literal)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// ---- child_table: dense[row, c] = the trie child of node[row] along token c, or NONE.
@group(0) @binding(1) var<storage, read> ct_node: array<u32>;
@group(0) @binding(2) var<storage, read> ct_off: array<u32>;
@group(0) @binding(3) var<storage, read> ct_tok: array<u32>;
@group(0) @binding(4) var<storage, read> ct_child: array<u32>;
@group(0) @binding(5) var<storage, read_write> ct_out: array<u32>;

@compute @workgroup_size(256)
fn child_table(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    if (e >= p.width) { return; }
    let row = e / p.vocab;
    let c = e - row * p.vocab;
    let n = ct_node[row];
    var out = NONE;
    if (n != NONE) {
        // Binary search of c among the node's children, sorted by token: at most 33 steps.
        var lo = ct_off[n];
        var hi = ct_off[n + 1u];
        while (lo < hi) {
            let mid = lo + (hi - lo) / 2u;
            let t = ct_tok[mid];
            if (t == c) { out = ct_child[mid]; break; }
            if (t < c) { lo = mid + 1u; } else { hi = mid; }
        }
    }
    ct_out[e] = out;
}

// ---- selection (topk_raw, topk_merge)
var<workgroup> sh_s: array<f32, 256>;
var<workgroup> sh_i: array<u32, 256>;

// Whether candidate (as, ai) comes before (bs, bi): NONE comes after everything.
fn before(as_: f32, ai: u32, bs: f32, bi: u32) -> bool {
    if (ai == NONE) { return false; }
    if (bi == NONE) { return true; }
    return as_ > bs || (as_ == bs && ai < bi);
}

// The workgroup's first candidate of every invocation's (s, i); every invocation returns it.
fn reduce_best(lid: u32, s: f32, i: u32) -> vec2<u32> {
    sh_s[lid] = s;
    sh_i[lid] = i;
    workgroupBarrier();
    for (var off = 128u; off > 0u; off = off >> 1u) {
        if (lid < off) {
            let os = sh_s[lid + off];
            let oi = sh_i[lid + off];
            if (before(os, oi, sh_s[lid], sh_i[lid])) {
                sh_s[lid] = os;
                sh_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    let w = vec2<u32>(bitcast<u32>(sh_s[0]), sh_i[0]);
    workgroupBarrier();
    return w;
}

@group(0) @binding(1) var<storage, read> r_logp: array<f32>;
@group(0) @binding(2) var<storage, read> r_score: array<f32>;
@group(0) @binding(3) var<storage, read> r_dense: array<u32>;
@group(0) @binding(4) var<storage, read_write> r_out_s: array<f32>;
@group(0) @binding(5) var<storage, read_write> r_out_i: array<u32>;

// One workgroup per (user, window of `win` candidates): the window's first `beams` candidates
// in order, written as list [user, window] of (score, j), NONE-padded.
@compute @workgroup_size(256)
fn topk_raw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid3: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    if (wid >= p.users * p.n_out) { return; }
    let lid = lid3.x;
    let u = wid / p.n_out;
    let g = wid - u * p.n_out;
    let total = p.beams * p.vocab;
    let j0 = g * p.win;
    let j1 = min(j0 + p.win, total);
    var prev_s = 0.0;
    var prev_i = NONE;
    var first = true;
    for (var r = 0u; r < p.beams; r = r + 1u) {
        var best_s = 0.0;
        var best_i = NONE;
        // After an empty round there is nothing left: skip the scan.
        if (first || prev_i != NONE) {
            for (var j = j0 + lid; j < j1; j = j + 256u) {
                let b = j / p.vocab;
                let c = j - b * p.vocab;
                let row = u * p.beams + b;
                if (p.constrained != 0u && r_dense[row * p.vocab + c] == NONE) { continue; }
                let s = r_score[row] + r_logp[row * p.vocab + c];
                if (!first && !before(prev_s, prev_i, s, j)) { continue; }
                if (before(s, j, best_s, best_i)) {
                    best_s = s;
                    best_i = j;
                }
            }
        }
        let w = reduce_best(lid, best_s, best_i);
        prev_s = bitcast<f32>(w.x);
        prev_i = w.y;
        first = false;
        if (lid == 0u) {
            r_out_s[wid * p.beams + r] = prev_s;
            r_out_i[wid * p.beams + r] = prev_i;
        }
    }
}

@group(0) @binding(1) var<storage, read> m_in_s: array<f32>;
@group(0) @binding(2) var<storage, read> m_in_i: array<u32>;
@group(0) @binding(3) var<storage, read_write> m_out_s: array<f32>;
@group(0) @binding(4) var<storage, read_write> m_out_i: array<u32>;

// One workgroup per (user, group of `win` lists of [user, n_in] lists): their first `beams`
// candidates, written as list [user, group].
@compute @workgroup_size(256)
fn topk_merge(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid3: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    if (wid >= p.users * p.n_out) { return; }
    let lid = lid3.x;
    let u = wid / p.n_out;
    let g = wid - u * p.n_out;
    let l0 = g * p.win;
    let l1 = min(l0 + p.win, p.n_in);
    let base = (u * p.n_in + l0) * p.beams;
    let count = (l1 - l0) * p.beams;
    var prev_s = 0.0;
    var prev_i = NONE;
    var first = true;
    for (var r = 0u; r < p.beams; r = r + 1u) {
        var best_s = 0.0;
        var best_i = NONE;
        if (first || prev_i != NONE) {
            for (var k = lid; k < count; k = k + 256u) {
                let s = m_in_s[base + k];
                let j = m_in_i[base + k];
                if (j == NONE) { continue; }
                if (!first && !before(prev_s, prev_i, s, j)) { continue; }
                if (before(s, j, best_s, best_i)) {
                    best_s = s;
                    best_i = j;
                }
            }
        }
        let w = reduce_best(lid, best_s, best_i);
        prev_s = bitcast<f32>(w.x);
        prev_i = w.y;
        first = false;
        if (lid == 0u) {
            m_out_s[wid * p.beams + r] = prev_s;
            m_out_i[wid * p.beams + r] = prev_i;
        }
    }
}

// ---- finalize: list [user, beams] of (score, j) -> new score, parent beam, token, child node.
@group(0) @binding(1) var<storage, read> f_in_s: array<f32>;
@group(0) @binding(2) var<storage, read> f_in_i: array<u32>;
@group(0) @binding(3) var<storage, read> f_dense: array<u32>;
@group(0) @binding(4) var<storage, read_write> f_score: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_parent: array<u32>;
@group(0) @binding(6) var<storage, read_write> f_token: array<u32>;
@group(0) @binding(7) var<storage, read_write> f_node: array<u32>;

@compute @workgroup_size(256)
fn finalize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wg, nwg, lid);
    if (r >= p.users * p.beams) { return; }
    let j = f_in_i[r];
    if (j == NONE) {
        f_score[r] = p.neg_inf;
        f_parent[r] = 0u;
        f_token[r] = 0u;
        f_node[r] = NONE;
        return;
    }
    let u = r / p.beams;
    let b = j / p.vocab;
    let c = j - b * p.vocab;
    f_score[r] = f_in_s[r];
    f_parent[r] = b;
    f_token[r] = c;
    f_node[r] = f_dense[(u * p.beams + b) * p.vocab + c];
}

// ---- extend_prefixes: new[r] = old[user's row parent[r]] ++ token[r], rows of `width` + 1.
@group(0) @binding(1) var<storage, read> e_old: array<u32>;
@group(0) @binding(2) var<storage, read> e_parent: array<u32>;
@group(0) @binding(3) var<storage, read> e_token: array<u32>;
@group(0) @binding(4) var<storage, read_write> e_new: array<u32>;

@compute @workgroup_size(256)
fn extend_prefixes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    let w1 = p.width + 1u;
    if (e >= p.users * p.beams * w1) { return; }
    let r = e / w1;
    let q = e - r * w1;
    if (q == p.width) {
        e_new[e] = e_token[r];
    } else {
        let u = r / p.beams;
        e_new[e] = e_old[(u * p.beams + e_parent[r]) * p.width + q];
    }
}

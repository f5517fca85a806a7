// Multi-head scaled dot-product attention with a key-padding mask, fused and tiled over keys
// with an online (running-max) softmax, so no [batch, heads, seq, seq] score buffer exists.
//
// Layout: a token row of Q, K and V holds every head side by side (`heads * head_dim` values,
// as they come out of the projection matmuls), possibly inside a wider packed row (one fused
// QKV matmul): element `d` of head `h` of token `i` of sequence `b` is at
//   X[(b * seq + i) * x_rs + x_off + h * head_dim + d].
// The output is dense: [batch, seq, heads * head_dim].
//
// Sequence `b` has `len = min(lens[b0 + b], seq)` real tokens: query row `i < len` attends to
// keys `0..len`; rows `i >= len` are padding and are written as zeros (so a sequence of length
// 0, fully masked, gives zeros, never NaN).
//
// A workgroup of WG invocations takes one (sequence, head) and WG consecutive query rows, one
// row per invocation: every invocation reads the same key and value rows at the same time
// (workgroup-uniform addresses). Keys are taken in tiles of KT: the tile's scores are kept in
// registers, the running max is raised once per tile and the accumulator rescaled by
// exp(m_old - m_new). No barriers, no workgroup memory. The linear workgroup id is
// wg.x + wg.y * nwg.x (the launcher folds large counts) = ((b * heads) + h) * blocks + block.
//
// Key ranges: a dispatch takes the keys [kbeg, kend) only. Unless it has the first range it
// continues from the unnormalised accumulator left in `out` and the running max and sum left in
// `st` (two floats per query row and head); unless it has the last range it leaves them there
// instead of the normalised output. The launcher splits long sequences so that no invocation
// loops more than llvmpipe allows (65,535 iterations in all; see LOOP_BUDGET in
// src/kernels/mod.rs); `st` is a dummy when there is one range.
//
// `add_layernorm` (after the attention entry) is the transformer block's residual step:
// y = layernorm(a + b) · gamma + beta, one row per invocation, barrier-free.

struct Params {
    batch: u32,     // sequences in this dispatch
    seq: u32,       // padded tokens per sequence
    heads: u32,
    head_dim: u32,
    q_rs: u32,      // row strides of Q, K, V (elements per token row)
    k_rs: u32,
    v_rs: u32,
    o_rs: u32,      // row stride of the output (heads * head_dim)
    q_off: u32,     // column offsets of Q, K, V inside their rows
    k_off: u32,
    v_off: u32,
    b0: u32,        // index in `lens` of this dispatch's first sequence
    scale: f32,     // multiplies q·k (usually 1/sqrt(head_dim))
    kbeg: u32,      // first key of this dispatch's range (a multiple of KT)
    kend: u32,      // end of the key range
    flags: u32,     // bit 0: first range (start from nothing); bit 1: last range (normalise)
};

const WG: u32 = 32u;
const MAX_DH: u32 = 128u;   // largest head_dim (the launcher checks)
const KT: u32 = 16u;        // keys per tile
const MAX_DH4: u32 = 32u;   // MAX_DH / 4

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> lens: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> st: array<f32>;

@compute @workgroup_size(32)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    let blocks = (p.seq + WG - 1u) / WG;
    if (wid >= p.batch * p.heads * blocks) { return; }
    let blk = wid % blocks;
    let bh = wid / blocks;
    let h = bh % p.heads;
    let b = bh / p.heads;
    let i = blk * WG + lid.x;
    if (i >= p.seq) { return; }
    let row = b * p.seq + i;
    let len = min(lens[p.b0 + b], p.seq);
    let dh = p.head_dim;
    let ob = row * p.o_rs + h * dh;
    let first_range = (p.flags & 1u) != 0u;
    let last_range = (p.flags & 2u) != 0u;
    if (i >= len) {
        if (first_range) {
            for (var d = 0u; d < dh; d++) { out[ob + d] = 0.0; }
        }
        return;
    }

    var qv: array<f32, MAX_DH>;
    var acc: array<f32, MAX_DH>;
    var s: array<f32, KT>;
    let qb = row * p.q_rs + p.q_off + h * dh;
    let si = 2u * (row * p.heads + h);
    var m = -3.0e38;                // running max of the scores
    var l = 0.0;                    // running sum of exp(score - m)
    if (!first_range) {
        m = st[si];
        l = st[si + 1u];
    }
    for (var d = 0u; d < dh; d++) {
        qv[d] = q[qb + d] * p.scale;
        acc[d] = 0.0;
    }
    if (!first_range) {
        for (var d = 0u; d < dh; d++) { acc[d] = out[ob + d]; }
    }
    let first = b * p.seq;          // token row of key 0 of this sequence
    let kh = p.k_off + h * dh;
    let vh = p.v_off + h * dh;
    let kend = min(p.kend, len);
    for (var j0 = p.kbeg; j0 < kend; j0 += KT) {
        let n = min(KT, kend - j0);
        var mt = m;
        for (var u = 0u; u < n; u++) {
            let kb = (first + j0 + u) * p.k_rs + kh;
            var dot = 0.0;
            for (var d = 0u; d < dh; d++) { dot += qv[d] * k[kb + d]; }
            s[u] = dot;
            mt = max(mt, dot);
        }
        // Rescale what was accumulated under the old max (exp(-huge) = 0 on the first tile).
        let corr = exp(m - mt);
        l *= corr;
        for (var d = 0u; d < dh; d++) { acc[d] *= corr; }
        for (var u = 0u; u < n; u++) {
            let w = exp(s[u] - mt);
            l += w;
            let vb = (first + j0 + u) * p.v_rs + vh;
            for (var d = 0u; d < dh; d++) { acc[d] += w * v[vb + d]; }
        }
        m = mt;
    }
    if (!last_range) {
        for (var d = 0u; d < dh; d++) { out[ob + d] = acc[d]; }
        st[si] = m;
        st[si + 1u] = l;
        return;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < dh; d++) { out[ob + d] = acc[d] * inv; }
}

// The same computation with vec4 loads and stores, for head_dim, the row strides and the column
// offsets all multiples of 4 (the launcher checks): indices below count vec4s.
@group(0) @binding(1) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(32)
fn attention_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    let blocks = (p.seq + WG - 1u) / WG;
    if (wid >= p.batch * p.heads * blocks) { return; }
    let blk = wid % blocks;
    let bh = wid / blocks;
    let h = bh % p.heads;
    let b = bh / p.heads;
    let i = blk * WG + lid.x;
    if (i >= p.seq) { return; }
    let row = b * p.seq + i;
    let len = min(lens[p.b0 + b], p.seq);
    let dh4 = p.head_dim / 4u;
    let ob = (row * p.o_rs + h * p.head_dim) / 4u;
    let first_range = (p.flags & 1u) != 0u;
    let last_range = (p.flags & 2u) != 0u;
    if (i >= len) {
        if (first_range) {
            for (var d = 0u; d < dh4; d++) { out4[ob + d] = vec4(0.0); }
        }
        return;
    }

    var qv: array<vec4<f32>, MAX_DH4>;
    var acc: array<vec4<f32>, MAX_DH4>;
    var s: array<f32, KT>;
    let qb = (row * p.q_rs + p.q_off + h * p.head_dim) / 4u;
    let si = 2u * (row * p.heads + h);
    var m = -3.0e38;
    var l = 0.0;
    if (!first_range) {
        m = st[si];
        l = st[si + 1u];
    }
    for (var d = 0u; d < dh4; d++) {
        qv[d] = q4[qb + d] * p.scale;
        acc[d] = vec4(0.0);
    }
    if (!first_range) {
        for (var d = 0u; d < dh4; d++) { acc[d] = out4[ob + d]; }
    }
    let first = b * p.seq;
    let kh = p.k_off + h * p.head_dim;
    let vh = p.v_off + h * p.head_dim;
    let kend = min(p.kend, len);
    for (var j0 = p.kbeg; j0 < kend; j0 += KT) {
        let n = min(KT, kend - j0);
        var mt = m;
        for (var u = 0u; u < n; u++) {
            let kb = ((first + j0 + u) * p.k_rs + kh) / 4u;
            var dv = vec4(0.0);
            for (var d = 0u; d < dh4; d++) { dv = fma(qv[d], k4[kb + d], dv); }
            let dot = (dv.x + dv.y) + (dv.z + dv.w);
            s[u] = dot;
            mt = max(mt, dot);
        }
        let corr = exp(m - mt);
        l *= corr;
        for (var d = 0u; d < dh4; d++) { acc[d] *= corr; }
        for (var u = 0u; u < n; u++) {
            let w = exp(s[u] - mt);
            l += w;
            let vb = ((first + j0 + u) * p.v_rs + vh) / 4u;
            for (var d = 0u; d < dh4; d++) { acc[d] = fma(vec4(w), v4[vb + d], acc[d]); }
        }
        m = mt;
    }
    if (!last_range) {
        for (var d = 0u; d < dh4; d++) { out4[ob + d] = acc[d]; }
        st[si] = m;
        st[si + 1u] = l;
        return;
    }
    let inv = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < dh4; d++) { out4[ob + d] = acc[d] * inv; }
}

struct LnParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
};

@group(0) @binding(0) var<uniform> lp: LnParams;
@group(0) @binding(1) var<storage, read> ln_a: array<f32>;
@group(0) @binding(2) var<storage, read> ln_b: array<f32>;
@group(0) @binding(3) var<storage, read> ln_gamma: array<f32>;
@group(0) @binding(4) var<storage, read> ln_beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> ln_y: array<f32>;

// y = (s - mean(s)) / sqrt(var(s) + eps) * gamma + beta with s = a + b, per row of `cols`
// values (biased variance, two passes over s, which is staged in y).
@compute @workgroup_size(64)
fn add_layernorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_wid(wg, nwg) * 64u + lid.x;
    if (r >= lp.rows) { return; }
    let n = lp.cols;
    let base = r * n;
    var sum = 0.0;
    for (var c = 0u; c < n; c++) {
        let v = ln_a[base + c] + ln_b[base + c];
        ln_y[base + c] = v;
        sum += v;
    }
    let mean = sum / f32(n);
    var sq = 0.0;
    for (var c = 0u; c < n; c++) {
        let d = ln_y[base + c] - mean;
        sq += d * d;
    }
    let rstd = inverseSqrt(sq / f32(n) + lp.eps);
    for (var c = 0u; c < n; c++) {
        ln_y[base + c] = (ln_y[base + c] - mean) * rstd * ln_gamma[c] + ln_beta[c];
    }
}

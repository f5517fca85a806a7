// The materialised steps of trainable attention (src/kernels/attention_train.rs): the head
// split and merge, and the masked, scaled row softmax over the score matrices.
//
// `heads`: a flat permutation, one element per invocation (256 per workgroup, linear id
// (wg.x + wg.y * nwg.x) * 256 + lid.x, bounds-checked against `hp.n`). A dispatch covers whole
// sequences, so the chunk's indices start at a sequence boundary in both layouts.
//
// `masked_softmax`: one 256-invocation workgroup per row of scores (row = wg.x + wg.y * nwg.x,
// checked against `sp.rows`, a workgroup-uniform test so the barriers stay in uniform control
// flow). The keys a row may attend to are always a prefix [0, lim) of the row: padding keys sit
// at the end, and a causal query i sees keys 0..=i. So the row is a plain softmax over that
// prefix, and zeros after it. The walk over columns is the one of norm.wgsl's softmax_rows:
// short rows run both passes in one dispatch; longer ones (llvmpipe stops an invocation after
// 65,535 loop iterations; see LOOP_BUDGET in src/kernels/mod.rs) run the statistics pass, then
// the writing pass, over windows of columns, one dispatch each, carrying (max, sum) per row in
// `sm_st`.

struct HeadsParams {
    n: u32,         // elements of this dispatch
    seq: u32,       // tokens per sequence
    heads: u32,
    head_dim: u32,
};

struct SoftmaxParams {
    rows: u32,      // rows of scores in this dispatch
    cols: u32,      // keys per row
    sq: u32,        // query rows per (sequence, head) matrix
    heads: u32,
    row0: u32,      // this dispatch's first row in the whole tensor (to find b and i)
    c0: u32,        // the window of columns [c0, c1) of this dispatch
    c1: u32,
    flags: u32,     // bit 0 statistics pass, bit 1 writing pass, bit 2 first window, bit 3 causal
    scale: f32,     // multiplies every score before the softmax
    _p0: u32,
    _p1: u32,
    _p2: u32,
};

@group(0) @binding(0) var<uniform> hp: HeadsParams;
@group(0) @binding(1) var<storage, read> h_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> h_out: array<f32>;

// heads: 0 split [B, S, H*D] -> [B*H, S, D]; 1 merge, the inverse.
override MERGE: u32 = 0u;

@compute @workgroup_size(256)
fn heads(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    if (e >= hp.n) { return; }
    let d = e % hp.head_dim;
    let t = e / hp.head_dim;
    var src = 0u;
    if (MERGE == 0u) {
        // e indexes [B, H, S, D]; read [B, S, H, D].
        let s = t % hp.seq;
        let u = t / hp.seq;
        let h = u % hp.heads;
        let b = u / hp.heads;
        src = ((b * hp.seq + s) * hp.heads + h) * hp.head_dim + d;
    } else {
        // e indexes [B, S, H, D]; read [B, H, S, D].
        let h = t % hp.heads;
        let u = t / hp.heads;
        let s = u % hp.seq;
        let b = u / hp.seq;
        src = ((b * hp.heads + h) * hp.seq + s) * hp.head_dim + d;
    }
    h_out[e] = h_in[src];
}

@group(0) @binding(0) var<uniform> sp: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> q_lens: array<u32>;
@group(0) @binding(4) var<storage, read> k_lens: array<u32>;
@group(0) @binding(5) var<storage, read_write> sm_st: array<f32>;

// Whether q_lens / k_lens are bound (an absent one is a dummy, and means full length).
override HAS_QLEN: u32 = 0u;
override HAS_KLEN: u32 = 0u;

const WG: u32 = 256u;

var<workgroup> sh_m: array<f32, 256>;
var<workgroup> sh_s: array<f32, 256>;

// The allowed prefix [0, lim) of keys of `row` (local to the dispatch): lim = 0 for a padding
// query row, else min(cols, k_len[b], i + 1 if causal). Lengths above the sequence clamp here.
fn allowed_keys(row: u32) -> u32 {
    let g = sp.row0 + row;
    let i = g % sp.sq;
    let b = (g / sp.sq) / sp.heads;
    var lim = sp.cols;
    if (HAS_KLEN != 0u) { lim = min(lim, k_lens[b]); }
    if ((sp.flags & 8u) != 0u) { lim = min(lim, i + 1u); }
    if (HAS_QLEN != 0u) {
        if (i >= q_lens[b]) { lim = 0u; }
    }
    return lim;
}

// p = softmax(scale * x) over the allowed prefix, zeros elsewhere (all zeros when lim = 0, so
// never NaN). The online (max, sum) starts from the row's first score, which every non-empty
// prefix holds, so no infinities are needed and empty windows combine harmlessly.
@compute @workgroup_size(256)
fn masked_softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= sp.rows) { return; }
    let lid = lid3.x;
    let base = row * sp.cols;
    let lim = allowed_keys(row);
    var row_max = 0.0;
    var total = 0.0;
    if ((sp.flags & 1u) != 0u) {
        var m = 0.0;
        if (lim > 0u) { m = sp.scale * x[base]; }
        var s = 0.0;
        let end = min(sp.c1, lim);
        for (var c = sp.c0 + lid; c < end; c += WG) {
            let v = sp.scale * x[base + c];
            if (v > m) {
                s = s * exp(m - v) + 1.0;
                m = v;
            } else {
                s += exp(v - m);
            }
        }
        sh_m[lid] = m;
        sh_s[lid] = s;
        workgroupBarrier();
        for (var k = WG / 2u; k > 0u; k >>= 1u) {
            if (lid < k) {
                let m1 = sh_m[lid];
                let m2 = sh_m[lid + k];
                let mm = max(m1, m2);
                sh_s[lid] = sh_s[lid] * exp(m1 - mm) + sh_s[lid + k] * exp(m2 - mm);
                sh_m[lid] = mm;
            }
            workgroupBarrier();
        }
        row_max = sh_m[0];
        total = sh_s[0];
        if ((sp.flags & 2u) == 0u) {
            if (lid == 0u) {
                if ((sp.flags & 4u) == 0u) {
                    let pm = sm_st[2u * row];
                    let mm = max(pm, row_max);
                    total = sm_st[2u * row + 1u] * exp(pm - mm) + total * exp(row_max - mm);
                    row_max = mm;
                }
                sm_st[2u * row] = row_max;
                sm_st[2u * row + 1u] = total;
            }
            return;
        }
    } else {
        row_max = sm_st[2u * row];
        total = sm_st[2u * row + 1u];
    }
    for (var c = sp.c0 + lid; c < sp.c1; c += WG) {
        var v = 0.0;
        if (c < lim) {
            v = exp(sp.scale * x[base + c] - row_max) / total;
        }
        y[base + c] = v;
    }
}

// Short rows (the launcher's NARROW_MAX keys at most, in one window): one row per invocation,
// no barriers. On CPU adapters a 256-wide workgroup per row of, say, 80 keys spends nearly all
// its time in idle invocations and barriers; three passes over a short row are far cheaper.
@compute @workgroup_size(64)
fn masked_softmax_narrow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg) * 64u + lid3.x;
    // Never true: names the state buffer so both entries share one bind-group layout.
    if (row == 0xffffffffu) { sm_st[0] = 0.0; }
    if (row >= sp.rows) { return; }
    let base = row * sp.cols;
    let lim = allowed_keys(row);
    var m = 0.0;
    if (lim > 0u) { m = sp.scale * x[base]; }
    for (var c = 1u; c < lim; c++) {
        m = max(m, sp.scale * x[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < lim; c++) {
        s += exp(sp.scale * x[base + c] - m);
    }
    for (var c = 0u; c < sp.cols; c++) {
        var v = 0.0;
        if (c < lim) {
            v = exp(sp.scale * x[base + c] - m) / s;
        }
        y[base + c] = v;
    }
}

// Row reductions over the last dimension, arg-reductions, and deterministic multi-pass column
// and full sums.
//
// Row kernels (`reduce_rows`, `arg_rows`): one 256-invocation workgroup per row. Invocation
// `lid` folds columns lid, lid+256, ... in increasing order, then a fixed shared-memory tree
// combines the 256 partials, so the reduction order depends only on the shape. The dispatch is
// a linear count of workgroups folded over x and y: row = wg.x + wg.y * nwg.x (bounds-checked;
// the check is workgroup-uniform, so the barriers stay in uniform control flow).
// A dispatch folds the columns [c0, c1) of each row. Rows too long for one dispatch (llvmpipe
// stops an invocation after 65,535 loop iterations; see LOOP_BUDGET in src/kernels/mod.rs) are
// walked in windows: each window combines its result with the running one left in `out` (a
// raw sum for mean and L2, the log-sum-exp so far, or the index of the best so far), and only
// the last window finishes it.
//
// Column sums (`col_partial`) and the full sum (`sum_flat`) are tree passes: each workgroup
// reduces a fixed block to one partial and writes it at `out_base + block id`; the launcher
// repeats passes until one row (or one value) is left. Their loops are bounded by the fixed
// blocks (64 and 16 steps per invocation) whatever the shape. No atomics anywhere.

struct Params {
    rows: u32,      // rows of this dispatch (row kernels, col_partial)
    cols: u32,      // columns (row kernels, col_partial); element count for sum_flat
    out_base: u32,  // first output element written by this dispatch (col_partial, sum_flat)
    block: u32,     // rows per workgroup (col_partial); elements per workgroup (sum_flat)
    c0: u32,        // row kernels: the window of columns [c0, c1) of this dispatch
    c1: u32,
    flags: u32,     // row kernels: bit 0 first window (nothing to combine), bit 1 last window
    _pad: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_idx: array<u32>;

// Row reduction op: 0 sum, 1 mean, 2 max, 3 min, 4 L2 norm, 5 logsumexp.
// Arg op (arg_rows): 0 argmax, 1 argmin.
override OP: u32 = 0u;

const WG: u32 = 256u;

var<workgroup> sh_a: array<f32, 256>;
var<workgroup> sh_b: array<f32, 256>;
var<workgroup> sh_i: array<u32, 256>;

@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    // Max, min and logsumexp start from the row's first element: an identity that is always
    // part of the row, so no infinities are needed.
    let x0 = x[base];
    var a = 0.0;
    var b = 0.0;   // logsumexp: sum of exp(v - a)
    if (OP == 2u || OP == 3u || OP == 5u) { a = x0; }
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        let v = x[base + c];
        if (OP == 0u || OP == 1u) {
            a += v;
        } else if (OP == 2u) {
            a = max(a, v);
        } else if (OP == 3u) {
            a = min(a, v);
        } else if (OP == 4u) {
            a += v * v;
        } else {
            // Online logsumexp: a is the running max, b the sum scaled by exp(-a).
            if (v > a) {
                b = b * exp(a - v) + 1.0;
                a = v;
            } else {
                b += exp(v - a);
            }
        }
    }
    sh_a[lid] = a;
    sh_b[lid] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let a1 = sh_a[lid];
            let a2 = sh_a[lid + s];
            if (OP == 0u || OP == 1u || OP == 4u) {
                sh_a[lid] = a1 + a2;
            } else if (OP == 2u) {
                sh_a[lid] = max(a1, a2);
            } else if (OP == 3u) {
                sh_a[lid] = min(a1, a2);
            } else {
                let m = max(a1, a2);
                sh_b[lid] = sh_b[lid] * exp(a1 - m) + sh_b[lid + s] * exp(a2 - m);
                sh_a[lid] = m;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = sh_a[0];
        if (OP == 5u) {
            r = r + log(sh_b[0]);
        }
        if ((p.flags & 1u) == 0u) {
            let prev = out[row];
            if (OP == 0u || OP == 1u || OP == 4u) {
                r = prev + r;
            } else if (OP == 2u) {
                r = max(prev, r);
            } else if (OP == 3u) {
                r = min(prev, r);
            } else {
                let m = max(prev, r);
                r = m + log(exp(prev - m) + exp(r - m));
            }
        }
        if ((p.flags & 2u) != 0u) {
            if (OP == 1u) {
                r = r / f32(p.cols);
            } else if (OP == 4u) {
                r = sqrt(r);
            }
        }
        out[row] = r;
    }
}

// Index of the largest (OP 0) or smallest (OP 1) value of each row; ties go to the lower index.
@compute @workgroup_size(256)
fn arg_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    // Every invocation starts from (x[0], 0): index 0 is the lowest, so it wins every tie.
    var v = x[base];
    var idx = 0u;
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        let y = x[base + c];
        // Columns ascend within an invocation, so a strict comparison keeps the lower index.
        if ((OP == 0u && y > v) || (OP == 1u && y < v)) {
            v = y;
            idx = c;
        }
    }
    sh_a[lid] = v;
    sh_i[lid] = idx;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let v1 = sh_a[lid];
            let v2 = sh_a[lid + s];
            let i2 = sh_i[lid + s];
            let better = (OP == 0u && v2 > v1) || (OP == 1u && v2 < v1);
            if (better || (v2 == v1 && i2 < sh_i[lid])) {
                sh_a[lid] = v2;
                sh_i[lid] = i2;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var best = sh_i[0];
        if ((p.flags & 1u) == 0u) {
            // The best of the earlier windows has lower indices: it keeps ties.
            let prev = out_idx[row];
            let pv = x[base + prev];
            let v2 = sh_a[0];
            if (!((OP == 0u && v2 > pv) || (OP == 1u && v2 < pv))) { best = prev; }
        }
        out_idx[row] = best;
    }
}

// One pass of the column sum: workgroup (column tile t, row block k) sums rows
// [k*block, min((k+1)*block, rows)) of columns [64t, 64t+64) into out[out_base + k*cols + c].
// Invocation lid covers column 64t + lid % 64 and rows k*block + lid/64, +4, ... in order;
// a fixed two-level tree then combines the four lanes.
@compute @workgroup_size(256)
fn col_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid3: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    let tiles = (p.cols + 63u) / 64u;
    let blocks = (p.rows + p.block - 1u) / p.block;
    if (wid >= tiles * blocks) { return; }
    let lid = lid3.x;
    let tile = wid % tiles;
    let blk = wid / tiles;
    let c = tile * 64u + lid % 64u;
    let r0 = blk * p.block;
    let r1 = min(r0 + p.block, p.rows);
    var acc = 0.0;
    if (c < p.cols) {
        for (var r = r0 + lid / 64u; r < r1; r += 4u) {
            acc += x[r * p.cols + c];
        }
    }
    sh_a[lid] = acc;
    workgroupBarrier();
    if (lid < 128u) {
        sh_a[lid] = sh_a[lid] + sh_a[lid + 128u];
    }
    workgroupBarrier();
    if (lid < 64u) {
        let s = sh_a[lid] + sh_a[lid + 64u];
        if (c < p.cols) {
            out[p.out_base + blk * p.cols + c] = s;
        }
    }
}

// One pass of the full sum: workgroup k sums elements [k*block, (k+1)*block) of x (bounded by
// p.cols elements) into out[out_base + k]. `block` is a multiple of 256.
@compute @workgroup_size(256)
fn sum_flat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid3: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    let n = p.cols;
    let blocks = (n + p.block - 1u) / p.block;
    if (wid >= blocks) { return; }
    let lid = lid3.x;
    let start = wid * p.block;
    let end = min(start + p.block, n);
    var acc = 0.0;
    for (var i = start + lid; i < end; i += WG) {
        acc += x[i];
    }
    sh_a[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sh_a[lid] = sh_a[lid] + sh_a[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[p.out_base + wid] = sh_a[0];
    }
}

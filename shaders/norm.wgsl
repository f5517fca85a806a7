// Row-wise softmax, log-softmax and layernorm over the last dimension.
//
// One 256-invocation workgroup per row: invocation `lid` walks columns lid, lid+256, ... and a
// fixed shared-memory tree combines the 256 partials, then every invocation writes its columns.
// The dispatch is a linear count of workgroups folded over x and y: row = wg.x + wg.y * nwg.x
// (bounds-checked; the check is workgroup-uniform, so the barriers stay in uniform control flow).
//
// A dispatch walks the columns [c0, c1) of each row, and `flags` says which passes it runs.
// Rows short enough run every pass over the whole row in one dispatch. Longer rows (llvmpipe
// stops an invocation after 65,535 loop iterations; see LOOP_BUDGET in src/kernels/mod.rs) run
// one pass per dispatch over windows of columns, in order: the statistics passes combine each
// window's partial with the running one kept per row (softmax: max and scaled sum in `sm_st`;
// layernorm: the sum, then the squared deviations, in its mean and rstd outputs, which the last
// window of each pass finishes), then the writing pass reads them.

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,      // layernorm: added to the (biased) variance
    c0: u32,       // the window of columns [c0, c1) of this dispatch
    c1: u32,
    flags: u32,    // passes and window position, see each entry point
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> sm_st: array<f32>;

// softmax_rows: 0 softmax, 1 log-softmax.
override LOG: u32 = 0u;
// layernorm: whether gamma (scale) and beta (shift) apply; unused ones are bound to a dummy.
override HAS_GAMMA: u32 = 0u;
override HAS_BETA: u32 = 0u;

const WG: u32 = 256u;

var<workgroup> sh_a: array<f32, 256>;
var<workgroup> sh_b: array<f32, 256>;

// Softmax (exp(x - max) / Σ exp(x - max)) or log-softmax (x - max - log Σ exp(x - max)).
// The max and the scaled sum come from one online pass: every invocation keeps a running max m
// and Σ exp(v - m), starting from the row's first element so no infinities are needed.
// flags: bit 0 the statistics pass, bit 1 the writing pass (both: one dispatch for the row),
// bit 2 the first window (nothing to combine). The state `sm_st` holds (max, sum) per row.
@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    var row_max = 0.0;
    var total = 0.0;
    if ((p.flags & 1u) != 0u) {
        var m = x[base];
        var s = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            let v = x[base + c];
            if (v > m) {
                s = s * exp(m - v) + 1.0;
                m = v;
            } else {
                s += exp(v - m);
            }
        }
        sh_a[lid] = m;
        sh_b[lid] = s;
        workgroupBarrier();
        for (var k = WG / 2u; k > 0u; k >>= 1u) {
            if (lid < k) {
                let m1 = sh_a[lid];
                let m2 = sh_a[lid + k];
                let mm = max(m1, m2);
                sh_b[lid] = sh_b[lid] * exp(m1 - mm) + sh_b[lid + k] * exp(m2 - mm);
                sh_a[lid] = mm;
            }
            workgroupBarrier();
        }
        row_max = sh_a[0];
        total = sh_b[0];
        if ((p.flags & 2u) == 0u) {
            if (lid == 0u) {
                if ((p.flags & 4u) == 0u) {
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
    if (LOG == 1u) {
        let shift = row_max + log(total);
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            y[base + c] = x[base + c] - shift;
        }
    } else {
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            y[base + c] = exp(x[base + c] - row_max) / total;
        }
    }
}

@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> ln_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> ln_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> ln_rstd: array<f32>;

// Layernorm: y = (x - mean) * rstd * gamma + beta, with mean and the biased variance of the row
// and rstd = 1 / sqrt(var + eps). Two passes over the row (mean, then Σ (x - mean)²) keep the
// variance accurate when |mean| ≫ std. Also writes each row's mean and rstd for the backward.
// flags: bit 0 the sum pass, bit 1 the squared-deviation pass, bit 2 the writing pass (all
// three: one dispatch for the row); bit 3 the first and bit 4 the last window of a pass. Alone,
// the first two accumulate in ln_mean and ln_rstd, and their last window turns the sums into
// the mean and rstd.
@compute @workgroup_size(256)
fn layernorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    let n = f32(p.cols);
    let fused = (p.flags & 7u) == 7u;
    let first = (p.flags & 8u) != 0u;
    let last = (p.flags & 16u) != 0u;
    var mean = 0.0;
    if ((p.flags & 1u) != 0u) {
        var acc = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            acc += x[base + c];
        }
        sh_a[lid] = acc;
        workgroupBarrier();
        for (var k = WG / 2u; k > 0u; k >>= 1u) {
            if (lid < k) {
                sh_a[lid] = sh_a[lid] + sh_a[lid + k];
            }
            workgroupBarrier();
        }
        if (!fused) {
            if (lid == 0u) {
                var t = sh_a[0];
                if (!first) { t = ln_mean[row] + t; }
                if (last) { t = t / n; }
                ln_mean[row] = t;
            }
            return;
        }
        mean = sh_a[0] / n;
    } else {
        mean = ln_mean[row];
    }
    var rstd = 0.0;
    if ((p.flags & 2u) != 0u) {
        var sq = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            let d = x[base + c] - mean;
            sq += d * d;
        }
        // sh_b, not sh_a: other invocations may still be reading sh_a[0].
        sh_b[lid] = sq;
        workgroupBarrier();
        for (var k = WG / 2u; k > 0u; k >>= 1u) {
            if (lid < k) {
                sh_b[lid] = sh_b[lid] + sh_b[lid + k];
            }
            workgroupBarrier();
        }
        if (!fused) {
            if (lid == 0u) {
                var t = sh_b[0];
                if (!first) { t = ln_rstd[row] + t; }
                if (last) { t = 1.0 / sqrt(t / n + p.eps); }
                ln_rstd[row] = t;
            }
            return;
        }
        rstd = 1.0 / sqrt(sh_b[0] / n + p.eps);
    } else {
        rstd = ln_rstd[row];
    }
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        var v = (x[base + c] - mean) * rstd;
        if (HAS_GAMMA != 0u) {
            v = v * gamma[c];
        }
        if (HAS_BETA != 0u) {
            v = v + beta[c];
        }
        ln_y[base + c] = v;
    }
    if (fused && lid == 0u) {
        ln_mean[row] = mean;
        ln_rstd[row] = rstd;
    }
}

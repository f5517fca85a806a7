// Row-wise softmax, log-softmax and layernorm over the last dimension.
//
// One 256-invocation workgroup per row: invocation `lid` walks columns lid, lid+256, ... and a
// fixed shared-memory tree combines the 256 partials, then every invocation writes its columns.
// The dispatch is a linear count of workgroups folded over x and y: row = wg.x + wg.y * nwg.x
// (bounds-checked; the check is workgroup-uniform, so the barriers stay in uniform control flow).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,      // layernorm: added to the (biased) variance
    _pad: u32,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

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
@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    var m = x[base];
    var s = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
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
    let row_max = sh_a[0];
    let total = sh_b[0];
    if (LOG == 1u) {
        let shift = row_max + log(total);
        for (var c = lid; c < p.cols; c += WG) {
            y[base + c] = x[base + c] - shift;
        }
    } else {
        for (var c = lid; c < p.cols; c += WG) {
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
@compute @workgroup_size(256)
fn layernorm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    let n = f32(p.cols);
    var acc = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
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
    let mean = sh_a[0] / n;
    var sq = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
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
    let rstd = 1.0 / sqrt(sh_b[0] / n + p.eps);
    for (var c = lid; c < p.cols; c += WG) {
        var v = (x[base + c] - mean) * rstd;
        if (HAS_GAMMA != 0u) {
            v = v * gamma[c];
        }
        if (HAS_BETA != 0u) {
            v = v + beta[c];
        }
        ln_y[base + c] = v;
    }
    if (lid == 0u) {
        ln_mean[row] = mean;
        ln_rstd[row] = rstd;
    }
}

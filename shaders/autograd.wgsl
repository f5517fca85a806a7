// Backward kernels of the autograd graph (src/autograd), and the forward kernels it needs that
// the other shaders lack (row L2-normalisation, stable BCE with logits, NLL pick, dropout).
//
// Flat kernels: 256 invocations per workgroup, one element each; the linear id is
// (wg.x + wg.y * nwg.x) * 256 + lid.x, bounds-checked against `p.n`.
// Row kernels: one 256-invocation workgroup per row (row = wg.x + wg.y * nwg.x, checked against
// `p.n`, a workgroup-uniform test so the barriers stay in uniform control flow); invocation
// `lid` walks columns lid, lid+256, ... and a fixed shared-memory tree combines the partials,
// so every result depends only on the shape (bit-identical run after run). No atomics.
// A row kernel walks the columns [c0, c1) of each row. Short rows run both of its passes (a
// row sum, then the writes) in one dispatch. Longer rows (llvmpipe stops an invocation after
// 65,535 loop iterations; see LOOP_BUDGET in src/kernels/mod.rs) run one pass per dispatch over
// windows of columns, in order: the sum pass adds each window's sum to the row's running one
// in a state buffer (the norm output for l2_normalize), then the writing pass reads it.
// Row-kernel flags: bit 0 the sum pass, bit 1 the writing pass, bit 2 the first and bit 3 the
// last window of the sum pass.
//
// Bindings: 0 is the uniform; each entry binds its inputs first (read-only `rN`), then its
// outputs (`wN`), in the order its launcher in src/kernels/autograd.rs passes them.

struct Params {
    n: u32,       // elements (flat kernels) or rows (row kernels) of this dispatch
    cols: u32,    // columns (row kernels, NLL / cross-entropy kernels)
    op: u32,      // unary_backward: the derivative to apply
    base: u32,    // dropout: index of this dispatch's first element in the whole tensor
    alpha: f32,   // a scale factor, eps, or the dropout probability
    beta: f32,    // dropout: 1 / (1 - p)
    k0: u32,      // dropout: key words
    k1: u32,
    c0: u32,      // row kernels: the window of columns [c0, c1) of this dispatch
    c1: u32,
    flags: u32,   // row kernels: passes and window position (above)
    _pad: u32,
};

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> r1: array<f32>;
@group(0) @binding(2) var<storage, read> r2: array<f32>;
@group(0) @binding(2) var<storage, read> u2: array<u32>;
@group(0) @binding(3) var<storage, read> r3: array<f32>;
@group(0) @binding(4) var<storage, read> r4: array<f32>;
@group(0) @binding(5) var<storage, read> r5: array<f32>;

@group(0) @binding(2) var<storage, read_write> w2: array<f32>;
@group(0) @binding(3) var<storage, read_write> w3: array<f32>;
@group(0) @binding(4) var<storage, read_write> w4: array<f32>;
@group(0) @binding(5) var<storage, read_write> w5: array<f32>;
@group(0) @binding(6) var<storage, read_write> w6: array<f32>;
@group(0) @binding(7) var<storage, read_write> w7: array<f32>;
@group(0) @binding(8) var<storage, read_write> w8: array<f32>;

// softmax_backward: 0 softmax, 1 log-softmax. layernorm_backward: whether gamma is bound.
override LOG: u32 = 0u;
override HAS_GAMMA: u32 = 0u;

const WG: u32 = 256u;

var<workgroup> sh: array<f32, 256>;

// Row-kernel passes (see the top of the file).
fn sum_pass() -> bool { return (p.flags & 1u) != 0u; }
fn write_pass() -> bool { return (p.flags & 2u) != 0u; }
fn first_window() -> bool { return (p.flags & 4u) != 0u; }
fn last_window() -> bool { return (p.flags & 8u) != 0u; }

// Sum of `v` over the workgroup by a fixed tree. Must be called in uniform control flow; the
// leading barrier lets the previous call's readers of sh[0] finish first.
fn wg_sum(lid: u32, v: f32) -> f32 {
    workgroupBarrier();
    sh[lid] = v;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid < k) {
            sh[lid] = sh[lid] + sh[lid + k];
        }
        workgroupBarrier();
    }
    return sh[0];
}

// erf_approx (the one GELU's forward uses), sigmoid and the constants come from
// shaders/prelude.wgsl.

// d op(x) / dx from the input x and the output y.
fn unary_grad(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case UNARY_RELU: { return select(0.0, 1.0, x > 0.0); }
        case UNARY_GELU: {
            return 0.5 * (1.0 + erf_approx(x * INV_SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
        }
        case UNARY_SIGMOID: { return y * (1.0 - y); }
        case UNARY_TANH: { return 1.0 - y * y; }
        case UNARY_EXP: { return y; }
        case UNARY_LOG: { return 1.0 / x; }
        case UNARY_SQUARE: { return 2.0 * x; }
        case UNARY_SQRT: { return 0.5 / y; }
        case UNARY_GELU_TANH: {
            let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
            let t = tanh(u);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 0.134145 * x * x);
        }
        default: { return 1.0; }
    }
}

// dx = dy * op'(x): r1 x, r2 y, r3 dy -> w4 dx.
@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    w4[i] = r3[i] * unary_grad(p.op, r1[i], r2[i]);
}

// out = alpha * s[0] * a: r1 a, r2 s -> w3 out.
@compute @workgroup_size(256)
fn scale_by(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    w3[i] = p.alpha * r2[0] * r1[i];
}

// out = alpha * s[0] everywhere: r1 s -> w2 out.
@compute @workgroup_size(256)
fn fill_scalar(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    w2[i] = p.alpha * r1[0];
}

// Softmax backward, per row: dx = y * (dy - Σ dy·y); log-softmax: dx = dy - exp(y) · Σ dy;
// both times alpha (1, or the scale of a scaled softmax; a product by 1.0 is exact).
// r1 y (the forward output), r2 dy -> w3 dx; w4 the running sum per row (long rows).
@compute @workgroup_size(256)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.n) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    var s = 0.0;
    if (sum_pass()) {
        var acc = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            if (LOG == 1u) {
                acc += r2[base + c];
            } else {
                acc += r2[base + c] * r1[base + c];
            }
        }
        s = wg_sum(lid, acc);
        if (!write_pass()) {
            if (lid == 0u) { w4[row] = select(w4[row] + s, s, first_window()); }
            return;
        }
    } else {
        s = w4[row];
    }
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        let y = r1[base + c];
        let dy = r2[base + c];
        if (LOG == 1u) {
            w3[base + c] = p.alpha * (dy - exp(y) * s);
        } else {
            w3[base + c] = p.alpha * (y * (dy - s));
        }
    }
}

// Layernorm backward, per row, with xhat = (x - mean) * rstd and g = dy * gamma:
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); also dy * xhat (summed over rows by the
// launcher for d gamma). r1 x, r2 gamma (a dummy when HAS_GAMMA = 0), r3 mean, r4 rstd, r5 dy
// -> w6 dx, w7 dy * xhat; w8 the running sums (2 per row, long rows).
@compute @workgroup_size(256)
fn layernorm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.n) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    let mean = r3[row];
    let rstd = r4[row];
    let n = f32(p.cols);
    var mg = 0.0;
    var mgx = 0.0;
    if (sum_pass()) {
        var a = 0.0;
        var b = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            let xhat = (r1[base + c] - mean) * rstd;
            var g = r5[base + c];
            if (HAS_GAMMA == 1u) { g = g * r2[c]; }
            a += g;
            b += g * xhat;
        }
        let sa = wg_sum(lid, a);
        let sb = wg_sum(lid, b);
        if (!write_pass()) {
            if (lid == 0u) {
                let first = first_window();
                w8[2u * row] = select(w8[2u * row] + sa, sa, first);
                w8[2u * row + 1u] = select(w8[2u * row + 1u] + sb, sb, first);
            }
            return;
        }
        mg = sa / n;
        mgx = sb / n;
    } else {
        mg = w8[2u * row] / n;
        mgx = w8[2u * row + 1u] / n;
    }
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        let xhat = (r1[base + c] - mean) * rstd;
        let dy = r5[base + c];
        var g = dy;
        if (HAS_GAMMA == 1u) { g = g * r2[c]; }
        w6[base + c] = rstd * (g - mg - xhat * mgx);
        w7[base + c] = dy * xhat;
    }
}

// Row L2-normalisation: y = x / max(‖x‖, eps) (PyTorch's F.normalize), eps = alpha.
// r1 x -> w2 y, w3 ‖x‖ (one per row, unclamped; for long rows the running Σ x² until the last
// window of the sum pass takes its root).
@compute @workgroup_size(256)
fn l2_normalize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.n) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    var nrm = 0.0;
    if (sum_pass()) {
        var acc = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            let v = r1[base + c];
            acc += v * v;
        }
        let ss = wg_sum(lid, acc);
        if (!write_pass()) {
            if (lid == 0u) {
                var t = select(w3[row] + ss, ss, first_window());
                if (last_window()) { t = sqrt(t); }
                w3[row] = t;
            }
            return;
        }
        nrm = sqrt(ss);
        if (lid == 0u) {
            w3[row] = nrm;
        }
    } else {
        nrm = w3[row];
    }
    let d = max(nrm, p.alpha);
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        w2[base + c] = r1[base + c] / d;
    }
}

// Backward of l2_normalize: with d = max(‖x‖, eps), dx = (dy - y · Σ dy·y) / d when ‖x‖ > eps,
// else dy / eps (the denominator is the constant eps there). r1 y, r2 ‖x‖, r3 dy -> w4 dx;
// w5 the running sum per row (long rows).
@compute @workgroup_size(256)
fn l2_normalize_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = linear_wid(wg, nwg);
    if (row >= p.n) { return; }
    let lid = lid3.x;
    let base = row * p.cols;
    var s = 0.0;
    if (sum_pass()) {
        var acc = 0.0;
        for (var c = p.c0 + lid; c < p.c1; c += WG) {
            acc += r3[base + c] * r1[base + c];
        }
        s = wg_sum(lid, acc);
        if (!write_pass()) {
            if (lid == 0u) { w5[row] = select(w5[row] + s, s, first_window()); }
            return;
        }
    } else {
        s = w5[row];
    }
    let nrm = r2[row];
    let d = max(nrm, p.alpha);
    let proj = select(0.0, s, nrm > p.alpha);
    for (var c = p.c0 + lid; c < p.c1; c += WG) {
        w4[base + c] = (r3[base + c] - r1[base + c] * proj) / d;
    }
}

// Stable binary cross-entropy with logits, per element:
// max(x, 0) - x·t + log(1 + exp(-|x|)). r1 x, r2 t -> w3 loss.
@compute @workgroup_size(256)
fn bce_logits(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    let x = r1[i];
    w3[i] = max(x, 0.0) - x * r2[i] + log(1.0 + exp(-abs(x)));
}

// d/dx of the BCE above times the upstream scalar: alpha * g[0] * (sigmoid(x) - t).
// r1 x, r2 t, r3 g -> w4 dx.
@compute @workgroup_size(256)
fn bce_logits_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    w4[i] = p.alpha * r3[0] * (sigmoid(r1[i]) - r2[i]);
}

// Negative log-likelihood of each row: out[r] = -logp[r, t[r]], 0 when t[r] >= cols.
// r1 logp [rows, cols], u2 targets [rows] -> w3 out [rows]; flat over rows.
@compute @workgroup_size(256)
fn nll_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wg, nwg, lid);
    if (r >= p.n) { return; }
    let t = u2[r];
    var v = 0.0;
    if (t < p.cols) {
        v = -r1[r * p.cols + t];
    }
    w3[r] = v;
}

// Softmax cross-entropy backward: dx = alpha * g[0] * (exp(logp) - onehot(t)); rows whose
// target is out of range get 0. r1 logp, u2 targets, r3 g -> w4 dx; flat over elements.
@compute @workgroup_size(256)
fn xent_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n * p.cols) { return; }
    let r = i / p.cols;
    let c = i - r * p.cols;
    let t = u2[r];
    var v = 0.0;
    if (t < p.cols) {
        v = exp(r1[i]) - select(0.0, 1.0, c == t);
    }
    w4[i] = p.alpha * r3[0] * v;
}

// Counter-based hash (Wellons' lowbias32): the same (key, index) always gives the same bits.
fn lowbias32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// Inverted dropout: element i (global index base + i) is dropped when its hash, as a uniform
// in [0, 1) with 24 bits, is below alpha = p; kept elements are scaled by beta = 1 / (1 - p).
// r1 x -> w2 y, w3 mask (0 or beta).
@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    let h = lowbias32(lowbias32((p.base + i) ^ p.k0) + p.k1);
    let u = f32(h >> 8u) * (1.0 / 16777216.0);
    let m = select(p.beta, 0.0, u < p.alpha);
    w3[i] = m;
    w2[i] = r1[i] * m;
}

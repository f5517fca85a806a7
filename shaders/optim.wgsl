// Optimizer kernels (src/optim): one fused update kernel per parameter tensor, and the blocked
// sum of squares that gradient clipping by global norm needs.
//
// Flat kernels: 256 invocations per workgroup, one element each; the linear id is
// (wg.x + wg.y * nwg.x) * 256 + lid.x, bounds-checked against `p.n`.
//
// Clipping (CLIP = 1): `gsq[0]` holds Σ g² over every gradient (computed on the GPU by
// `sumsq_blocks` and a full sum), and each update scales its gradient by
// min(1, max_norm / (sqrt(gsq[0]) + 1e-6)), PyTorch's clip_grad_norm_ factor, so nothing is
// read back. With CLIP = 0 the `gsq` slot holds a dummy that is never read.

struct Params {
    n: u32,            // elements of this dispatch
    base: u32,         // sumsq_blocks: first partial written by this dispatch
    first: u32,        // sgd: 1 on the first step (the momentum buffer starts as the gradient)
    _pad: u32,
    lr: f32,
    wd: f32,           // weight decay (L2 for SGD and Adam, decoupled for AdamW)
    max_norm: f32,     // clipping threshold
    momentum: f32,     // sgd
    dampening: f32,    // sgd
    beta1: f32,        // adam
    beta2: f32,
    eps: f32,
    bc1: f32,          // adam: 1 - beta1^t
    bc2_sqrt: f32,     // adam: sqrt(1 - beta2^t)
    _pad2: vec2<f32>,
};

@group(0) @binding(0) var<uniform> p: Params;

// sumsq_blocks bindings.
@group(0) @binding(1) var<storage, read> g_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

// Update bindings: the parameter and its state are updated in place.
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read_write> state1: array<f32>;
@group(0) @binding(3) var<storage, read_write> state2: array<f32>;
@group(0) @binding(3) var<storage, read> sgd_grad: array<f32>;
@group(0) @binding(4) var<storage, read> sgd_gsq: array<f32>;
@group(0) @binding(4) var<storage, read> adam_grad: array<f32>;
@group(0) @binding(5) var<storage, read> adam_gsq: array<f32>;

override CLIP: u32 = 0u;
override MOMENTUM: u32 = 0u;
override NESTEROV: u32 = 0u;
// adam_step: 0 Adam (weight decay added to the gradient), 1 AdamW (decoupled decay).
override DECOUPLED: u32 = 0u;

const WG: u32 = 256u;
// Elements per workgroup of sumsq_blocks (16 per invocation).
const BLOCK: u32 = 4096u;

var<workgroup> sh: array<f32, 256>;

fn clip_scale(gsq: f32) -> f32 {
    return min(1.0, p.max_norm / (sqrt(gsq) + 1e-6));
}

// partials[base + b] = Σ g² over elements b*4096 .. (b+1)*4096 of this dispatch. Each
// invocation sums 16 strided elements in order, then a fixed tree combines them.
@compute @workgroup_size(256)
fn sumsq_blocks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid3: vec3<u32>) {
    let b = linear_wid(wg, nwg);
    if (b * BLOCK >= p.n) { return; }
    let lid = lid3.x;
    let start = b * BLOCK;
    var acc = 0.0;
    for (var k = 0u; k < BLOCK / WG; k++) {
        let i = start + k * WG + lid;
        if (i < p.n) {
            let v = g_in[i];
            acc += v * v;
        }
    }
    sh[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sh[lid] = sh[lid] + sh[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        partials[p.base + b] = sh[0];
    }
}

// SGD, PyTorch's semantics: g += wd·p; with momentum, buf = momentum·buf + (1 − dampening)·g
// (buf = g on the first step) and g = buf, or g + momentum·buf with Nesterov; p -= lr·g.
// param (rw), state1 = momentum buffer (rw; a dummy without momentum), grad, gsq.
@compute @workgroup_size(256)
fn sgd_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    var g = sgd_grad[i];
    if (CLIP == 1u) {
        g = g * clip_scale(sgd_gsq[0]);
    }
    let w = param[i];
    g = g + p.wd * w;
    if (MOMENTUM == 1u) {
        var buf = g;
        if (p.first == 0u) {
            buf = p.momentum * state1[i] + (1.0 - p.dampening) * g;
        }
        state1[i] = buf;
        if (NESTEROV == 1u) {
            g = g + p.momentum * buf;
        } else {
            g = buf;
        }
    }
    param[i] = w - p.lr * g;
}

// Adam / AdamW with bias correction, PyTorch's semantics:
// Adam: g += wd·p.  AdamW: p *= 1 − lr·wd.  Then m = β1·m + (1 − β1)·g,
// v = β2·v + (1 − β2)·g², p -= (lr / bc1) · m / (sqrt(v) / bc2_sqrt + eps).
// param (rw), state1 = m (rw), state2 = v (rw), grad, gsq.
@compute @workgroup_size(256)
fn adam_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.n) { return; }
    var g = adam_grad[i];
    if (CLIP == 1u) {
        g = g * clip_scale(adam_gsq[0]);
    }
    var w = param[i];
    if (DECOUPLED == 1u) {
        w = w * (1.0 - p.lr * p.wd);
    } else {
        g = g + p.wd * w;
    }
    let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    param[i] = w - (p.lr / p.bc1) * (m / denom);
}

// The shared WGSL prelude, composed in front of every shader source at compile time
// (`kernels::with_prelude`, `concat!`), since WGSL has no includes. One definition each of what
// several shader families need, so GELU's forward (elementwise, the matmul epilogue) and its
// derivative (autograd) use the very same erf.

const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

// The linear workgroup id: launchers fold counts over 65,535 into x and y.
fn linear_wid(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// The element of a one-dimensional kernel with 256-wide workgroups (`launch::WG` in Rust).
fn flat_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return linear_wid(wg, nwg) * 256u + lid.x;
}

// erf(x) = 1 − erfc(|x|) with the sign of x, erfc by the Chebyshev-fitted rational form of
// Numerical Recipes (`erfcc`, fractional error < 1.2e-7 everywhere). The CPU reference
// `kernels::elementwise::erf` uses the same formula.
fn erf_approx(x: f32) -> f32 {
    let s = sign(x);
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.5 * ax);
    let y = t * exp(-ax * ax - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277)))))))));
    return s * (1.0 - y);
}

// The logistic function, without overflow for large |x|.
fn sigmoid(x: f32) -> f32 {
    if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
    let e = exp(x);
    return e / (1.0 + e);
}

// GELU, exact (erf) form, as BERT uses.
fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * INV_SQRT_2));
}

// The unary ops by number: `kernels::elementwise::Unary::opcode` gives the same numbers (a test
// reads these lines back), the matmul epilogue's activation is one of them, and
// `unary_grad` in autograd.wgsl differentiates them by the same numbers.
const UNARY_COPY: u32 = 0u;
const UNARY_RELU: u32 = 1u;
const UNARY_GELU: u32 = 2u;
const UNARY_SIGMOID: u32 = 3u;
const UNARY_TANH: u32 = 4u;
const UNARY_EXP: u32 = 5u;
const UNARY_LOG: u32 = 6u;
const UNARY_SQRT: u32 = 7u;
const UNARY_SQUARE: u32 = 8u;
const UNARY_SCALE: u32 = 9u;
const UNARY_CLAMP: u32 = 10u;
const UNARY_NEG: u32 = 11u;
const UNARY_ABS: u32 = 12u;
const UNARY_RECIP: u32 = 13u;
const UNARY_GELU_TANH: u32 = 14u;

// GELU, tanh approximation.
fn gelu_tanh(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

// Unary op `op` of x; `alpha` and `beta` are the parameters of scale (alpha·x + beta) and
// clamp (to [alpha, beta]). An unknown number is the identity.
fn apply_unary(op: u32, x: f32, alpha: f32, beta: f32) -> f32 {
    switch op {
        case UNARY_RELU: { return max(x, 0.0); }
        case UNARY_GELU: { return gelu_erf(x); }
        case UNARY_SIGMOID: { return sigmoid(x); }
        case UNARY_TANH: { return tanh(x); }
        case UNARY_EXP: { return exp(x); }
        case UNARY_LOG: { return log(x); }
        case UNARY_SQRT: { return sqrt(x); }
        case UNARY_SQUARE: { return x * x; }
        case UNARY_SCALE: { return alpha * x + beta; }
        case UNARY_CLAMP: { return clamp(x, alpha, beta); }
        case UNARY_NEG: { return -x; }
        case UNARY_ABS: { return abs(x); }
        case UNARY_RECIP: { return 1.0 / x; }
        case UNARY_GELU_TANH: { return gelu_tanh(x); }
        default: { return x; }
    }
}

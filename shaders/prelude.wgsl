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

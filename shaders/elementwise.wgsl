// Elementwise unary, binary (with row/column/scalar broadcasting through strides) and select.
// Shapes and op codes arrive in the uniform; the dispatch is a linear count of 256-wide
// workgroups folded over x and y (linear id = wg.x + wg.y * nwg.x).

struct Params {
    op: u32,
    rows: u32,     // rows of the output (1 for unary)
    cols: u32,     // columns of the output (element count for unary)
    a_rs: u32,     // row stride of a (0 = broadcast over rows)
    a_cs: u32,     // column stride of a (0 = broadcast over columns)
    b_rs: u32,
    b_cs: u32,
    _pad: u32,
    alpha: f32,
    beta: f32,
    _pad2: vec2<f32>,
};

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// apply_unary and the UNARY_* numbers come from shaders/prelude.wgsl.

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.cols) { return; }
    out[i] = apply_unary(p.op, a[i], p.alpha, p.beta);
}

@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out2: array<f32>;

fn binary_op(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max(x, y); }
        case 5u: { return min(x, y); }
        case 6u: { return p.alpha * x + p.beta * y; }           // axpby
        case 7u: { return pow(x, y); }
        default: { return x; }
    }
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.rows * p.cols) { return; }
    let r = i / p.cols;
    let c = i - r * p.cols;
    let x = a[r * p.a_rs + c * p.a_cs];
    let y = b[r * p.b_rs + c * p.b_cs];
    out2[i] = binary_op(p.op, x, y);
}

@group(0) @binding(3) var<storage, read> cond: array<f32>;
@group(0) @binding(4) var<storage, read_write> out3: array<f32>;

// out = cond != 0 ? a : b, all of the same shape.
@compute @workgroup_size(256)
fn select_op(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= p.cols) { return; }
    out3[i] = select(b[i], a[i], cond[i] != 0.0);
}

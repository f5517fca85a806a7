// Matmul family: C = op(A) · op(B) (+ bias row) then an activation, batched, f32 accumulation.
//
// op(X) is X or Xᵀ, chosen by the override constants TRANS_A / TRANS_B (one pipeline each).
// Element addressing, with `bt` the batch index inside this dispatch:
//   A(i, k) = a[a_off + bt·a_bs + i·lda + k]   (TRANS_A: a[a_off + bt·a_bs + k·lda + i])
//   B(k, j) = b[b_off + bt·b_bs + k·ldb + j]   (TRANS_B: b[b_off + bt·b_bs + j·ldb + k])
//   C(i, j) = c[c_off + bt·c_bs + i·n + j]
// Shapes, strides and offsets arrive in the uniform; the launcher (src/kernels/matmul.rs) binds
// row ranges of large tensors at aligned offsets so no binding exceeds the storage-binding cap.
// The dispatch is a linear count of workgroups (batch-major, then row tiles, then column tiles)
// folded over x and y: linear id = wg.x + wg.y * nwg.x, bounds-checked against p.batch.
//
// Entry points:
//   matmul_regtile         barrier-free register tile, vec4 loads: each invocation computes 16
//                          rows x 16 columns. Needs every vec4 access aligned (the launcher checks).
//                          Fastest on CPU adapters (lavapipe), where each memory access costs a
//                          per-lane loop and workgroup barriers are coroutine switches.
//   matmul_regtile_scalar  the same tile with scalar loads, for any shape and alignment.
//   matmul_shared          16x16 invocations, 4x4 outputs each, 64x64 tiles staged through
//                          workgroup memory in steps of 16 along k. The default on real GPUs.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
// Register tile: invocations per workgroup and invocations across columns (rows: WG / GX).
override WG: u32 = 64u;
override GX: u32 = 8u;

struct Params {
    m: u32,        // rows of C per batch in this dispatch
    n: u32,        // columns of C
    k: u32,        // reduction length
    batch: u32,    // batches in this dispatch
    a_off: u32,    // element offsets of the first batch inside each binding
    b_off: u32,
    c_off: u32,
    flags: u32,    // bit 0: add bias; bit 1: add the existing contents of C
    a_bs: u32,     // batch strides in elements (0: shared across the batch)
    b_bs: u32,
    c_bs: u32,
    act: u32,      // 0 none, 1 relu, 2 gelu (erf), 3 sigmoid, 4 tanh
    lda: u32,      // stride between rows of A's storage
    ldb: u32,      // stride between rows of B's storage
    tiles_m: u32,  // row tiles per batch
    tiles_n: u32,  // column tiles
};

@group(0) @binding(0) var<uniform> p: Params;

// The activation is a unary op number (UNARY_COPY for none, from shaders/prelude.wgsl). Only
// the five epilogue activations are switched on here, not all of apply_unary: the epilogue runs
// inside the register tile, and the smaller function keeps the tile's code tight on llvmpipe.
fn activate(x: f32) -> f32 {
    switch p.act {
        case UNARY_RELU: { return max(x, 0.0); }
        case UNARY_GELU: { return gelu_erf(x); }
        case UNARY_SIGMOID: { return sigmoid(x); }
        case UNARY_TANH: { return tanh(x); }
        default: { return x; }
    }
}

fn activate4(v: vec4<f32>) -> vec4<f32> {
    if (p.act == UNARY_COPY) { return v; }
    return vec4<f32>(activate(v.x), activate(v.y), activate(v.z), activate(v.w));
}

// (batch, row tile, column tile) of a linear workgroup id; batch >= p.batch means idle.
fn tile_of(wg: vec3<u32>, nwg: vec3<u32>) -> vec3<u32> {
    let wid = linear_wid(wg, nwg);
    let per = p.tiles_m * p.tiles_n;
    let bt = wid / per;
    let r = wid - bt * per;
    let tm = r / p.tiles_n;
    return vec3<u32>(bt, tm, r - tm * p.tiles_n);
}

// ---------------------------------------------------------------------------------------------
// Register tile: 16 rows x 16 columns per invocation, as 16 `Row`s of four vec4 column groups.

struct Row {
    x: vec4<f32>,  // columns col0 .. col0+3
    y: vec4<f32>,  // columns col0+4 .. col0+7
    z: vec4<f32>,  // columns col0+8 .. col0+11
    w: vec4<f32>,  // columns col0+12 .. col0+15
};

// B(k0+t, col0 .. col0+15) for t = 0..3.
struct BBlock {
    k0: Row,
    k1: Row,
    k2: Row,
    k3: Row,
};

fn mac4(r: vec4<f32>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(b3, vec4(a.w), fma(b2, vec4(a.z), fma(b1, vec4(a.y), fma(b0, vec4(a.x), r))));
}

// One row of the tile advanced by four steps of k: r += a.x·B(k0) + a.y·B(k0+1) + ...
fn mac(r: Row, a: vec4<f32>, b: BBlock) -> Row {
    return Row(
        mac4(r.x, a, b.k0.x, b.k1.x, b.k2.x, b.k3.x),
        mac4(r.y, a, b.k0.y, b.k1.y, b.k2.y, b.k3.y),
        mac4(r.z, a, b.k0.z, b.k1.z, b.k2.z, b.k3.z),
        mac4(r.w, a, b.k0.w, b.k1.w, b.k2.w, b.k3.w));
}

// ---- matmul_regtile: vec4 bindings. The launcher guarantees k, n, lda, ldb, every offset and
// batch stride are multiples of 4 (and m·(TRANS_A) rows likewise), so every vec4 is aligned.

@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

// A(row, k0 .. k0+3) for A stored [m, k]; rows past m read row m-1 (their results are dropped).
fn a4_row(abase: u32, row: u32, k0: u32) -> vec4<f32> {
    return a4[(abase + min(row, p.m - 1u) * p.lda + k0) >> 2u];
}

// A(g .. g+3, k) for A stored [k, m] (TRANS_A): four rows at one k. Groups past m are clamped.
fn a4_col(abase: u32, g: u32, k: u32) -> vec4<f32> {
    return a4[(abase + k * p.lda + min(g, (p.m - 1u) & ~3u)) >> 2u];
}

fn b4_block(bbase: u32, col0: u32, k0: u32) -> BBlock {
    if (TRANS_B) {
        // B stored [n, k]: load B(k0..k0+3, j) for each of the 16 columns and transpose.
        let lim = p.n - 1u;
        let v0 = b4[(bbase + min(col0, lim) * p.ldb + k0) >> 2u];
        let v1 = b4[(bbase + min(col0 + 1u, lim) * p.ldb + k0) >> 2u];
        let v2 = b4[(bbase + min(col0 + 2u, lim) * p.ldb + k0) >> 2u];
        let v3 = b4[(bbase + min(col0 + 3u, lim) * p.ldb + k0) >> 2u];
        let v4 = b4[(bbase + min(col0 + 4u, lim) * p.ldb + k0) >> 2u];
        let v5 = b4[(bbase + min(col0 + 5u, lim) * p.ldb + k0) >> 2u];
        let v6 = b4[(bbase + min(col0 + 6u, lim) * p.ldb + k0) >> 2u];
        let v7 = b4[(bbase + min(col0 + 7u, lim) * p.ldb + k0) >> 2u];
        let v8 = b4[(bbase + min(col0 + 8u, lim) * p.ldb + k0) >> 2u];
        let v9 = b4[(bbase + min(col0 + 9u, lim) * p.ldb + k0) >> 2u];
        let v10 = b4[(bbase + min(col0 + 10u, lim) * p.ldb + k0) >> 2u];
        let v11 = b4[(bbase + min(col0 + 11u, lim) * p.ldb + k0) >> 2u];
        let v12 = b4[(bbase + min(col0 + 12u, lim) * p.ldb + k0) >> 2u];
        let v13 = b4[(bbase + min(col0 + 13u, lim) * p.ldb + k0) >> 2u];
        let v14 = b4[(bbase + min(col0 + 14u, lim) * p.ldb + k0) >> 2u];
        let v15 = b4[(bbase + min(col0 + 15u, lim) * p.ldb + k0) >> 2u];
        return BBlock(
            Row(vec4(v0.x, v1.x, v2.x, v3.x),
                vec4(v4.x, v5.x, v6.x, v7.x),
                vec4(v8.x, v9.x, v10.x, v11.x),
                vec4(v12.x, v13.x, v14.x, v15.x)),
            Row(vec4(v0.y, v1.y, v2.y, v3.y),
                vec4(v4.y, v5.y, v6.y, v7.y),
                vec4(v8.y, v9.y, v10.y, v11.y),
                vec4(v12.y, v13.y, v14.y, v15.y)),
            Row(vec4(v0.z, v1.z, v2.z, v3.z),
                vec4(v4.z, v5.z, v6.z, v7.z),
                vec4(v8.z, v9.z, v10.z, v11.z),
                vec4(v12.z, v13.z, v14.z, v15.z)),
            Row(vec4(v0.w, v1.w, v2.w, v3.w),
                vec4(v4.w, v5.w, v6.w, v7.w),
                vec4(v8.w, v9.w, v10.w, v11.w),
                vec4(v12.w, v13.w, v14.w, v15.w)));
    }
    // B stored [k, n]: four vec4 column groups per k; groups past n are clamped.
    let last = p.n - 4u;
    let cx = bbase + min(col0, last);
    let cy = bbase + min(col0 + 4u, last);
    let cz = bbase + min(col0 + 8u, last);
    let cw = bbase + min(col0 + 12u, last);
    let r0 = k0 * p.ldb;
    let r1 = r0 + p.ldb;
    let r2 = r1 + p.ldb;
    let r3 = r2 + p.ldb;
    return BBlock(
        Row(b4[(cx + r0) >> 2u], b4[(cy + r0) >> 2u], b4[(cz + r0) >> 2u], b4[(cw + r0) >> 2u]),
        Row(b4[(cx + r1) >> 2u], b4[(cy + r1) >> 2u], b4[(cz + r1) >> 2u], b4[(cw + r1) >> 2u]),
        Row(b4[(cx + r2) >> 2u], b4[(cy + r2) >> 2u], b4[(cz + r2) >> 2u], b4[(cw + r2) >> 2u]),
        Row(b4[(cx + r3) >> 2u], b4[(cy + r3) >> 2u], b4[(cz + r3) >> 2u], b4[(cw + r3) >> 2u]));
}

// Bias, previous contents, activation and the store of one row of the tile.
fn c4_group(o: u32, g: u32, v: vec4<f32>) {
    var x = v;
    if ((p.flags & 2u) != 0u) { x += c4[o]; }
    if ((p.flags & 1u) != 0u) { x += bias4[g]; }
    c4[o] = activate4(x);
}

fn c4_store(cbase: u32, row: u32, col0: u32, r: Row) {
    if (row >= p.m) { return; }
    let o = (cbase + row * p.n + col0) >> 2u;
    let g = col0 >> 2u;
    c4_group(o, g, r.x);
    if (col0 + 4u < p.n) { c4_group(o + 1u, g + 1u, r.y); }
    if (col0 + 8u < p.n) { c4_group(o + 2u, g + 2u, r.z); }
    if (col0 + 12u < p.n) { c4_group(o + 3u, g + 3u, r.w); }
}

@compute @workgroup_size(WG)
fn matmul_regtile(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let t = tile_of(wg, nwg);
    if (t.x >= p.batch) { return; }
    let row0 = (t.y * (WG / GX) + lid / GX) * 16u;
    let col0 = (t.z * GX + lid % GX) * 16u;
    if (col0 >= p.n) { return; }
    let abase = p.a_off + t.x * p.a_bs;
    let bbase = p.b_off + t.x * p.b_bs;
    let cbase = p.c_off + t.x * p.c_bs;

    var r0 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r1 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r2 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r3 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r4 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r5 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r6 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r7 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r8 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r9 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r10 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r11 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r12 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r13 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r14 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r15 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let b = b4_block(bbase, col0, k0);
        if (TRANS_A) {
            let q0_0 = a4_col(abase, row0 + 0u, k0 + 0u);
            let q1_0 = a4_col(abase, row0 + 0u, k0 + 1u);
            let q2_0 = a4_col(abase, row0 + 0u, k0 + 2u);
            let q3_0 = a4_col(abase, row0 + 0u, k0 + 3u);
            let q0_1 = a4_col(abase, row0 + 4u, k0 + 0u);
            let q1_1 = a4_col(abase, row0 + 4u, k0 + 1u);
            let q2_1 = a4_col(abase, row0 + 4u, k0 + 2u);
            let q3_1 = a4_col(abase, row0 + 4u, k0 + 3u);
            let q0_2 = a4_col(abase, row0 + 8u, k0 + 0u);
            let q1_2 = a4_col(abase, row0 + 8u, k0 + 1u);
            let q2_2 = a4_col(abase, row0 + 8u, k0 + 2u);
            let q3_2 = a4_col(abase, row0 + 8u, k0 + 3u);
            let q0_3 = a4_col(abase, row0 + 12u, k0 + 0u);
            let q1_3 = a4_col(abase, row0 + 12u, k0 + 1u);
            let q2_3 = a4_col(abase, row0 + 12u, k0 + 2u);
            let q3_3 = a4_col(abase, row0 + 12u, k0 + 3u);
            r0 = mac(r0, vec4(q0_0.x, q1_0.x, q2_0.x, q3_0.x), b);
            r1 = mac(r1, vec4(q0_0.y, q1_0.y, q2_0.y, q3_0.y), b);
            r2 = mac(r2, vec4(q0_0.z, q1_0.z, q2_0.z, q3_0.z), b);
            r3 = mac(r3, vec4(q0_0.w, q1_0.w, q2_0.w, q3_0.w), b);
            r4 = mac(r4, vec4(q0_1.x, q1_1.x, q2_1.x, q3_1.x), b);
            r5 = mac(r5, vec4(q0_1.y, q1_1.y, q2_1.y, q3_1.y), b);
            r6 = mac(r6, vec4(q0_1.z, q1_1.z, q2_1.z, q3_1.z), b);
            r7 = mac(r7, vec4(q0_1.w, q1_1.w, q2_1.w, q3_1.w), b);
            r8 = mac(r8, vec4(q0_2.x, q1_2.x, q2_2.x, q3_2.x), b);
            r9 = mac(r9, vec4(q0_2.y, q1_2.y, q2_2.y, q3_2.y), b);
            r10 = mac(r10, vec4(q0_2.z, q1_2.z, q2_2.z, q3_2.z), b);
            r11 = mac(r11, vec4(q0_2.w, q1_2.w, q2_2.w, q3_2.w), b);
            r12 = mac(r12, vec4(q0_3.x, q1_3.x, q2_3.x, q3_3.x), b);
            r13 = mac(r13, vec4(q0_3.y, q1_3.y, q2_3.y, q3_3.y), b);
            r14 = mac(r14, vec4(q0_3.z, q1_3.z, q2_3.z, q3_3.z), b);
            r15 = mac(r15, vec4(q0_3.w, q1_3.w, q2_3.w, q3_3.w), b);
        } else {
            r0 = mac(r0, a4_row(abase, row0 + 0u, k0), b);
            r1 = mac(r1, a4_row(abase, row0 + 1u, k0), b);
            r2 = mac(r2, a4_row(abase, row0 + 2u, k0), b);
            r3 = mac(r3, a4_row(abase, row0 + 3u, k0), b);
            r4 = mac(r4, a4_row(abase, row0 + 4u, k0), b);
            r5 = mac(r5, a4_row(abase, row0 + 5u, k0), b);
            r6 = mac(r6, a4_row(abase, row0 + 6u, k0), b);
            r7 = mac(r7, a4_row(abase, row0 + 7u, k0), b);
            r8 = mac(r8, a4_row(abase, row0 + 8u, k0), b);
            r9 = mac(r9, a4_row(abase, row0 + 9u, k0), b);
            r10 = mac(r10, a4_row(abase, row0 + 10u, k0), b);
            r11 = mac(r11, a4_row(abase, row0 + 11u, k0), b);
            r12 = mac(r12, a4_row(abase, row0 + 12u, k0), b);
            r13 = mac(r13, a4_row(abase, row0 + 13u, k0), b);
            r14 = mac(r14, a4_row(abase, row0 + 14u, k0), b);
            r15 = mac(r15, a4_row(abase, row0 + 15u, k0), b);
        }
    }
    // The epilogue runs in a loop over the rows (not unrolled: it holds the activation code).
    var tile = array<Row, 16>(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15);
    for (var i = 0u; i < 16u; i++) {
        c4_store(cbase, row0 + i, col0, tile[i]);
    }
}

// ---- matmul_regtile_scalar: any shape and alignment. Indices are clamped into the matrices and
// values past k are zeroed, so no load leaves the binding and no garbage reaches a kept result.

@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;
@group(0) @binding(3) var<storage, read> bias1: array<f32>;
@group(0) @binding(4) var<storage, read_write> c1: array<f32>;

fn a_at(abase: u32, i: u32, k: u32) -> f32 {
    let ic = min(i, p.m - 1u);
    let kc = min(k, p.k - 1u);
    var v: f32;
    if (TRANS_A) { v = a1[abase + kc * p.lda + ic]; } else { v = a1[abase + ic * p.lda + kc]; }
    return select(0.0, v, k < p.k);
}

fn b_at(bbase: u32, k: u32, j: u32) -> f32 {
    let jc = min(j, p.n - 1u);
    let kc = min(k, p.k - 1u);
    var v: f32;
    if (TRANS_B) { v = b1[bbase + jc * p.ldb + kc]; } else { v = b1[bbase + kc * p.ldb + jc]; }
    return select(0.0, v, k < p.k);
}

fn a1_row(abase: u32, i: u32, k0: u32) -> vec4<f32> {
    return vec4(a_at(abase, i, k0), a_at(abase, i, k0 + 1u), a_at(abase, i, k0 + 2u), a_at(abase, i, k0 + 3u));
}

fn b1_vec(bbase: u32, k: u32, j: u32) -> vec4<f32> {
    return vec4(b_at(bbase, k, j), b_at(bbase, k, j + 1u), b_at(bbase, k, j + 2u), b_at(bbase, k, j + 3u));
}

fn b1_block(bbase: u32, col0: u32, k0: u32) -> BBlock {
    return BBlock(
        Row(b1_vec(bbase, k0, col0), b1_vec(bbase, k0, col0 + 4u), b1_vec(bbase, k0, col0 + 8u), b1_vec(bbase, k0, col0 + 12u)),
        Row(b1_vec(bbase, k0 + 1u, col0), b1_vec(bbase, k0 + 1u, col0 + 4u), b1_vec(bbase, k0 + 1u, col0 + 8u), b1_vec(bbase, k0 + 1u, col0 + 12u)),
        Row(b1_vec(bbase, k0 + 2u, col0), b1_vec(bbase, k0 + 2u, col0 + 4u), b1_vec(bbase, k0 + 2u, col0 + 8u), b1_vec(bbase, k0 + 2u, col0 + 12u)),
        Row(b1_vec(bbase, k0 + 3u, col0), b1_vec(bbase, k0 + 3u, col0 + 4u), b1_vec(bbase, k0 + 3u, col0 + 8u), b1_vec(bbase, k0 + 3u, col0 + 12u)));
}

fn c1_put(cbase: u32, row: u32, col: u32, v: f32) {
    if (col >= p.n) { return; }
    let o = cbase + row * p.n + col;
    var x = v;
    if ((p.flags & 2u) != 0u) { x += c1[o]; }
    if ((p.flags & 1u) != 0u) { x += bias1[col]; }
    c1[o] = activate(x);
}

fn c1_store(cbase: u32, row: u32, col0: u32, r: Row) {
    if (row >= p.m) { return; }
    c1_put(cbase, row, col0, r.x.x);
    c1_put(cbase, row, col0 + 1u, r.x.y);
    c1_put(cbase, row, col0 + 2u, r.x.z);
    c1_put(cbase, row, col0 + 3u, r.x.w);
    c1_put(cbase, row, col0 + 4u, r.y.x);
    c1_put(cbase, row, col0 + 5u, r.y.y);
    c1_put(cbase, row, col0 + 6u, r.y.z);
    c1_put(cbase, row, col0 + 7u, r.y.w);
    c1_put(cbase, row, col0 + 8u, r.z.x);
    c1_put(cbase, row, col0 + 9u, r.z.y);
    c1_put(cbase, row, col0 + 10u, r.z.z);
    c1_put(cbase, row, col0 + 11u, r.z.w);
    c1_put(cbase, row, col0 + 12u, r.w.x);
    c1_put(cbase, row, col0 + 13u, r.w.y);
    c1_put(cbase, row, col0 + 14u, r.w.z);
    c1_put(cbase, row, col0 + 15u, r.w.w);
}

@compute @workgroup_size(WG)
fn matmul_regtile_scalar(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let t = tile_of(wg, nwg);
    if (t.x >= p.batch) { return; }
    let row0 = (t.y * (WG / GX) + lid / GX) * 16u;
    let col0 = (t.z * GX + lid % GX) * 16u;
    if (col0 >= p.n) { return; }
    let abase = p.a_off + t.x * p.a_bs;
    let bbase = p.b_off + t.x * p.b_bs;
    let cbase = p.c_off + t.x * p.c_bs;

    var r0 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r1 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r2 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r3 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r4 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r5 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r6 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r7 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r8 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r9 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r10 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r11 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r12 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r13 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r14 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    var r15 = Row(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let b = b1_block(bbase, col0, k0);
        r0 = mac(r0, a1_row(abase, row0 + 0u, k0), b);
        r1 = mac(r1, a1_row(abase, row0 + 1u, k0), b);
        r2 = mac(r2, a1_row(abase, row0 + 2u, k0), b);
        r3 = mac(r3, a1_row(abase, row0 + 3u, k0), b);
        r4 = mac(r4, a1_row(abase, row0 + 4u, k0), b);
        r5 = mac(r5, a1_row(abase, row0 + 5u, k0), b);
        r6 = mac(r6, a1_row(abase, row0 + 6u, k0), b);
        r7 = mac(r7, a1_row(abase, row0 + 7u, k0), b);
        r8 = mac(r8, a1_row(abase, row0 + 8u, k0), b);
        r9 = mac(r9, a1_row(abase, row0 + 9u, k0), b);
        r10 = mac(r10, a1_row(abase, row0 + 10u, k0), b);
        r11 = mac(r11, a1_row(abase, row0 + 11u, k0), b);
        r12 = mac(r12, a1_row(abase, row0 + 12u, k0), b);
        r13 = mac(r13, a1_row(abase, row0 + 13u, k0), b);
        r14 = mac(r14, a1_row(abase, row0 + 14u, k0), b);
        r15 = mac(r15, a1_row(abase, row0 + 15u, k0), b);
    }
    var tile = array<Row, 16>(r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15);
    for (var i = 0u; i < 16u; i++) {
        c1_store(cbase, row0 + i, col0, tile[i]);
    }
}

// ---- matmul_shared: 64x64 output tiles, k in steps of 16 staged through workgroup memory
// (sa[k][row], sb[k][col], 8 KiB). Invocation (tx, ty) owns rows ty + 16i and columns tx + 16j,
// so neighbouring invocations touch neighbouring columns. Loads into workgroup memory walk the
// contiguous dimension of each operand's storage.

var<workgroup> sa: array<f32, 1024>;
var<workgroup> sb: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn matmul_shared(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wg, nwg);
    if (t.x >= p.batch) { return; }
    let row0 = t.y * 64u;
    let col0 = t.z * 64u;
    let abase = p.a_off + t.x * p.a_bs;
    let bbase = p.b_off + t.x * p.b_bs;
    let cbase = p.c_off + t.x * p.c_bs;
    let tx = lid.x;
    let ty = lid.y;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + 256u * q;
            var r: u32;
            var ka: u32;
            if (TRANS_A) { ka = e / 64u; r = e % 64u; } else { r = e / 16u; ka = e % 16u; }
            let gr = row0 + r;
            let gka = k0 + ka;
            var v = 0.0;
            if (gr < p.m && gka < p.k) {
                if (TRANS_A) { v = a1[abase + gka * p.lda + gr]; } else { v = a1[abase + gr * p.lda + gka]; }
            }
            sa[ka * 64u + r] = v;
            var c: u32;
            var kb: u32;
            if (TRANS_B) { c = e / 16u; kb = e % 16u; } else { kb = e / 64u; c = e % 64u; }
            let gc = col0 + c;
            let gkb = k0 + kb;
            var w = 0.0;
            if (gc < p.n && gkb < p.k) {
                if (TRANS_B) { w = b1[bbase + gc * p.ldb + gkb]; } else { w = b1[bbase + gkb * p.ldb + gc]; }
            }
            sb[kb * 64u + c] = w;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let o = kk * 64u;
            let bv = vec4(sb[o + tx], sb[o + tx + 16u], sb[o + tx + 32u], sb[o + tx + 48u]);
            acc[0] = fma(vec4(sa[o + ty]), bv, acc[0]);
            acc[1] = fma(vec4(sa[o + ty + 16u]), bv, acc[1]);
            acc[2] = fma(vec4(sa[o + ty + 32u]), bv, acc[2]);
            acc[3] = fma(vec4(sa[o + ty + 48u]), bv, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + ty + 16u * i;
        if (row < p.m) {
            c1_put(cbase, row, col0 + tx, acc[i].x);
            c1_put(cbase, row, col0 + tx + 16u, acc[i].y);
            c1_put(cbase, row, col0 + tx + 32u, acc[i].z);
            c1_put(cbase, row, col0 + tx + 48u, acc[i].w);
        }
    }
}

// Data movement: gather rows, deterministic scatter-add over CSR segments (built by the radix
// sort of shaders/sort.wgsl), tiled transpose, column-block copy (concat, slice) and fill.
//
// Every dispatch is a linear count of workgroups folded over x and y by the host; kernels recover
// the linear id as wg.x + wg.y * nwg.x and bounds-check it. Shapes arrive in the uniform.
// Pure copies move raw 32-bit words (array<u32>), so they serve f32 and u32 tensors bit-exactly.
// No float atomics anywhere: the only atomics are integer counters in workgroup memory, whose
// results do not depend on the order in which threads run.

const WG: u32 = 256u;

// ---------------------------------------------------------------------------------------------
// gather_rows: out[i, :] = table[idx[i], :]. The table may be bound in row chunks: a dispatch
// writes the rows whose index falls in its chunk. Indices >= n give a row of zeros (written by
// the dispatch that binds the first table chunk).

struct GatherParams {
    rows: u32,      // output rows of this dispatch (the index binding starts at the same row)
    d: u32,         // words per row
    t_start: u32,   // first table row bound
    t_rows: u32,    // table rows bound
    n: u32,         // table rows in all
    _p0: u32,
    _p1: u32,
    _p2: u32,
};

@group(0) @binding(0) var<uniform> pg: GatherParams;
@group(0) @binding(1) var<storage, read> g_idx: array<u32>;
@group(0) @binding(2) var<storage, read> g_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> g_out: array<u32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg) * WG + lid.x;
    if (t >= pg.rows * pg.d) { return; }
    let i = t / pg.d;
    let c = t - i * pg.d;
    let r = g_idx[i];
    if (r >= pg.n) {
        if (pg.t_start == 0u) { g_out[t] = 0u; }
        return;
    }
    let local_row = r - pg.t_start; // wraps above t_rows when r < t_start
    if (local_row < pg.t_rows) {
        g_out[t] = g_table[local_row * pg.d + c];
    }
}

// ---------------------------------------------------------------------------------------------
// scatter_add_rows: out[j, :] = sum over k in offsets[j]..offsets[j+1] of src[order[k], :],
// summed by one thread per output element in segment order, so the result is bit-for-bit the
// same on every run. A dispatch adds the window [w0, w0 + wlen) of each segment's entries (the
// launcher walks the windows in order, so a thread never loops over more than wlen entries),
// and the source may be bound in row chunks: dispatches after the first (accumulate = 1)
// continue the running sum stored in `out`, which keeps the summation order.

struct ScatterParams {
    rows: u32,        // output rows of this dispatch (offsets bound from the same row)
    d: u32,           // columns
    s_start: u32,     // first source row bound
    s_rows: u32,      // source rows bound
    accumulate: u32,  // 0: start from 0; 1: continue from out
    w0: u32,          // first entry of each segment in this dispatch's window
    wlen: u32,        // entries per window
    _p2: u32,
};

@group(0) @binding(0) var<uniform> ps: ScatterParams;
@group(0) @binding(1) var<storage, read> s_offsets: array<u32>;
@group(0) @binding(2) var<storage, read> s_order: array<u32>;
@group(0) @binding(3) var<storage, read> s_src: array<f32>;
@group(0) @binding(4) var<storage, read_write> s_out: array<f32>;

@compute @workgroup_size(256)
fn scatter_add_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg) * WG + lid.x;
    if (t >= ps.rows * ps.d) { return; }
    let j = t / ps.d;
    let c = t - j * ps.d;
    let start = s_offsets[j];
    let end = s_offsets[j + 1u];
    let lo = start + min(ps.w0, end - start);
    let hi = lo + min(ps.wlen, end - lo);
    if (ps.accumulate != 0u && lo == hi) { return; } // nothing to add to the running sum
    var acc = 0.0;
    if (ps.accumulate != 0u) { acc = s_out[t]; }
    for (var k = lo; k < hi; k = k + 1u) {
        let l = s_order[k] - ps.s_start; // wraps above s_rows when the row is before the chunk
        if (l < ps.s_rows) {
            acc = acc + s_src[l * ps.d + c];
        }
    }
    s_out[t] = acc;
}

// ---------------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------------
// transpose: out[b, j, i] = in[b, i, j], 16x16 tiles through workgroup memory (padded to 17
// columns against bank conflicts). A dispatch moves the block rows r0..r0+nr, columns
// c0..c0+nc of nb matrices [r, c]; the input binding starts at input row r0 of the first
// matrix (plus in_base words of alignment slack), the output binding at output row c0.

struct TransposeParams {
    nb: u32,
    r: u32,
    c: u32,
    r0: u32,
    nr: u32,
    c0: u32,
    nc: u32,
    in_base: u32,
    out_base: u32,
    tiles_r: u32,
    tiles_c: u32,
    _p0: u32,
};

@group(0) @binding(0) var<uniform> pt: TransposeParams;
@group(0) @binding(1) var<storage, read> t_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> t_out: array<u32>;

const TILE: u32 = 16u;
var<workgroup> tile: array<u32, 272>; // 16 x 17

@compute @workgroup_size(16, 16)
fn transpose(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let wid = linear_wid(wg, nwg);
    let per = pt.tiles_r * pt.tiles_c;
    if (wid >= pt.nb * per) { return; }
    let bb = wid / per;
    let rem = wid - bb * per;
    let tr = rem / pt.tiles_c;
    let tc = rem - tr * pt.tiles_c;
    let mat = bb * pt.r * pt.c;
    let i = tr * TILE + lid.y;
    let j = tc * TILE + lid.x;
    if (i < pt.nr && j < pt.nc) {
        tile[lid.y * 17u + lid.x] = t_in[pt.in_base + mat + i * pt.c + pt.c0 + j];
    }
    workgroupBarrier();
    let oi = tc * TILE + lid.y; // output row in the block (an input column)
    let oj = tr * TILE + lid.x; // output column in the block (an input row)
    if (oi < pt.nc && oj < pt.nr) {
        t_out[pt.out_base + mat + oi * pt.r + pt.r0 + oj] = tile[lid.x * 17u + lid.y];
    }
}

// ---------------------------------------------------------------------------------------------
// copy_cols: dst[i, dst_col + j] = src[i, src_col + j] for j < width (concat and slice).

struct CopyParams {
    rows: u32,
    width: u32,
    src_stride: u32,
    src_col: u32,
    dst_stride: u32,
    dst_col: u32,
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> pc: CopyParams;
@group(0) @binding(1) var<storage, read> cp_src: array<u32>;
@group(0) @binding(2) var<storage, read_write> cp_dst: array<u32>;

@compute @workgroup_size(256)
fn copy_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg) * WG + lid.x;
    if (t >= pc.rows * pc.width) { return; }
    let i = t / pc.width;
    let j = t - i * pc.width;
    cp_dst[i * pc.dst_stride + pc.dst_col + j] = cp_src[i * pc.src_stride + pc.src_col + j];
}

// ---------------------------------------------------------------------------------------------
// fill: every word of the binding becomes `value` (the bits of an f32 or a u32).

struct FillParams {
    len: u32,
    value: u32,
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> pf: FillParams;
@group(0) @binding(1) var<storage, read_write> f_out: array<u32>;

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg) * WG + lid.x;
    if (t >= pf.len) { return; }
    f_out[t] = pf.value;
}

// Data movement: gather rows, deterministic scatter-add over CSR segments, the stable GPU radix
// sort that builds those segments, tiled transpose, column-block copy (concat, slice) and fill.
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
// Segment building: a stable LSD radix sort (8-bit digits) of the keys min(idx[i], n) carrying
// the positions i, then offsets[j] = lower_bound(sorted keys, j). Stable sorting keeps each
// segment in ascending position order.

struct SortParams {
    m: u32,        // number of keys
    n: u32,        // number of segments (keys are clamped to n: out-of-range indices sort last)
    shift: u32,    // digit shift of this pass
    nblocks: u32,  // 256-key blocks (radix), or workgroups (scan)
    len: u32,      // scan length, or offsets in this dispatch
    start: u32,    // first offset index of this dispatch
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> pr: SortParams;

// seg_init: keys[i] = min(idx[i], n), vals[i] = i.
@group(0) @binding(1) var<storage, read> i_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> i_keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> i_vals: array<u32>;

@compute @workgroup_size(256)
fn seg_init(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_wid(wg, nwg) * WG + lid.x;
    if (i >= pr.m) { return; }
    i_keys[i] = min(i_idx[i], pr.n);
    i_vals[i] = i;
}

// radix_count: counts[digit * nblocks + block] = keys of `block` with that digit. The digit-major
// layout makes the exclusive scan of counts the scatter base of every (digit, block).
@group(0) @binding(1) var<storage, read> c_keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> c_counts: array<u32>;

var<workgroup> hist: array<atomic<u32>, 256>;

@compute @workgroup_size(256)
fn radix_count(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let block = linear_wid(wg, nwg);
    if (block >= pr.nblocks) { return; }
    atomicStore(&hist[lid.x], 0u);
    workgroupBarrier();
    let i = block * WG + lid.x;
    if (i < pr.m) {
        atomicAdd(&hist[(c_keys[i] >> pr.shift) & 255u], 1u);
    }
    workgroupBarrier();
    c_counts[lid.x * pr.nblocks + block] = atomicLoad(&hist[lid.x]);
}

// radix_scatter: moves each key (and its value) of a block to prefix[digit, block] + its rank
// among the block's keys with the same digit and a lower position. The rank comes from a
// bitonic sort of (digit << 8 | lane) in workgroup memory: unique sort keys, so no ties and no
// dependence on scheduling.
@group(0) @binding(1) var<storage, read> r_keys: array<u32>;
@group(0) @binding(2) var<storage, read> r_vals: array<u32>;
@group(0) @binding(3) var<storage, read> r_prefix: array<u32>;
@group(0) @binding(4) var<storage, read_write> r_keys_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> r_vals_out: array<u32>;

var<workgroup> sort_keys: array<u32, 256>;
var<workgroup> block_keys: array<u32, 256>;

@compute @workgroup_size(256)
fn radix_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let block = linear_wid(wg, nwg);
    if (block >= pr.nblocks) { return; }
    let l = lid.x;
    let i = block * WG + l;
    var key = 0u;
    var s = 0xffffffffu; // past every real sort key: lanes beyond m sort last
    if (i < pr.m) {
        key = r_keys[i];
        s = (((key >> pr.shift) & 255u) << 8u) | l;
    }
    sort_keys[l] = s;
    block_keys[l] = key;
    workgroupBarrier();
    for (var k = 2u; k <= WG; k = k << 1u) {
        for (var j = k >> 1u; j > 0u; j = j >> 1u) {
            let partner = l ^ j;
            if (partner > l) {
                let a = sort_keys[l];
                let b = sort_keys[partner];
                let ascending = (l & k) == 0u;
                if ((a > b) == ascending) {
                    sort_keys[l] = b;
                    sort_keys[partner] = a;
                }
            }
            workgroupBarrier();
        }
    }
    let mine = sort_keys[l];
    if (mine == 0xffffffffu) { return; }
    let digit = mine >> 8u;
    let lane = mine & 255u;
    // First sorted position holding this digit.
    let want = digit << 8u;
    var lo = 0u;
    var hi = l;
    while (lo < hi) {
        let mid = (lo + hi) >> 1u;
        if (sort_keys[mid] < want) { lo = mid + 1u; } else { hi = mid; }
    }
    let pos = r_prefix[digit * pr.nblocks + block] + (l - lo);
    r_keys_out[pos] = block_keys[lane];
    r_vals_out[pos] = r_vals[block * WG + lane];
}

// scan_local: exclusive prefix sum of 1024-element blocks in place (4 per thread); the block
// totals go to sums[block]. scan_add then adds the scanned block totals back.
@group(0) @binding(1) var<storage, read_write> sc_data: array<u32>;
@group(0) @binding(2) var<storage, read_write> sc_sums: array<u32>;

var<workgroup> scan_tmp: array<u32, 256>;

@compute @workgroup_size(256)
fn scan_local(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear_wid(wg, nwg);
    if (g >= pr.nblocks) { return; }
    let l = lid.x;
    let base = g * 1024u + l * 4u;
    var part: array<u32, 4>;
    var total = 0u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        var x = 0u;
        if (base + k < pr.len) { x = sc_data[base + k]; }
        part[k] = total;
        total = total + x;
    }
    scan_tmp[l] = total;
    workgroupBarrier();
    for (var off = 1u; off < WG; off = off << 1u) {
        var add = 0u;
        if (l >= off) { add = scan_tmp[l - off]; }
        workgroupBarrier();
        scan_tmp[l] = scan_tmp[l] + add;
        workgroupBarrier();
    }
    let excl = scan_tmp[l] - total;
    for (var k = 0u; k < 4u; k = k + 1u) {
        if (base + k < pr.len) { sc_data[base + k] = part[k] + excl; }
    }
    if (l == WG - 1u) { sc_sums[g] = scan_tmp[l]; }
}

@group(0) @binding(1) var<storage, read_write> sa_data: array<u32>;
@group(0) @binding(2) var<storage, read> sa_sums: array<u32>;

@compute @workgroup_size(256)
fn scan_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = linear_wid(wg, nwg);
    if (g >= pr.nblocks) { return; }
    let add = sa_sums[g];
    for (var k = 0u; k < 4u; k = k + 1u) {
        let i = g * 1024u + k * WG + lid.x;
        if (i < pr.len) { sa_data[i] = sa_data[i] + add; }
    }
}

// seg_offsets: offsets[t] = number of sorted keys below start + t (a lower-bound search).
@group(0) @binding(1) var<storage, read> o_keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> o_offsets: array<u32>;

@compute @workgroup_size(256)
fn seg_offsets(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg) * WG + lid.x;
    if (t >= pr.len) { return; }
    let want = pr.start + t;
    var lo = 0u;
    var hi = pr.m;
    while (lo < hi) {
        let mid = lo + ((hi - lo) >> 1u);
        if (o_keys[mid] < want) { lo = mid + 1u; } else { hi = mid; }
    }
    o_offsets[t] = lo;
}

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

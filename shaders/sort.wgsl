// The one GPU sort of semid: a stable LSD radix sort of u32 keys (8-bit digits) carrying the
// positions they came from, and lower bounds into the sorted keys. k-means groups points by
// cluster with it and scatter-add groups rows by target segment (kernels/sort.rs).
//
// A pass: radix_count counts each 256-key block's digits (integer atomics in workgroup memory,
// so the counts do not depend on thread order), scan_local/scan_add turn the digit-major counts
// into scatter bases, and radix_scatter ranks each key among its block's keys with the same
// digit by a bitonic sort of (digit << 8 | lane), which has no ties, so the sort is stable and
// deterministic. Every loop is bounded by 256 or 4 steps, whatever the input size: no
// invocation comes near LOOP_BUDGET.

const WG: u32 = 256u;


struct SortParams {
    m: u32,        // number of keys
    n: u32,        // the bound: keys are clamped to it, so indices beyond it sort last
    shift: u32,    // digit shift of this pass
    nblocks: u32,  // 256-key blocks (radix), or workgroups (scan)
    len: u32,      // scan length, or offsets in this dispatch
    start: u32,    // first offset index of this dispatch
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> pr: SortParams;

// sort_init: keys[i] = min(idx[i], n), vals[i] = i.
@group(0) @binding(1) var<storage, read> i_idx: array<u32>;
@group(0) @binding(2) var<storage, read_write> i_keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> i_vals: array<u32>;

@compute @workgroup_size(256)
fn sort_init(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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

// lower_bounds: offsets[t] = number of sorted keys below start + t (a binary search).
@group(0) @binding(1) var<storage, read> o_keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> o_offsets: array<u32>;

@compute @workgroup_size(256)
fn lower_bounds(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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

// k-means building blocks: deterministic block sums, segmented centroid sums (the segments come
// from the stable radix sort of the assignment in shaders/sort.wgsl, so each cluster's members
// form one segment in point order), the
// centroid update with its statistics, row copies, splits and the k-means++ seeding steps.
//
// No float atomics anywhere: every float sum runs in a fixed order (sequential within an
// invocation, then a fixed tree across a workgroup), so results are identical run to run.
// Loops that grow with the input (members of a cluster, scan length) take a window of the work
// per dispatch, and the launcher walks the windows in order (llvmpipe stops an invocation's
// loops after 65,535 iterations; see LOOP_BUDGET in src/kernels/mod.rs).
// Row-indexed inputs (x) may be bound in row chunks [r0, r0 + rows); kernels that visit points
// by index skip the ones outside the bound chunk, and the host walks the chunks in order.
//
// Workgroup ids are linear: wid = wg.x + wg.y * nwg.x (the host folds counts over 65,535).

struct Params {
    n: u32,       // points
    k: u32,       // clusters
    d: u32,       // dimensions
    nb: u32,      // blocks of 256 points
    _p2: u32,
    first: u32,   // 1 on a first pass / first chunk
    metric: u32,  // 0 = squared L2, 1 = cosine
    count: u32,   // entries (pairs, elements) or the k-means++ step
    r0: u32,      // first point row of the bound x chunk
    rows: u32,    // rows in the bound x chunk
    a: u32,       // a cluster index (split: the donor); window start (accum, finish)
    b: u32,       // a cluster index (split: the new cluster); window end (accum), length (finish)
    u: f32,       // a uniform draw in [0, 1) (k-means++) or a scale (split)
    last: u32,    // 1 on the last chunk
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: Params;

// linear_wid comes from shaders/prelude.wgsl.

// ---------------------------------------------------------------------------------------------
// block_sums: out[b] = sum of v[256 b .. 256 b + 256) in index order (n values).
@group(0) @binding(1) var<storage, read> bs_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> bs_out: array<f32>;

@compute @workgroup_size(64)
fn block_sums(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = linear_wid(wg, nwg) * 64u + lid.x;
    if (blk >= p.nb) { return; }
    let lo = blk * 256u;
    let hi = min(lo + 256u, p.n);
    var s = 0.0;
    for (var i = lo; i < hi; i++) { s += bs_in[i]; }
    bs_out[blk] = s;
}

// ---------------------------------------------------------------------------------------------
// centroid_accum_{v4,s}: workgroup c sums, per dimension of the window [a, b) (in vec4s for
// v4) and in point order, the members of cluster c whose rows lie in the bound chunk
// [r0, r0 + rows) of x, into acc[c] (set on the first chunk, added to afterwards). Members of a
// cluster are sorted by point index, so the chunk's members are one sub-segment, found by
// binary search. The launcher bounds rows and the window so the loops stay short.
@group(0) @binding(1) var<storage, read> ca_x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ca_perm4: array<u32>;
@group(0) @binding(3) var<storage, read> ca_starts4: array<u32>;
@group(0) @binding(4) var<storage, read_write> ca_acc4: array<vec4<f32>>;

@group(0) @binding(1) var<storage, read> ca_xs: array<f32>;
@group(0) @binding(2) var<storage, read> ca_perms: array<u32>;
@group(0) @binding(3) var<storage, read> ca_startss: array<u32>;
@group(0) @binding(4) var<storage, read_write> ca_accs: array<f32>;

// First position in [lo, hi) whose point index is >= row (members sorted by point index).
fn lower_bound4(lo: u32, hi: u32, row: u32) -> u32 {
    var a = lo;
    var b = hi;
    while (a < b) {
        let m = (a + b) / 2u;
        if (ca_perm4[m] < row) { a = m + 1u; } else { b = m; }
    }
    return a;
}

fn lower_bounds(lo: u32, hi: u32, row: u32) -> u32 {
    var a = lo;
    var b = hi;
    while (a < b) {
        let m = (a + b) / 2u;
        if (ca_perms[m] < row) { a = m + 1u; } else { b = m; }
    }
    return a;
}

@compute @workgroup_size(64)
fn centroid_accum_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_wid(wg, nwg);
    if (c >= p.k) { return; }
    let dv = p.d / 4u;
    let s = ca_starts4[c];
    let e = ca_starts4[c + 1u];
    let ms = lower_bound4(s, e, p.r0);
    let me = lower_bound4(ms, e, p.r0 + p.rows);
    for (var j = p.a + lid.x; j < p.b; j += 64u) {
        var acc = vec4<f32>(0.0);
        var m = ms;
        while (m < me) {
            // Partial sums over runs of 64 members keep the rounding error growth small.
            let stop = min(m + 64u, me);
            var part = vec4<f32>(0.0);
            for (; m < stop; m++) { part += ca_x4[(ca_perm4[m] - p.r0) * dv + j]; }
            acc += part;
        }
        let o = c * dv + j;
        if (p.first == 1u) { ca_acc4[o] = acc; } else { ca_acc4[o] = ca_acc4[o] + acc; }
    }
}

@compute @workgroup_size(64)
fn centroid_accum_s(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_wid(wg, nwg);
    if (c >= p.k) { return; }
    let s = ca_startss[c];
    let e = ca_startss[c + 1u];
    let ms = lower_bounds(s, e, p.r0);
    let me = lower_bounds(ms, e, p.r0 + p.rows);
    for (var j = p.a + lid.x; j < p.b; j += 64u) {
        var acc = 0.0;
        var m = ms;
        while (m < me) {
            let stop = min(m + 64u, me);
            var part = 0.0;
            for (; m < stop; m++) { part += ca_xs[(ca_perms[m] - p.r0) * p.d + j]; }
            acc += part;
        }
        let o = c * p.d + j;
        if (p.first == 1u) { ca_accs[o] = acc; } else { ca_accs[o] = ca_accs[o] + acc; }
    }
}

// ---------------------------------------------------------------------------------------------
// centroid_finish: workgroup c turns the sums into the new centroid (the mean; for cosine the
// mean renormalised; an empty cluster, or a cosine mean of norm 0, keeps the old centroid) and
// writes the cluster's statistics as 4 u32: count, bits of the summed assignment distances of
// its members, bits of |new - old|^2, bits of |old|^2. The distances are summed over the window
// of members [a, a + b) of each cluster per dispatch: a dispatch with last = 0 only adds its
// window's sum to stats[4c + 1] (set when first = 1); the last one finishes.
@group(0) @binding(1) var<storage, read> cf_acc: array<f32>;
@group(0) @binding(2) var<storage, read> cf_old: array<f32>;
@group(0) @binding(3) var<storage, read> cf_perm: array<u32>;
@group(0) @binding(4) var<storage, read> cf_starts: array<u32>;
@group(0) @binding(5) var<storage, read> cf_dist: array<f32>;
@group(0) @binding(6) var<storage, read_write> cf_new: array<f32>;
@group(0) @binding(7) var<storage, read_write> cf_stats: array<u32>;

var<workgroup> red: array<vec4<f32>, 64>;

// Sums red[0..64) into red[0] in a fixed tree order. Call from uniform control flow.
fn tree_reduce(lid: u32) {
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        workgroupBarrier();
        if (lid < stride) { red[lid] = red[lid] + red[lid + stride]; }
    }
    workgroupBarrier();
}

@compute @workgroup_size(64)
fn centroid_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = linear_wid(wg, nwg);
    if (c >= p.k) { return; }
    let s = cf_starts[c];
    let e = cf_starts[c + 1u];
    let cnt = e - s;
    let base = c * p.d;
    let ws = s + min(p.a, cnt);
    let we = ws + min(p.b, e - ws);
    var sse = 0.0;
    for (var m = ws + lid.x; m < we; m += 64u) { sse += cf_dist[cf_perm[m]]; }
    if (p.last == 0u) {
        red[lid.x] = vec4<f32>(sse, 0.0, 0.0, 0.0);
        tree_reduce(lid.x);
        if (lid.x == 0u) {
            var t = red[0].x;
            if (p.first == 0u) { t = bitcast<f32>(cf_stats[4u * c + 1u]) + t; }
            cf_stats[4u * c + 1u] = bitcast<u32>(t);
        }
        return;
    }
    var ssq = 0.0;
    var osq = 0.0;
    for (var j = lid.x; j < p.d; j += 64u) {
        let old = cf_old[base + j];
        var v = old;
        if (cnt > 0u) { v = cf_acc[base + j] / f32(cnt); }
        cf_new[base + j] = v;
        ssq = fma(v, v, ssq);
        osq = fma(old, old, osq);
    }
    red[lid.x] = vec4<f32>(ssq, osq, sse, 0.0);
    tree_reduce(lid.x);
    var tot = red[0];
    if (p.first == 0u) { tot.z = bitcast<f32>(cf_stats[4u * c + 1u]) + tot.z; }
    workgroupBarrier();
    let cosine = p.metric == 1u;
    let keep = cnt == 0u || (cosine && tot.x == 0.0);
    let scale = select(1.0, 1.0 / sqrt(tot.x), cosine && tot.x > 0.0);
    var shift = 0.0;
    for (var j = lid.x; j < p.d; j += 64u) {
        let old = cf_old[base + j];
        var v = old;
        if (!keep) { v = cf_new[base + j] * scale; }
        cf_new[base + j] = v;
        let dv = v - old;
        shift = fma(dv, dv, shift);
    }
    red[lid.x] = vec4<f32>(shift, 0.0, 0.0, 0.0);
    tree_reduce(lid.x);
    if (lid.x == 0u) {
        cf_stats[4u * c] = cnt;
        cf_stats[4u * c + 1u] = bitcast<u32>(tot.z);
        cf_stats[4u * c + 2u] = bitcast<u32>(red[0].x);
        cf_stats[4u * c + 3u] = bitcast<u32>(tot.y);
    }
}

// ---------------------------------------------------------------------------------------------
// set_rows: for each of `count` pairs (dst, src), c[dst] = x[src] (normalised for cosine; a zero
// row stays zero), for the src rows inside the bound chunk [r0, r0 + rows). One workgroup per
// pair.
@group(0) @binding(1) var<storage, read> sr_pairs: array<u32>;
@group(0) @binding(2) var<storage, read> sr_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> sr_c: array<f32>;

@compute @workgroup_size(64)
fn set_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = linear_wid(wg, nwg);
    if (t >= p.count) { return; }
    let dst = sr_pairs[2u * t];
    let src = sr_pairs[2u * t + 1u];
    if (src < p.r0 || src >= p.r0 + p.rows) { return; }
    let xb = (src - p.r0) * p.d;
    var ss = 0.0;
    for (var j = lid.x; j < p.d; j += 64u) {
        let v = sr_x[xb + j];
        ss = fma(v, v, ss);
    }
    red[lid.x] = vec4<f32>(ss, 0.0, 0.0, 0.0);
    tree_reduce(lid.x);
    let tot = red[0].x;
    let scale = select(1.0, 1.0 / sqrt(tot), p.metric == 1u && tot > 0.0);
    for (var j = lid.x; j < p.d; j += 64u) {
        sr_c[dst * p.d + j] = sr_x[xb + j] * scale;
    }
}

// split: c[b] = c[a] + u * dir, c[a] = c[a] - u * dir (both renormalised for cosine). One
// workgroup.
@group(0) @binding(1) var<storage, read> sp_dir: array<f32>;
@group(0) @binding(2) var<storage, read_write> sp_c: array<f32>;

@compute @workgroup_size(64)
fn split(@builtin(local_invocation_id) lid: vec3<u32>) {
    let ab = p.a * p.d;
    let bb = p.b * p.d;
    var sa = 0.0;
    var sb = 0.0;
    for (var j = lid.x; j < p.d; j += 64u) {
        let v = sp_c[ab + j];
        let delta = p.u * sp_dir[j];
        let va = v - delta;
        let vb = v + delta;
        sp_c[ab + j] = va;
        sp_c[bb + j] = vb;
        sa = fma(va, va, sa);
        sb = fma(vb, vb, sb);
    }
    red[lid.x] = vec4<f32>(sa, sb, 0.0, 0.0);
    tree_reduce(lid.x);
    let tot = red[0];
    if (p.metric == 1u) {
        let ka = select(1.0, 1.0 / sqrt(tot.x), tot.x > 0.0);
        let kb = select(1.0, 1.0 / sqrt(tot.y), tot.y > 0.0);
        for (var j = lid.x; j < p.d; j += 64u) {
            sp_c[ab + j] = sp_c[ab + j] * ka;
            sp_c[bb + j] = sp_c[bb + j] * kb;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// k-means++ seeding.
// pp_update: mind[i] = min(mind[i], dist(x_i, c[count])) for the rows of the bound chunk (on
// the first step mind is set). Squared L2, or 1 - cos (zero vectors: 1). One invocation walks
// one row: d steps (d / 4 for vec4 rows), within llvmpipe's 65,535 for any embedding width.
@group(0) @binding(1) var<storage, read> pu_x: array<f32>;
@group(0) @binding(2) var<storage, read> pu_c: array<f32>;
@group(0) @binding(3) var<storage, read_write> pu_mind: array<f32>;

@compute @workgroup_size(64)
fn pp_update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_wid(wg, nwg) * 64u + lid.x;
    if (r >= p.rows) { return; }
    let xb = r * p.d;
    let cb = p.count * p.d;
    var dd = 0.0;
    if (p.metric == 0u) {
        for (var j = 0u; j < p.d; j++) {
            let t = pu_x[xb + j] - pu_c[cb + j];
            dd = fma(t, t, dd);
        }
    } else {
        var xx = 0.0;
        var cc = 0.0;
        var xc = 0.0;
        for (var j = 0u; j < p.d; j++) {
            let a = pu_x[xb + j];
            let b = pu_c[cb + j];
            xx = fma(a, a, xx);
            cc = fma(b, b, cc);
            xc = fma(a, b, xc);
        }
        dd = 1.0;
        if (xx > 0.0 && cc > 0.0) { dd = max(1.0 - xc / (sqrt(xx) * sqrt(cc)), 0.0); }
    }
    let i = p.r0 + r;
    if (p.first == 1u) { pu_mind[i] = dd; } else { pu_mind[i] = min(pu_mind[i], dd); }
}

// pp_update_v4: pp_update over vec4 rows (d % 4 == 0).
@group(0) @binding(1) var<storage, read> pv_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> pv_c: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> pv_mind: array<f32>;

@compute @workgroup_size(64)
fn pp_update_v4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = linear_wid(wg, nwg) * 64u + lid.x;
    if (r >= p.rows) { return; }
    let dv = p.d / 4u;
    let xb = r * dv;
    let cb = p.count * dv;
    var dd = 0.0;
    if (p.metric == 0u) {
        for (var j = 0u; j < dv; j++) {
            let t = pv_x[xb + j] - pv_c[cb + j];
            dd += dot(t, t);
        }
    } else {
        var xx = 0.0;
        var cc = 0.0;
        var xc = 0.0;
        for (var j = 0u; j < dv; j++) {
            let a = pv_x[xb + j];
            let b = pv_c[cb + j];
            xx += dot(a, a);
            cc += dot(b, b);
            xc += dot(a, b);
        }
        dd = 1.0;
        if (xx > 0.0 && cc > 0.0) { dd = max(1.0 - xc / (sqrt(xx) * sqrt(cc)), 0.0); }
    }
    let i = p.r0 + r;
    if (p.first == 1u) { pv_mind[i] = dd; } else { pv_mind[i] = min(pv_mind[i], dd); }
}

// pp_pick: one invocation draws the next center with probability proportional to mind: the
// first point whose running sum of mind (in index order, through the per-block sums and their
// sums over 256 blocks) exceeds u * total. With a total of 0 it takes point floor(u * n).
// Writes the pair (count, point). Every loop is over at most 256 blocks or points, or over the
// super-blocks (n / 65,536 of them).
@group(0) @binding(1) var<storage, read> pk_part: array<f32>;
@group(0) @binding(2) var<storage, read> pk_mind: array<f32>;
@group(0) @binding(3) var<storage, read_write> pk_pair: array<u32>;
@group(0) @binding(4) var<storage, read> pk_super: array<f32>;

@compute @workgroup_size(1)
fn pp_pick() {
    let ns = (p.nb + 255u) / 256u;
    var total = 0.0;
    for (var s = 0u; s < ns; s++) { total += pk_super[s]; }
    var pick = min(u32(p.u * f32(p.n)), p.n - 1u);
    if (total > 0.0) {
        let goal = p.u * total;
        var run = 0.0;
        pick = p.n;
        var sb = ns;
        for (var s = 0u; s < ns; s++) {
            let next = run + pk_super[s];
            if (next > goal) { sb = s; break; }
            run = next;
        }
        var blk = p.nb;
        if (sb < ns) {
            let bhi = min(sb * 256u + 256u, p.nb);
            for (var b = sb * 256u; b < bhi; b++) {
                let next = run + pk_part[b];
                if (next > goal) { blk = b; break; }
                run = next;
            }
        }
        if (blk < p.nb) {
            let hi = min(blk * 256u + 256u, p.n);
            for (var i = blk * 256u; i < hi; i++) {
                let v = pk_mind[i];
                run += v;
                if (run > goal && v > 0.0) { pick = i; break; }
            }
        }
        // Rounding can leave the goal unreached: fall back to the last point with mass (the
        // last super-block, block and point with a positive sum).
        if (pick == p.n) {
            pick = 0u;
            var s = ns;
            while (s > 0u && !(pk_super[s - 1u] > 0.0)) { s--; }
            if (s > 0u) {
                var b = min(s * 256u, p.nb);
                while (b > (s - 1u) * 256u && !(pk_part[b - 1u] > 0.0)) { b--; }
                if (b > (s - 1u) * 256u) {
                    var i = min(b * 256u, p.n);
                    while (i > (b - 1u) * 256u && !(pk_mind[i - 1u] > 0.0)) { i--; }
                    if (i > (b - 1u) * 256u) { pick = i - 1u; }
                }
            }
        }
    }
    pk_pair[0] = p.count;
    pk_pair[1] = pick;
}

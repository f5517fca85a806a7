//! Hostile input for the file readers: seeded mutation fuzzing of small valid files, plus one
//! deterministic test per known class of lying or garbage input.
//!
//! The property, for every reader and every mutant: the reader returns (no panic, no hang, no
//! allocation sized by a lying header), and the result is either `Ok` with consistent shapes
//! and finite values, or an error whose text names the file and stays short.
//!
//! No fuzzing crate: a splitmix64 generator with fixed seeds, so a failure reproduces on every
//! run; the failing mutant is kept on disk and its path is in the panic message. A counting
//! global allocator records the largest single allocation each reader call makes.

use semid::data::csv_embeddings::{read_csv_embeddings, CsvEmbeddings, IdColumn};
use semid::data::movielens::{item_texts, load_ml100k, load_ml1m, KnowledgeGraph, MovieLens};
use semid::data::npy::{
    read_npy_f32, read_npy_i64, read_npy_modality, read_npy_u32, write_npy_f16, write_npy_f32,
    write_npy_u32,
};
use semid::data::safetensors_io::{read_safetensors, write_safetensors, StoreAs};
use semid::data::{
    load_interactions, load_interactions_for_items, load_item_table, Interactions, ItemTable,
    Modality,
};
use semid::Error;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

// ---------------------------------------------------------------- allocation watch

/// The system allocator, recording the largest single request of each thread, and refusing
/// (so the process aborts with the size) any request over 4 GiB.
struct Watched;

const REFUSE_ABOVE: usize = 4 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    size <= REFUSE_ABOVE
}

unsafe impl GlobalAlloc for Watched {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watched = Watched;

// ---------------------------------------------------------------- harness

/// What a reader call must not exceed in one allocation: a generous multiple of the input.
fn allocation_budget(input_len: usize) -> usize {
    64 * input_len + (4 << 20)
}

/// Runs `check` on a fresh thread under `catch_unwind`, waiting at most 10 s for it. Returns
/// its verdict and the largest single allocation it made; a panic or a timeout is an `Err`.
fn guarded(
    check: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> (Result<(), String>, usize) {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || {
            LARGEST.with(|c| c.set(0));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
            let largest = LARGEST.with(Cell::get);
            let verdict = match r {
                Ok(v) => v,
                Err(payload) => {
                    let msg = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "(non-string payload)".into());
                    Err(format!("reader panicked: {msg}"))
                }
            };
            let _ = tx.send((verdict, largest));
        })
        .expect("spawn reader thread");
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(v) => v,
        Err(_) => (Err("reader did not return within 10 s (hang?)".into()), 0),
    }
}

/// The longest error text accepted, not counting the file path it names.
const MAX_ERROR_CHARS: usize = 700;

/// Checks one reader result: `Ok` values go through `ok`; an error must name `file` (its full
/// path) and be at most [`MAX_ERROR_CHARS`] characters besides the path.
fn verdict<T>(
    reader: &str,
    file: &Path,
    r: semid::Result<T>,
    ok: impl FnOnce(&T) -> Result<(), String>,
) -> Result<(), String> {
    match r {
        Ok(v) => ok(&v).map_err(|m| format!("{reader}: Ok but {m}")),
        Err(e) => {
            let text = e.to_string();
            let path = file.display().to_string();
            if !text.contains(&path) {
                return Err(format!("{reader}: error does not name {path}: {text}"));
            }
            let len = text.chars().count() - path.chars().count();
            if len > MAX_ERROR_CHARS {
                return Err(format!("{reader}: error text is {len} characters: {text}"));
            }
            Ok(())
        }
    }
}

/// A unique, empty folder for one test.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short, printable preview of a mutant for failure messages.
fn preview(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .take(160)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > 160 {
        format!("{s}… ({} bytes)", bytes.len())
    } else {
        s
    }
}

// ---------------------------------------------------------------- mutations

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const INTERESTING: &[u8] = &[
    0, 0xFF, b'"', b',', b'\n', b'\t', b'\r', b' ', b'0', b'1', b'9', b'-', b'+', b'.', b'e', b':',
    b'(', b')', b'{', b'}', b'[', b']', b'\'', 0x7F, 0x80, 0xC3,
];

const BAD_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
];

fn long_digits() -> String {
    "9".repeat(400)
}

/// Tokens spliced into text: special floats, overflowing integers, quoting characters.
fn tokens() -> Vec<String> {
    let mut t: Vec<String> = [
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "Infinity",
        "1e999",
        "-1e999",
        "1e-42",
        "1e-320",
        "-0",
        "0x10",
        "+",
        "-",
        "e5",
        ".",
        "",
        "\"",
        "\"\"",
        "\"a,b\"",
        ",,",
        "\t\t",
        "\r\n",
        "\n\n",
        "\u{feff}",
        "18446744073709551616",
        "4294967296",
        "-1",
        "9223372036854775807",
        "3.4028236e38",
        "1e308",
        "True",
        "None",
        "'",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.push(long_digits());
    t.push(format!("1{}.5", "0".repeat(400)));
    t.push(format!("0.{}1", "0".repeat(400)));
    t
}

/// Numbers that make a dimension, an offset or a length absurd.
const HUGE: &[&str] = &[
    "4611686018427387904",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967295",
    "2305843009213693951",
    "99999999999999999999999",
    "1099511627776",
    "0",
];

/// Byte ranges of the runs of ASCII digits in `b`.
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// A format-specific mutation (e.g. a binary header length set to a huge value).
type Extra = fn(&mut Rng, &mut Vec<u8>);

fn mutate_once(rng: &mut Rng, b: &mut Vec<u8>, tokens: &[String], extra: Option<Extra>) {
    let len = b.len();
    let pos = rng.below(len + 1);
    match rng.below(12) {
        0 if len > 0 => {
            let i = rng.below(len);
            b[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            b[i] = *rng.pick(INTERESTING);
        }
        2 => {
            let s = rng.pick(BAD_UTF8);
            b.splice(pos..pos, s.iter().copied());
        }
        3 => b.truncate(rng.below(len + 1)),
        4 if len > 0 => {
            let s = rng.below(len);
            let e = (s + 1 + rng.below(64)).min(len);
            let slice = b[s..e].to_vec();
            let at = rng.below(b.len() + 1);
            b.splice(at..at, slice);
        }
        5 => {
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(pos..pos, bytes);
        }
        6 => {
            let t = rng.pick(tokens).clone();
            b.splice(pos..pos, t.into_bytes());
        }
        7 | 8 => {
            let runs = digit_runs(b);
            if !runs.is_empty() {
                let (s, e) = *rng.pick(&runs);
                let t = if rng.below(2) == 0 {
                    rng.pick(tokens).clone()
                } else {
                    rng.pick(HUGE).to_string()
                };
                b.splice(s..e, t.into_bytes());
            }
        }
        9 if len > 0 => {
            let s = rng.below(len);
            let e = (s + 1 + rng.below(16)).min(len);
            b.drain(s..e);
        }
        10 | 11 => match extra {
            Some(f) => f(rng, b),
            None => {
                let t = rng.pick(tokens).clone();
                b.splice(pos..pos, t.into_bytes());
            }
        },
        _ => {}
    }
}

/// A mutant of `seed`: one to four mutations.
fn mutant(rng: &mut Rng, seed: &[u8], tokens: &[String], extra: Option<Extra>) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut b, tokens, extra);
    }
    b.truncate(1 << 16);
    b
}

/// One seed file for a fuzz run: its file name (the extension picks the format) and bytes.
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
}

/// Runs `iterations` mutants of `seeds` through `check(path)`, each written to `dir/name`.
/// Panics with the mutant's path and preview on the first failure.
fn fuzz(
    test: &str,
    seeds: &[Seed],
    iterations: usize,
    rng_seed: u64,
    extra: Option<Extra>,
    check: fn(&Path) -> Result<(), String>,
) {
    let dir = tmpdir(test);
    let tokens = tokens();
    let mut rng = Rng(rng_seed);
    // The seeds themselves must load.
    for s in seeds {
        let p = dir.join(s.name);
        std::fs::write(&p, &s.bytes).unwrap();
        let (v, _) = guarded(move || check(&p));
        v.unwrap_or_else(|m| panic!("{test}: valid seed {} fails: {m}", s.name));
    }
    for it in 0..iterations {
        let s = rng.pick(seeds);
        let bytes = mutant(&mut rng, &s.bytes, &tokens, extra);
        let p = dir.join(s.name);
        std::fs::write(&p, &bytes).unwrap();
        let q = p.clone();
        let (v, largest) = guarded(move || check(&q));
        let fail = |m: String| -> ! {
            let keep = dir.join(format!("failing-{it}-{}", s.name));
            let _ = std::fs::write(&keep, &bytes);
            panic!(
                "{test}: iteration {it} (seed file {}): {m}\n  mutant kept at {}\n  bytes: {}",
                s.name,
                keep.display(),
                preview(&bytes)
            )
        };
        if let Err(m) = v {
            fail(m);
        }
        if largest > allocation_budget(bytes.len()) {
            fail(format!(
                "one allocation of {largest} bytes for a {}-byte file",
                bytes.len()
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- invariants of Ok results

fn finite(data: &[f32]) -> Result<(), String> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!("value {i} is {}", data[i])),
        None => Ok(()),
    }
}

fn modality_ok(m: &Modality) -> Result<(), String> {
    if m.dim == 0 {
        return Err("dim is 0".into());
    }
    if !m.data.len().is_multiple_of(m.dim) {
        return Err(format!(
            "{} values do not fill rows of {}",
            m.data.len(),
            m.dim
        ));
    }
    finite(&m.data)
}

fn shape_holds(shape: &[usize], len: usize) -> Result<(), String> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n == len => Ok(()),
        _ => Err(format!("shape {shape:?} but {len} values")),
    }
}

fn csv_ok(e: &CsvEmbeddings) -> Result<(), String> {
    modality_ok(&e.modality)?;
    if e.modality.rows() != e.lines.len() {
        return Err(format!(
            "{} rows, {} line numbers",
            e.modality.rows(),
            e.lines.len()
        ));
    }
    if let Some(ids) = &e.ids {
        if ids.len() != e.lines.len() {
            return Err(format!("{} ids for {} rows", ids.len(), e.lines.len()));
        }
    }
    Ok(())
}

fn interactions_ok(i: &Interactions) -> Result<(), String> {
    if i.rows.is_empty() {
        return Err("no rows".into());
    }
    for r in &i.rows {
        if r.user as usize >= i.users.len() || r.item as usize >= i.items.len() {
            return Err(format!("row {r:?} indexes past the users or items"));
        }
        if !r.label.is_finite() {
            return Err(format!("label {}", r.label));
        }
    }
    Ok(())
}

fn item_table_ok(t: &ItemTable) -> Result<(), String> {
    if t.ids.is_empty() || t.ids.iter().any(|i| i.is_empty()) {
        return Err("no ids, or an empty id".into());
    }
    let unique: std::collections::HashSet<&String> = t.ids.iter().collect();
    if unique.len() != t.ids.len() {
        return Err("repeated ids".into());
    }
    if let Some((name, v)) = t.fields.iter().find(|(_, v)| v.len() != t.ids.len()) {
        return Err(format!(
            "field {name} has {} values for {} ids",
            v.len(),
            t.ids.len()
        ));
    }
    if let Some(l) = &t.labels {
        if l.len() != t.ids.len() || l.iter().any(|&x| x as usize >= t.label_names.len()) {
            return Err("labels do not match ids or label names".into());
        }
    }
    Ok(())
}

fn movielens_ok(ml: &MovieLens) -> Result<(), String> {
    item_table_ok(&ml.items)?;
    interactions_ok(&ml.interactions)?;
    if ml.interactions.items != ml.items.ids {
        return Err("interaction items differ from the item ids".into());
    }
    if item_texts(&ml.items).len() != ml.items.ids.len() {
        return Err("item_texts length".into());
    }
    Ok(())
}

// ---------------------------------------------------------------- seeds

/// A `.npy` file built by hand (independent of the library's writer).
fn npy_bytes(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let f = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}");
    let pre = if version == 1 { 10 } else { 12 };
    while (pre + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((h.len() as u16).to_le_bytes());
    } else {
        out.extend((h.len() as u32).to_le_bytes());
    }
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn written(dir: &Path, name: &str, write: impl FnOnce(&Path)) -> Vec<u8> {
    let p = dir.join(name);
    write(&p);
    std::fs::read(&p).unwrap()
}

fn npy_seeds() -> Vec<Seed> {
    let d = tmpdir("npy-seeds");
    let vals: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    let f32_file = written(&d, "a.npy", |p| write_npy_f32(p, &[3, 4], &vals).unwrap());
    let f16_file = written(&d, "b.npy", |p| {
        write_npy_f16(p, &[2, 5], &vals[..10]).unwrap()
    });
    let u32_file = written(&d, "c.npy", |p| {
        write_npy_u32(p, &[2, 3], &[0, 1, 7, 255, 65536, 9]).unwrap()
    });
    let be: Vec<u8> = vals[..6].iter().flat_map(|x| x.to_be_bytes()).collect();
    let f64s: Vec<u8> = vals[..4]
        .iter()
        .flat_map(|&x| (x as f64).to_le_bytes())
        .collect();
    let _ = std::fs::remove_dir_all(&d);
    vec![
        Seed {
            name: "m.npy",
            bytes: f32_file,
        },
        Seed {
            name: "m.npy",
            bytes: f16_file,
        },
        Seed {
            name: "m.npy",
            bytes: u32_file,
        },
        Seed {
            name: "m.npy",
            bytes: npy_bytes(1, "<f4", true, "(3, 2)", &f32_le(&vals[..6])),
        },
        Seed {
            name: "m.npy",
            bytes: npy_bytes(2, ">f4", false, "(2, 3)", &be),
        },
        Seed {
            name: "m.npy",
            bytes: npy_bytes(3, "<f8", false, "(2, 2)", &f64s),
        },
        Seed {
            name: "m.npy",
            bytes: npy_bytes(1, "<f4", false, "(4,)", &f32_le(&vals[..4])),
        },
    ]
}

/// npy: the version byte, or the header length field set to a random or huge value.
fn npy_extra(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.len() < 12 {
        return;
    }
    match rng.below(4) {
        0 => b[6] = *rng.pick(&[0u8, 1, 2, 3, 4, 255]),
        1 => {
            let r = rng.next() as u16;
            let v = *rng.pick(&[0u16, 1, 0xFFFF, 0x8000, r]);
            b[8..10].copy_from_slice(&v.to_le_bytes());
        }
        2 => {
            let r = rng.next() as u32;
            let v = *rng.pick(&[0u32, u32::MAX, 0x8000_0000, r]);
            b[8..12].copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            // A shape dimension set to a huge number.
            let text = String::from_utf8_lossy(b).into_owned();
            if let Some(s) = text.find("'shape': (") {
                let at = s + "'shape': (".len();
                if at <= b.len() {
                    let h = rng.pick(HUGE).to_string();
                    b.splice(at..at, format!("{h}, ").into_bytes());
                }
            }
        }
    }
}

fn check_npy(p: &Path) -> Result<(), String> {
    verdict("read_npy_modality", p, read_npy_modality(p, "m"), |m| {
        modality_ok(m)?;
        if m.name != "m" {
            return Err(format!("name {}", m.name));
        }
        Ok(())
    })?;
    verdict("read_npy_f32", p, read_npy_f32(p), |a| {
        shape_holds(&a.shape, a.data.len())
    })?;
    verdict("read_npy_i64", p, read_npy_i64(p), |a| {
        shape_holds(&a.shape, a.data.len())
    })?;
    verdict("read_npy_u32", p, read_npy_u32(p), |a| {
        shape_holds(&a.shape, a.data.len())
    })
}

fn modality(name: &str, rows: usize, dim: usize) -> Modality {
    Modality {
        name: name.into(),
        dim,
        data: (0..rows * dim).map(|i| (i as f32 * 0.37).sin()).collect(),
    }
}

fn safetensors_seeds() -> Vec<Seed> {
    let d = tmpdir("st-seeds");
    let one = written(&d, "one.safetensors", |p| {
        write_safetensors(p, &[modality("a", 3, 4)], StoreAs::F32).unwrap()
    });
    let two = written(&d, "two.safetensors", |p| {
        write_safetensors(p, &[modality("a", 2, 3), modality("b", 2, 2)], StoreAs::F16).unwrap()
    });
    let _ = std::fs::remove_dir_all(&d);
    let bf16: Vec<u8> = [0.5f32, -1.0, 2.0, 0.25]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let plain = safetensors::serialize(
        [
            (
                "a",
                safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![2, 2], &bf16)
                    .unwrap(),
            ),
            (
                "c",
                safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![1, 2], &f64s)
                    .unwrap(),
            ),
        ],
        None,
    )
    .unwrap();
    vec![
        Seed {
            name: "m.safetensors",
            bytes: one,
        },
        Seed {
            name: "m.safetensors",
            bytes: two,
        },
        Seed {
            name: "m.safetensors",
            bytes: plain,
        },
    ]
}

/// safetensors: the 8-byte header length set to a random or huge value.
// The signature is that of every format-specific mutation (`npy_extra` may grow the file).
#[allow(clippy::ptr_arg)]
fn safetensors_extra(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.len() < 8 {
        return;
    }
    let len = b.len() as u64;
    let r = rng.next() % 256;
    let v = *rng.pick(&[u64::MAX, 1 << 40, 100_000_001, len, len - 7, 0, 2, r]);
    b[..8].copy_from_slice(&v.to_le_bytes());
}

fn check_safetensors(p: &Path) -> Result<(), String> {
    let all = |ms: &Vec<Modality>| ms.iter().try_for_each(modality_ok);
    verdict("read_safetensors(all)", p, read_safetensors(p, None), all)?;
    let a = ["a".to_string()];
    verdict(
        "read_safetensors(a)",
        p,
        read_safetensors(p, Some(&a)),
        |ms| {
            if ms.len() != 1 || ms[0].name != "a" {
                return Err("asked for `a`, got something else".into());
            }
            all(ms)
        },
    )
}

fn csv_seeds() -> Vec<Seed> {
    let s = |name, text: &str| Seed {
        name,
        bytes: text.as_bytes().to_vec(),
    };
    vec![
        s(
            "e.csv",
            "id,e0,e1,e2\na,0.5,-1,2e-3\n\"b, c\",1,2,3\n\"d\"\"q\",4,5,6\n",
        ),
        s(
            "e.csv",
            "\u{feff}item_id,x,y\r\n1,0.25,1e-42\r\n\r\n2,-0,3\r\n",
        ),
        s("e.csv", "0.1,0.2\n0.3,0.4\n-1.5,2.5\n"),
        s("e.csv", "x,1,2\ny,3,4\n"),
        s("e.tsv", "item\tv0\tv1\n\"q, r\"\t0.5\t0.25\nz\t1\t2\n"),
        s("e.txt", "1\t2\t3\n4\t5\t6\n"),
    ]
}

fn check_csv(p: &Path) -> Result<(), String> {
    for (label, id) in [
        ("auto", IdColumn::Auto),
        ("yes", IdColumn::Yes),
        ("no", IdColumn::No),
    ] {
        verdict(
            &format!("read_csv_embeddings({label})"),
            p,
            read_csv_embeddings(p, "t", id),
            csv_ok,
        )?;
    }
    Ok(())
}

fn interaction_seeds() -> Vec<Seed> {
    let s = |name, text: &str| Seed {
        name,
        bytes: text.as_bytes().to_vec(),
    };
    vec![
        s("i.csv", "user,item,rating,timestamp\n1,a,4,100\n2,\"b, c\",3.5,101.5\n1,b,1e-42,99\n"),
        s("i.tsv", "user_id\titem_id\trating\nu1\ta\t5\nu2\tb\t3\n"),
        s("i.txt", "1\ta\t3\t881250949\n2\tb\t4\t891717742\n"),
        s(
            "i.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
             1\ta\t4\t874965758\r\n2\tb\t2\t876893171\r\n\r\n",
        ),
        s("t.item", "item_id:token\tmovie_title:token_seq\tgenre:token_seq\n1\tToy Story\tAnimation Comedy\n2\tHeat\tAction\n"),
        s("t.csv", "item,title,genres\n1,\"A, b\",Action|Comedy\n2,B,\n"),
    ]
}

fn check_interactions(p: &Path) -> Result<(), String> {
    verdict(
        "load_interactions",
        p,
        load_interactions(p),
        interactions_ok,
    )?;
    let known: Vec<String> = ["a", "b", "b, c", "1", "2"].map(String::from).to_vec();
    verdict(
        "load_interactions_for_items",
        p,
        load_interactions_for_items(p, &known),
        |i| {
            interactions_ok(i)?;
            if i.items != known {
                return Err("items are not the known ids".into());
            }
            Ok(())
        },
    )?;
    verdict("load_item_table", p, load_item_table(p), item_table_ok)
}

const ML100K_ITEM: &str =
    "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
1\tToy Story\t1995\tAnimation Children's Comedy\n\
2\tGoldenEye\t1995\tAction Adventure Thriller\n\
4\tGet Shorty\tunkonwn\tAction Comedy Drama\n";
const ML100K_INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
196\t1\t3\t881250949\n186\t2\t3\t891717742\n22\t4\t1\t878887116\n";
const ML1M_ITEM: &str = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n\
Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\r\n\
Heat (1995)\tHeat\t1995\tAction Crime Thriller\r\n";
const ML1M_INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n\
1\tHeat (1995)\t5\t978300760\r\n2\tToy Story (1995)\t3\t978302109.0\r\n";
const KG_LINK: &str = "item_id:token\tentity_id:token\n1\tm.a\n2\tm.b\n";
const KG_KG: &str = "head_id:token\trelation_id:token\ttail_id:token\nm.a\tr\tm.c\nm.b\tr\tm.c\n";

fn movielens_seeds() -> Vec<Seed> {
    let s = |name, text: &str| Seed {
        name,
        bytes: text.as_bytes().to_vec(),
    };
    vec![
        s("ml-100k.item", ML100K_ITEM),
        s("ml-100k.inter", ML100K_INTER),
        s("ml-1m.item", ML1M_ITEM),
        s("ml-1m.inter", ML1M_INTER),
        s("ml-100k.link", KG_LINK),
        s("ml-100k.kg", KG_KG),
    ]
}

/// Writes the unmutated partner files of `p` beside it (unless `p` is one of them), then runs
/// the loader of the data set `p` belongs to.
fn check_movielens(p: &Path) -> Result<(), String> {
    let dir = p.parent().unwrap();
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    for (n, text) in [
        ("ml-100k.item", ML100K_ITEM),
        ("ml-100k.inter", ML100K_INTER),
        ("ml-1m.item", ML1M_ITEM),
        ("ml-1m.inter", ML1M_INTER),
        ("ml-100k.link", KG_LINK),
        ("ml-100k.kg", KG_KG),
    ] {
        if n != name {
            std::fs::write(dir.join(n), text).unwrap();
        }
    }
    // A data set spans several files: a mutated item file may be reported where the
    // interactions first disagree with it, so the error must name a file of the folder.
    if name.starts_with("ml-1m") {
        verdict("load_ml1m", dir, load_ml1m(dir), movielens_ok)
    } else if name.ends_with(".link") || name.ends_with(".kg") {
        let kg = KnowledgeGraph::load(&dir.join("ml-100k.link"), &dir.join("ml-100k.kg"));
        verdict("KnowledgeGraph::load", dir, kg, |kg| {
            let ids: Vec<String> = ["1", "2", "3"].map(String::from).to_vec();
            let m = kg.modality(&ids, 4, 7).map_err(|e| e.to_string())?;
            modality_ok(&m.modality)
        })
    } else {
        verdict("load_ml100k", dir, load_ml100k(dir), movielens_ok)
    }
}

// ---------------------------------------------------------------- fuzz runs

#[test]
fn npy_reader_never_panics_on_mutated_files() {
    fuzz(
        "npy",
        &npy_seeds(),
        600,
        0x5eed_0001,
        Some(npy_extra),
        check_npy,
    );
}

#[test]
fn safetensors_reader_never_panics_on_mutated_files() {
    fuzz(
        "st",
        &safetensors_seeds(),
        600,
        0x5eed_0002,
        Some(safetensors_extra),
        check_safetensors,
    );
}

#[test]
fn csv_embeddings_reader_never_panics_on_mutated_files() {
    fuzz("csv", &csv_seeds(), 800, 0x5eed_0003, None, check_csv);
}

#[test]
fn interaction_and_item_table_readers_never_panic_on_mutated_files() {
    fuzz(
        "inter",
        &interaction_seeds(),
        800,
        0x5eed_0004,
        None,
        check_interactions,
    );
}

#[test]
fn movielens_and_kg_loaders_never_panic_on_mutated_files() {
    fuzz(
        "ml",
        &movielens_seeds(),
        600,
        0x5eed_0005,
        None,
        check_movielens,
    );
}

// ---------------------------------------------------------------- specific classes

/// `(row, field, message)` of a data error naming `file`, else a panic.
#[track_caller]
fn data_err<T: std::fmt::Debug>(r: semid::Result<T>, file: &Path) -> (usize, String, String) {
    match r.expect_err("expected an error") {
        Error::Data {
            file: f,
            row,
            field,
            message,
        } => {
            assert_eq!(f, file);
            (row, field, message)
        }
        other => panic!("expected a data error, got {other}"),
    }
}

/// Runs `f` guarded; asserts it returned, within the allocation budget of a small file.
#[track_caller]
fn small_and_quick(what: &str, f: impl FnOnce() -> Result<(), String> + Send + 'static) {
    let (v, largest) = guarded(f);
    v.unwrap_or_else(|m| panic!("{what}: {m}"));
    assert!(
        largest < 1 << 20,
        "{what}: one allocation of {largest} bytes"
    );
}

#[test]
fn npy_huge_declared_shape_is_an_error_not_an_allocation() {
    let d = tmpdir("npy-huge");
    let data = f32_le(&[1.0; 8]);
    for (i, (shape, field, needle)) in [
        (
            "(4611686018427387904, 4611686018427387904)",
            "shape",
            "overflows",
        ),
        ("(18446744073709551615, 2)", "shape", "overflows"),
        (
            "(18446744073709551616, 2)",
            "shape",
            "not a tuple of integers",
        ),
        (
            &format!("({}, 2)", long_digits()),
            "shape",
            "not a tuple of integers",
        ),
        ("(1099511627776, 4)", "data", "truncated"),
        ("(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)", "data", "truncated"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = d.join(format!("h{i}.npy"));
        std::fs::write(&p, npy_bytes(1, "<f4", false, shape, &data)).unwrap();
        let (field, needle) = (field.to_string(), needle.to_string());
        small_and_quick(shape, move || {
            let (row, f, m) = data_err(read_npy_modality(&p, "m"), &p);
            // A shape error is in the header (row 0); a truncation names the first row the
            // data section cannot hold.
            assert_eq!(f.as_str(), field.as_str(), "{m}");
            if field == "shape" {
                assert_eq!(row, 0, "{m}");
            }
            assert!(m.contains(&needle), "{m}");
            assert!(m.chars().count() < 200, "{m}");
            Ok(())
        });
    }
    // A Fortran-order array with a zero dimension and a huge other one holds nothing: no
    // element is visited (this used to loop 2^60 times).
    let p = d.join("fz.npy");
    std::fs::write(
        &p,
        npy_bytes(1, "<f4", true, "(1152921504606846976, 0)", &[]),
    )
    .unwrap();
    small_and_quick("fortran (2^60, 0)", move || {
        let a = read_npy_f32(&p).map_err(|e| e.to_string())?;
        assert_eq!((a.shape.len(), a.data.len()), (2, 0));
        let (_, f, m) = data_err(read_npy_modality(&p, "m"), &p);
        assert_eq!(f, "shape", "{m}");
        assert!(m.contains("width is 0"), "{m}");
        Ok(())
    });
    // A header length beyond the file, in both length fields.
    for (v, len) in [(1u8, vec![0xFF, 0xFF]), (2, vec![0xFF, 0xFF, 0xFF, 0xFF])] {
        let mut b = npy_bytes(v, "<f4", false, "(2, 4)", &data);
        b[8..8 + len.len()].copy_from_slice(&len);
        let p = d.join(format!("len{v}.npy"));
        std::fs::write(&p, b).unwrap();
        small_and_quick("header length", move || {
            let (_, f, m) = data_err(read_npy_f32(&p), &p);
            assert_eq!(f, "header", "{m}");
            assert!(m.contains("truncated"), "{m}");
            Ok(())
        });
    }
    // A version 2 file cut inside its 4-byte length field.
    let p = d.join("v2.npy");
    std::fs::write(&p, b"\x93NUMPY\x02\x00\x10\x00\x00").unwrap();
    let (_, f, m) = data_err(read_npy_f32(&p), &p);
    assert_eq!(f, "header");
    assert!(m.contains("truncated"), "{m}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A safetensors file with a hand-written JSON header.
fn st_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn safetensors_huge_header_length_or_offsets_is_an_error_not_an_allocation() {
    let d = tmpdir("st-huge");
    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    let ok = st_bytes(
        r#"{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#,
        &f32_le(&[1.0, 2.0]),
    );
    for n in [u64::MAX, 1 << 40, 100_000_001] {
        let mut b = ok.clone();
        b[..8].copy_from_slice(&n.to_le_bytes());
        cases.push((format!("header length {n}"), b, "header"));
    }
    cases.push((
        "shape 2^40 x 2^40".into(),
        st_bytes(
            r#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}}"#,
            &f32_le(&[1.0, 2.0]),
        ),
        "header",
    ));
    cases.push((
        "offsets to 2^62".into(),
        st_bytes(
            r#"{"a":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,4611686018427387904]}}"#,
            &f32_le(&[1.0, 2.0]),
        ),
        "data",
    ));
    // Eight tensors whose sizes add up to just under 2^64: the offsets are each valid, but the
    // end of the data plus the header length overflows (the safetensors crate's own check
    // overflows here in a debug build, so the reader must refuse first).
    let step: u64 = u64::MAX / 8;
    let tensors: Vec<String> = (0..8u64)
        .map(|k| {
            format!(
                r#""t{k}":{{"dtype":"U8","shape":[{step}],"data_offsets":[{},{}]}}"#,
                k * step,
                (k + 1) * step
            )
        })
        .collect();
    cases.push((
        "offsets summing past 2^64".into(),
        st_bytes(&format!("{{{}}}", tensors.join(",")), &[0; 8]),
        "data",
    ));
    for (i, (what, bytes, field)) in cases.into_iter().enumerate() {
        let p = d.join(format!("c{i}.safetensors"));
        std::fs::write(&p, bytes).unwrap();
        small_and_quick(&what.clone(), move || {
            let (row, f, m) = data_err(read_safetensors(&p, None), &p);
            assert_eq!((row, f.as_str()), (0, field), "{what}: {m}");
            assert!(m.chars().count() < 200, "{what}: {m}");
            Ok(())
        });
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Asserts a short data error on `file`, line `row`, field `field`, that quotes at most 40
/// characters of the 400-digit token.
#[track_caller]
fn assert_short<T: std::fmt::Debug>(r: semid::Result<T>, file: &Path, row: usize, field: &str) {
    let e = r.expect_err("expected an error");
    let text = e.to_string();
    let (row_, field_, message) = data_err(Err::<T, _>(e), file);
    assert_eq!((row_, field_.as_str()), (row, field), "{text}");
    assert!(
        message.chars().count() < 200,
        "{} characters: {message}",
        message.len()
    );
    assert!(!message.contains(&"9".repeat(41)), "{message}");
    assert!(
        text.chars().count() < 200 + file.display().to_string().len(),
        "{text}"
    );
}

#[test]
fn a_400_digit_number_gives_a_short_error() {
    let d = tmpdir("digits");
    let n = long_digits();
    let w = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = w("v.csv", format!("id,e0,e1\na,1,2\nb,3,{n}x\n"));
    assert_short(read_csv_embeddings(&p, "t", IdColumn::Auto), &p, 3, "e1");
    let p = w("inf.csv", format!("id,e0,e1\na,1,{n}\n"));
    assert_short(read_csv_embeddings(&p, "t", IdColumn::Auto), &p, 2, "e1");
    let p = w("r.csv", format!("user,item,rating\n1,a,4\n2,b,{n}\n"));
    assert_short(load_interactions(&p), &p, 3, "rating");
    let p = w("t.csv", format!("user,item,timestamp\n1,a,{n}\n"));
    assert_short(load_interactions(&p), &p, 2, "timestamp");
    let p = w("t2.csv", format!("user,item,timestamp\n1,a,{n}x\n"));
    assert_short(load_interactions(&p), &p, 2, "timestamp");
    let p = w("k.csv", format!("user,item\n1,a\n2,{n}\n"));
    assert_short(
        load_interactions_for_items(&p, &["a".to_string()]),
        &p,
        3,
        "item",
    );
    let p = w("dup.csv", format!("item,title\n{n},x\n{n},y\n"));
    assert_short(load_item_table(&p), &p, 3, "item");

    let ml = tmpdir("digits-ml");
    let item = ml.join("ml-100k.item");
    let inter = ml.join("ml-100k.inter");
    std::fs::write(&inter, ML100K_INTER).unwrap();
    std::fs::write(
        &item,
        format!("item_id:token\tmovie_title:token_seq\trelease_year:float\tclass:token_seq\n1\tA\t{n}x\tDrama\n"),
    )
    .unwrap();
    assert_short(load_ml100k(&ml), &item, 2, "release_year");
    // A 400-digit year parses (as 1e400 = inf, or a huge integer) but is no year.
    std::fs::write(
        &item,
        format!("item_id:token\tmovie_title:token_seq\trelease_year:float\tclass:token_seq\n1\tA\t{n}\tDrama\n"),
    )
    .unwrap();
    assert_short(load_ml100k(&ml), &item, 2, "release_year");
    std::fs::write(&item, ML100K_ITEM).unwrap();
    for (col, field) in [(1, "item_id"), (2, "rating"), (3, "timestamp")] {
        let mut f = ["196", "1", "3", "881250949"].map(String::from);
        f[col] = n.clone();
        std::fs::write(
            &inter,
            format!(
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n{}\n",
                f.join("\t")
            ),
        )
        .unwrap();
        assert_short(load_ml100k(&ml), &inter, 2, field);
    }

    let p = d.join("n.npy");
    std::fs::write(
        &p,
        npy_bytes(1, &format!("<f{n}"), false, "(1, 1)", &[0; 4]),
    )
    .unwrap();
    assert_short(read_npy_f32(&p), &p, 0, "descr");
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&ml);
}

#[test]
fn a_value_that_parses_to_infinity_is_an_error_naming_row_and_field() {
    let d = tmpdir("inf");
    let w = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = w("e.csv", "id,e0,e1\na,1,2\nb,1e999,2\n");
    let (row, f, m) = data_err(read_csv_embeddings(&p, "t", IdColumn::Auto), &p);
    assert_eq!((row, f.as_str()), (3, "e0"), "{m}");
    let p = w("e.tsv", "0.5\t-1e999\n");
    let (row, f, _) = data_err(read_csv_embeddings(&p, "t", IdColumn::No), &p);
    assert_eq!((row, f.as_str()), (1, "column 1"));
    let p = w("r.csv", "user,item,rating,timestamp\n1,a,1e999,5\n");
    let (row, f, _) = data_err(load_interactions(&p), &p);
    assert_eq!((row, f.as_str()), (2, "rating"));
    let p = w("t.csv", "user,item,rating,timestamp\n1,a,1,1e999\n");
    let (row, f, _) = data_err(load_interactions(&p), &p);
    assert_eq!((row, f.as_str()), (2, "timestamp"));

    let ml = tmpdir("inf-ml");
    std::fs::write(ml.join("ml-100k.item"), ML100K_ITEM).unwrap();
    let inter = ml.join("ml-100k.inter");
    for (col, field) in [(2, "rating"), (3, "timestamp")] {
        let mut f = ["196", "1", "3", "881250949"];
        f[col] = "1e999";
        std::fs::write(
            &inter,
            format!(
                "user_id:token\titem_id:token\trating:float\ttimestamp:float\n{}\n",
                f.join("\t")
            ),
        )
        .unwrap();
        let (row, fl, _) = data_err(load_ml100k(&ml), &inter);
        assert_eq!((row, fl.as_str()), (2, field));
    }

    // A subnormal value is finite and kept.
    let p = w("s.csv", "id,e0\na,1e-42\n");
    let e = read_csv_embeddings(&p, "t", IdColumn::Auto).unwrap();
    assert!(e.modality.data[0] > 0.0 && e.modality.data[0].is_finite());
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&ml);
}

#[test]
fn a_non_utf8_byte_in_an_id_column_is_reported_as_the_id_field_on_its_line() {
    let d = tmpdir("utf8");
    let w = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let check = |p: &Path, id: IdColumn, row: usize, field: &str| {
        let (r, f, m) = data_err(read_csv_embeddings(p, "t", id), p);
        assert_eq!((r, f.as_str()), (row, field), "{}: {m}", p.display());
        assert!(m.contains("UTF-8"), "{m}");
    };
    // With a header: the id column's name.
    let p = w("h.csv", b"id,e0\na,1\n\nb\xff,2\n");
    check(&p, IdColumn::Auto, 4, "id");
    let p = w("item.csv", b"item_id,e0\na,1\n\"x, \xc3\",2\n");
    check(&p, IdColumn::Auto, 3, "item_id");
    let p = w("h.tsv", b"item\te0\te1\na\t1\t2\n\xfe\t3\t4\n");
    check(&p, IdColumn::Auto, 3, "item");
    // Without a header: `id`, on the first line too.
    let p = w("n.csv", b"a,1\n\"b, \xff\",2\n");
    check(&p, IdColumn::Yes, 2, "id");
    let p = w("first.csv", b"a\xff,1,2\nb,3,4\n");
    check(&p, IdColumn::Auto, 1, "id");
    // In a value column: that column; in the header: `text`.
    let p = w("v.csv", b"id,e0,e1\na,1,2\nb,3,\xff\n");
    check(&p, IdColumn::Auto, 3, "e1");
    let p = w("hd.csv", b"id,e\xff\na,1\n");
    check(&p, IdColumn::Auto, 1, "text");
    // An earlier error in file order still comes first.
    let p = w("early.csv", b"id,e0\na,x\nb\xff,2\n");
    let (r, f, _) = data_err(read_csv_embeddings(&p, "t", IdColumn::Auto), &p);
    assert_eq!((r, f.as_str()), (2, "e0"));
    let _ = std::fs::remove_dir_all(&d);
}

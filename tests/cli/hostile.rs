//! Hostile input and faults, class by class, through the `semid` binary as a user meets them:
//! path-like and reserved names, special characters in ids, reused and foreign output
//! folders, changed settings on resume, corrupted checkpoints whose values stay finite,
//! diverging training, subnormal and non-finite inputs, bad layouts, closed pipes, and the
//! wording of errors. Each case asserts a clear error (naming what is wrong) or a correct
//! result, never a panic, a silent mix, or exit 0 on garbage. The readers' own mutation tests
//! are in `tests/data/fuzz_readers.rs`.

use semid::data::npy::write_npy_f32;
use semid::rng::Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn semid() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_semid"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c.env_remove("WGPU_BACKEND");
    c
}

fn go(args: &[&str]) -> Output {
    semid().args(args).output().expect("run semid")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = go(args);
    assert!(
        out.status.success(),
        "semid {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and expects a clean failure (exit 1, no panic); returns stderr.
fn fails(args: &[&str]) -> String {
    let out = go(args);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "semid {args:?} should fail cleanly:\n{}\n{err}",
        text(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("semid: error: "), "{err}");
    err
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small clustered data set: `n` items, two modalities (12-d and 8-d), plain ids.
struct Data {
    dir: PathBuf,
    text: PathBuf,
    audio: PathBuf,
    ids: PathBuf,
}

fn clustered(rng: &mut Rng, n: usize, dim: usize) -> Vec<f32> {
    let centers = rng.normal_vec(6 * dim);
    (0..n)
        .flat_map(|i| {
            let c = i % 6;
            (0..dim)
                .map(|j| centers[c * dim + j] + 0.1 * rng.normal() as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn data(dir: &Path, n: usize, ids: &[String]) -> Data {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(7);
    let t = dir.join("text.npy");
    let a = dir.join("audio.npy");
    write_npy_f32(&t, &[n, 12], &clustered(&mut rng, n, 12)).unwrap();
    write_npy_f32(&a, &[n, 8], &clustered(&mut rng, n, 8)).unwrap();
    let idp = dir.join("ids.txt");
    let body: String = ids.iter().map(|i| format!("{i}\n")).collect();
    std::fs::write(&idp, body).unwrap();
    Data {
        dir: dir.to_path_buf(),
        text: t,
        audio: a,
        ids: idp,
    }
}

fn plain_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("item{i}")).collect()
}

impl Data {
    fn both(&self) -> String {
        format!("text={},audio={}", s(&self.text), s(&self.audio))
    }
    fn text_only(&self) -> String {
        format!("text={}", s(&self.text))
    }
}

/// `semid tokenize` arguments for a small run (PSRQ unless a `--config` in `extra` says
/// otherwise).
fn tok<'a>(emb: &'a str, ids: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--quiet",
        "tokenize",
        "--embeddings",
        emb,
        "--ids",
        s(ids),
        "--out",
        s(out),
        "--k",
        "4",
        "--levels",
        "2",
    ];
    v.extend_from_slice(extra);
    v
}

/// Every file under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    v.sort();
    v
}

// ---- names that reach paths ----

#[test]
fn path_like_and_reserved_modality_names_are_refused_and_nothing_is_written_outside_out() {
    let root = tmp("names");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let out = root.join("a").join("b").join("out");
    let before = files_under(&root);
    for name in [
        "../../../x",
        "..",
        ".",
        ".hidden",
        "a/b",
        "a\\b",
        "joint",
        "JOINT",
        "mmq",
        "white space",
        "é",
    ] {
        let emb = format!("{name}={}", s(&d.text));
        let err = fails(&tok(&emb, &d.ids, &out, &[]));
        assert!(err.contains("modality name"), "{name}: {err}");
    }
    // A file stem that is not a valid name says how to name it.
    let odd = d.dir.join("my text.npy");
    std::fs::copy(&d.text, &odd).unwrap();
    let err = fails(&tok(s(&odd), &d.ids, &out, &[]));
    assert!(err.contains("NAME=PATH"), "{err}");
    // Only the copy made above is new: no x.npy, x.svg or checkpoint anywhere.
    let mut want = before.clone();
    want.push("data/my text.npy".into());
    want.sort();
    let after: Vec<String> = files_under(&root)
        .into_iter()
        .filter(|f| !f.starts_with("a/b/out/"))
        .collect();
    assert_eq!(after, want);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_safetensors_tensor_named_like_a_path_is_refused() {
    let root = tmp("stnames");
    let d = data(&root.join("data"), 40, &plain_ids(40));
    let m = semid::data::npy::read_npy_modality(&d.text, "../../evil").unwrap();
    let st = root.join("emb.safetensors");
    semid::data::safetensors_io::write_safetensors(
        &st,
        &[m],
        semid::data::safetensors_io::StoreAs::F32,
    )
    .unwrap();
    let out = root.join("out");
    let err = fails(&tok(s(&st), &d.ids, &out, &[]));
    assert!(err.contains("a tensor name in"), "{err}");
    assert!(!root.join("evil.npy").exists() && !root.parent().unwrap().join("evil.npy").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_checkpoint_whose_modality_names_are_path_like_is_refused_on_load() {
    use semid::io::{Checkpoint, CheckpointMeta};
    let root = tmp("cknames");
    let p = root.join("tokenizer_mmq.safetensors");
    Checkpoint {
        meta: CheckpointMeta {
            method: "mmq".into(),
            config: serde_json::to_value(semid::quant::mmq::MmqConfig::default()).unwrap(),
            fingerprint: "0".into(),
            semid_version: "0".into(),
            state: serde_json::json!({
                "dim": 4, "levels_fitted": 0, "epochs_done": 0,
                "modalities": [{"name": "../x", "dim": 4}],
            }),
        },
        tensors: vec![],
    }
    .save(&p)
    .unwrap();
    let err = semid::quant::any::AnyTokenizer::load(&p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("modality name \"../x\""), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- ids with special characters ----

#[test]
fn codes_csv_is_rfc4180_and_keeps_ids_with_commas_quotes_tabs_and_edge_spaces() {
    let root = tmp("csvids");
    let mut ids = plain_ids(60);
    ids[0] = "American President, The (1995)".into();
    ids[1] = "say \"hi\"".into();
    ids[2] = "tab\there".into();
    ids[3] = "  leading and trailing  ".into();
    ids[4] = "naïve, ünïcode".into();
    let d = data(&root.join("data"), 60, &ids);
    let out = root.join("out");
    ok(&tok(&d.both(), &d.ids, &out, &[]));
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::None)
        .from_path(out.join("codes.csv"))
        .unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[0], "item_id");
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), ids.len());
    for (row, id) in rows.iter().zip(&ids) {
        assert_eq!(&row[0], id.as_str());
        assert_eq!(row.len(), header.len());
        for f in row.iter().skip(1) {
            f.parse::<u32>().unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_non_utf8_id_is_reported_as_the_id_field_on_its_line() {
    let root = tmp("utf8");
    let d = data(&root.join("data"), 20, &plain_ids(20));
    let mut body = std::fs::read(&d.ids).unwrap();
    let at = body.iter().position(|&b| b == b'\n').unwrap() + 1; // line 2
    body.insert(at, 0xff);
    std::fs::write(&d.ids, body).unwrap();
    let err = fails(&tok(&d.text_only(), &d.ids, &root.join("out"), &[]));
    assert!(err.contains("row 2, field `id`"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- output folders ----

#[test]
fn a_new_run_into_a_used_folder_is_refused_unless_overwrite_which_clears_the_old_run() {
    let root = tmp("reuse");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let out = root.join("out");
    ok(&tok(&d.both(), &d.ids, &out, &[]));
    assert!(out.join("tokenizer_audio.safetensors").exists());
    // The one-modality run that used to leave the old audio and joint tokenizers behind.
    let err = fails(&tok(&d.text_only(), &d.ids, &out, &[]));
    assert!(
        err.contains("is not empty") && err.contains("--overwrite"),
        "{err}"
    );
    let err = fails(&tok(&d.text_only(), &d.ids, &out, &["--resume"]));
    assert!(
        err.contains("families [text, audio, joint], this run [text]"),
        "{err}"
    );
    ok(&tok(&d.text_only(), &d.ids, &out, &["--overwrite"]));
    for gone in [
        "tokenizer_audio.safetensors",
        "tokenizer_joint.safetensors",
        "codes_audio.npy",
        "clusters_joint.svg",
    ] {
        assert!(!out.join(gone).exists(), "{gone} survived --overwrite");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("semid-run.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["families"], serde_json::json!(["text"]));
    assert_eq!(manifest["complete"], serde_json::json!(true));
    let err = fails(&tok(
        &d.text_only(),
        &d.ids,
        &out,
        &["--overwrite", "--resume"],
    ));
    assert!(err.contains("exclude each other"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_folder_that_semid_did_not_write_is_never_cleared() {
    let root = tmp("foreign");
    let d = data(&root.join("data"), 40, &plain_ids(40));
    let out = root.join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("thesis.tex"), "precious").unwrap();
    for flag in ["--overwrite", "--resume"] {
        let err = fails(&tok(&d.text_only(), &d.ids, &out, &[flag]));
        assert!(err.contains("not a semid run folder"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("thesis.tex")).unwrap(),
        "precious"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn out_naming_a_file_or_an_unwritable_place_fails_before_any_training() {
    let root = tmp("badout");
    let d = data(&root.join("data"), 40, &plain_ids(40));
    let file = root.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = fails(&tok(&d.text_only(), &d.ids, &file, &[]));
    assert!(err.contains("is a file, not a folder"), "{err}");
    // Under a file: the folder cannot be created (root can write anywhere else).
    let err = fails(&tok(&d.text_only(), &d.ids, &file.join("sub"), &[]));
    assert!(err.contains("a-file/sub"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn eval_into_its_own_run_folder_is_refused() {
    let root = tmp("evalself");
    let d = data(&root.join("data"), 40, &plain_ids(40));
    let out = root.join("run");
    ok(&tok(&d.text_only(), &d.ids, &out, &[]));
    let before = std::fs::read(out.join("codes.csv")).unwrap();
    let err = fails(&[
        "--quiet",
        "eval",
        "--run",
        s(&out),
        "--embeddings",
        &d.text_only(),
        "--ids",
        s(&d.ids),
        "--out",
        s(&root.join(".").join("run")),
    ]);
    assert!(err.contains("is the run folder itself"), "{err}");
    assert_eq!(std::fs::read(out.join("codes.csv")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&root);
}

// ---- resume ----

#[test]
fn resume_with_a_changed_setting_names_the_setting_and_both_values() {
    let root = tmp("resume");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let out = root.join("out");
    ok(&tok(&d.text_only(), &d.ids, &out, &["--seed", "1"]));
    let err = fails(&tok(
        &d.text_only(),
        &d.ids,
        &out,
        &["--seed", "2", "--resume"],
    ));
    assert!(
        err.contains("`psrq.seed` is 1 in the checkpoint but 2 now"),
        "{err}"
    );
    let err = fails(&tok(
        &d.text_only(),
        &d.ids,
        &out,
        &["--seed", "1", "--prefix-weight", "0.5", "--resume"],
    ));
    assert!(err.contains("`psrq.prefix_weight` is 1.0"), "{err}");
    // The same settings resume (a finished run stays as it is).
    ok(&tok(
        &d.text_only(),
        &d.ids,
        &out,
        &["--seed", "1", "--resume"],
    ));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn rqvae_resume_with_another_learning_rate_is_refused() {
    let root = tmp("resumelr");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let out = root.join("out");
    let cfg = |lr: &str| {
        let p = root.join(format!("c{lr}.toml"));
        std::fs::write(
            &p,
            format!(
                "method = \"rqvae\"\n[rqvae]\nhidden = [16]\nlatent = 4\nepochs = 2\n\
                 batch_size = 32\nlr = {lr}\n"
            ),
        )
        .unwrap();
        p
    };
    let (a, b) = (cfg("0.001"), cfg("0.01"));
    ok(&tok(&d.text_only(), &d.ids, &out, &["--config", s(&a)]));
    let err = fails(&tok(
        &d.text_only(),
        &d.ids,
        &out,
        &["--config", s(&b), "--resume"],
    ));
    assert!(err.contains("`rqvae.lr` is 0.001"), "{err}");
    assert!(err.contains("but 0.01 now"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- checkpoints ----

#[test]
fn identical_runs_write_byte_identical_outputs() {
    let root = tmp("ident");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let cfg = root.join("rqvae.toml");
    std::fs::write(
        &cfg,
        "method = \"rqvae\"\n[rqvae]\nhidden = [16]\nlatent = 4\nepochs = 2\nbatch_size = 32\n",
    )
    .unwrap();
    for (name, extra) in [("psrq", vec![]), ("rqvae", vec!["--config", s(&cfg)])] {
        let (a, b) = (
            root.join(format!("{name}-a")),
            root.join(format!("{name}-b")),
        );
        ok(&tok(&d.both(), &d.ids, &a, &extra));
        ok(&tok(&d.both(), &d.ids, &b, &extra));
        let files = files_under(&a);
        assert_eq!(files, files_under(&b));
        assert!(
            files.iter().any(|f| f.ends_with(".safetensors")),
            "{files:?}"
        );
        for f in &files {
            assert_eq!(
                std::fs::read(a.join(f)).unwrap(),
                std::fs::read(b.join(f)).unwrap(),
                "{name}: {f} differs between identical runs"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_checkpoint_changed_after_writing_is_caught_even_when_its_values_stay_finite() {
    let root = tmp("flip");
    let d = data(&root.join("data"), 60, &plain_ids(60));
    let out = root.join("run");
    ok(&tok(&d.text_only(), &d.ids, &out, &[]));
    let ck = out.join("tokenizer_text.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    // Flip the lowest mantissa bit of the last float: still finite, a different model.
    let last = bytes.len() - 4;
    bytes[last] ^= 1;
    assert!(f32::from_le_bytes(bytes[last..].try_into().unwrap()).is_finite());
    std::fs::write(&ck, &bytes).unwrap();
    let err = fails(&[
        "--quiet",
        "eval",
        "--run",
        s(&out),
        "--embeddings",
        &d.text_only(),
        "--ids",
        s(&d.ids),
        "--out",
        s(&root.join("eval")),
    ]);
    assert!(err.contains("content hash mismatch"), "{err}");
    let err = fails(&tok(&d.text_only(), &d.ids, &out, &["--resume"]));
    assert!(err.contains("content hash mismatch"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- training faults ----

#[test]
fn diverging_training_stops_with_an_error_naming_the_step_and_saves_no_nan() {
    let root = tmp("diverge");
    let d = data(&root.join("data"), 64, &plain_ids(64));
    let out = root.join("out");
    let cfg = root.join("c.toml");
    std::fs::write(
        &cfg,
        "method = \"rqvae\"\n[rqvae]\nhidden = [16]\nlatent = 4\nepochs = 30\nbatch_size = 16\n\
         lr = 1e30\noptimizer = \"sgd\"\ncheckpoint_every = 1\n",
    )
    .unwrap();
    let err = fails(&tok(&d.text_only(), &d.ids, &out, &["--config", s(&cfg)]));
    assert!(err.contains("diverged at step"), "{err}");
    assert!(!out.join("codes.csv").exists());
    // Whatever checkpoint is there is a good one.
    let ck = out.join("tokenizer_text.safetensors");
    if ck.exists() {
        semid::io::Checkpoint::load(&ck).unwrap();
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn zero_epochs_warn_that_nothing_is_trained() {
    let root = tmp("epochs0");
    let d = data(&root.join("data"), 40, &plain_ids(40));
    let out = go(&[
        "tokenize",
        "--method",
        "rqvae",
        "--embeddings",
        &d.text_only(),
        "--ids",
        s(&d.ids),
        "--out",
        s(&root.join("out")),
        "--k",
        "4",
        "--levels",
        "2",
        "--epochs",
        "0",
    ]);
    let err = text(&out.stderr);
    assert!(err.contains("0 epochs trains nothing"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- values ----

#[test]
fn subnormal_rows_give_finite_metrics() {
    let root = tmp("subnormal");
    let n = 40;
    let mut x = clustered(&mut Rng::new(3), n, 12);
    for v in &mut x[..5 * 12] {
        *v *= 1e-41; // rows 0..5 are subnormal
    }
    assert!(x[0] != 0.0 && !x[0].is_normal());
    let t = root.join("text.npy");
    write_npy_f32(&t, &[n, 12], &x).unwrap();
    let ids = root.join("ids.txt");
    std::fs::write(&ids, plain_ids(n).join("\n")).unwrap();
    let out = root.join("out");
    ok(&tok(&format!("text={}", s(&t)), &ids, &out, &[]));
    let m = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&m).unwrap();
    let level = &v[0]["per_level"][0];
    for key in ["entropy_bits", "utilization", "recon_cosine"] {
        assert!(level[key].is_f64(), "{key} is {} in {m}", level[key]);
    }
    // And in the library: normalised subnormal rows are unit rows.
    let u = semid::metrics::drift::normalize_rows(&x[..12], 12);
    let n2: f32 = u.iter().map(|v| v * v).sum();
    assert!((n2 - 1.0).abs() < 1e-5, "{n2}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn non_finite_values_and_bad_layouts_are_errors_naming_file_row_and_field() {
    let root = tmp("values");
    let ids = root.join("ids.txt");
    std::fs::write(&ids, plain_ids(4).join("\n")).unwrap();
    let out = root.join("out");
    let nan = root.join("nan.npy");
    let mut x = vec![0.5f32; 4 * 3];
    x[2 * 3 + 1] = f32::NAN;
    write_npy_f32(&nan, &[4, 3], &x).unwrap();
    let err = fails(&tok(&format!("t={}", s(&nan)), &ids, &out, &[]));
    assert!(err.contains("nan.npy: row 2, field `column 1`"), "{err}");
    // A truncated file and a header that lies about the shape.
    let bytes = std::fs::read(root.join("nan.npy")).unwrap();
    let cut = root.join("cut.npy");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let err = fails(&tok(&format!("t={}", s(&cut)), &ids, &out, &[]));
    assert!(err.contains("cut.npy"), "{err}");
    let lie = root.join("lie.npy");
    let t = String::from_utf8_lossy(&bytes).replace("(4, 3)", "(9, 3)");
    std::fs::write(&lie, t.as_bytes()).unwrap();
    let err = fails(&tok(&format!("t={}", s(&lie)), &ids, &out, &[]));
    assert!(err.contains("lie.npy"), "{err}");
    // Wrong row count for the ids.
    write_npy_f32(&nan, &[3, 3], &[0.5; 9]).unwrap();
    let err = fails(&tok(&format!("t={}", s(&nan)), &ids, &out, &[]));
    assert!(
        err.contains("ids.txt") && err.contains("field `id`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

// ---- the process ----

#[test]
fn a_closed_stdout_ends_the_program_quietly() {
    for args in [&["info", "--all"][..], &["config", "--method", "psrq"][..]] {
        let mut child = semid()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[test]
fn an_invalid_wgpu_backend_is_named() {
    let out = semid()
        .args(["info"])
        .env("WGPU_BACKEND", "bogus")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`bogus` is not a backend"), "{err}");
}

#[test]
fn errors_say_the_os_message_once_and_name_the_fetch_command() {
    let root = tmp("msgs");
    let missing = root.join("missing-ids.txt");
    let d = data(&root.join("data"), 20, &plain_ids(20));
    let err = fails(&tok(&d.text_only(), &missing, &root.join("out"), &[]));
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let items = root.join("items.txt");
    std::fs::write(&items, "item_id,title\n1,Toy Story\n").unwrap();
    let err = fails(&[
        "--quiet",
        "embed",
        "--items",
        s(&items),
        "--model",
        s(&root.join("no-model")),
        "--out",
        s(&root.join("emb")),
    ]);
    assert!(err.contains("semid data fetch"), "{err}");
    // The output name of `embed` becomes a file name too.
    let err = fails(&[
        "--quiet",
        "embed",
        "--items",
        s(&items),
        "--name",
        "../escaped",
        "--out",
        s(&root.join("emb")),
    ]);
    assert!(
        err.contains("modality name \"../escaped\" (--name)"),
        "{err}"
    );
    assert!(!err.contains("semid::data"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

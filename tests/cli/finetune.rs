//! `semid rank train --finetune-tokenizer` end to end on a small synthetic set: the tuned
//! tokenizer is written as a run that `semid eval` and `rank eval --codes` read, the source run
//! is left as it was while the tuned model moved, two runs of one seed agree byte for byte,
//! a killed run resumes to the bytes of an uninterrupted one, and wrong inputs are clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn semid() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_semid"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c.env_remove("WGPU_BACKEND");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(args: &[String]) -> Output {
    semid().args(args).output().expect("run semid")
}

fn ok(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "semid {args:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fails(args: &[String]) -> String {
    let out = run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "semid {args:?}:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-ft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

struct Set {
    dir: PathBuf,
    emb: String,
    ids: String,
    inter: String,
}

/// A small synthetic set and a tokenizer run of `method` on it (k = 8, no collision suffix).
fn set(name: &str, method: &str) -> (Set, PathBuf) {
    let dir = tmp(name);
    let data = dir.join("data");
    ok(&strs(&[
        "-q",
        "synth",
        "--items",
        "150",
        "--users",
        "60",
        "--seed",
        "5",
        "--out",
        &s(&data),
    ]));
    let set = Set {
        emb: format!(
            "text={},audio={}",
            s(&data.join("text.npy")),
            s(&data.join("audio.npy"))
        ),
        ids: s(&data.join("ids.txt")),
        inter: s(&data.join("interactions.csv")),
        dir,
    };
    let cfg = set.dir.join("tok.toml");
    std::fs::write(&cfg, "dedup = false\n[mmq]\nlatent = 32\ndecoder_hidden = [32]\n[rqvae]\nlatent = 16\nhidden = [32]\n").unwrap();
    let tok = set.dir.join(method);
    ok(&strs(&[
        "-q",
        "tokenize",
        "--method",
        method,
        "--embeddings",
        &set.emb,
        "--ids",
        &set.ids,
        "--k",
        "8",
        "--epochs",
        "3",
        "--config",
        &s(&cfg),
        "--out",
        &s(&tok),
    ]));
    (set, tok)
}

fn tune(set: &Set, tok: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v = strs(&[
        "-q",
        "rank",
        "train",
        "--interactions",
        &set.inter,
        "--model",
        "din-sid",
        "--finetune-tokenizer",
        &s(tok),
        "--embeddings",
        &set.emb,
        "--ids",
        &set.ids,
        "--seed",
        "3",
        "--out",
        &s(out),
    ]);
    v.extend(strs(extra));
    v
}

#[test]
fn a_tuned_tokenizer_is_a_run_of_its_own_the_source_stays_and_one_seed_gives_one_result() {
    let (set, tok) = set("mmq", "mmq");
    let source_ck = tok.join("tokenizer_mmq.safetensors");
    let source_bytes = std::fs::read(&source_ck).unwrap();
    let a = set.dir.join("a");
    ok(&tune(
        &set,
        &tok,
        &a,
        &["--epochs", "2", "--tau", "0.5", "--batch-size", "128"],
    ));
    // The source run is frozen: fine-tuning read it and wrote nothing there.
    assert_eq!(std::fs::read(&source_ck).unwrap(), source_bytes);
    let tuned = a.join("tokenizer");
    let sum = json(&tuned.join("finetune.json"));
    assert_eq!(sum["family"], "mmq");
    assert_eq!(sum["items"], 150);
    assert_eq!(sum["settings"]["tau"], 0.5);
    let per_token: Vec<u64> = sum["changed_per_token"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(per_token.len(), 6);
    // The codes it reports as changed are the ones that differ from the source's.
    let rows = |p: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect()
    };
    let (old, new) = (rows(&tok.join("codes.csv")), rows(&tuned.join("codes.csv")));
    let changed = old.iter().zip(&new).filter(|(o, n)| o != n).count() as u64;
    assert_eq!(changed, sum["changed_items"].as_u64().unwrap());
    for (l, &c) in per_token.iter().enumerate() {
        let d = old
            .iter()
            .zip(&new)
            .filter(|(o, n)| o[l + 1] != n[l + 1])
            .count() as u64;
        assert_eq!(d, c, "token {l}");
    }
    // The tuned model moved: its parameters are not the source's.
    let (src, _) = semid::quant::any::AnyTokenizer::load(&source_ck).unwrap();
    let (dst, _) =
        semid::quant::any::AnyTokenizer::load(&tuned.join("tokenizer_mmq.safetensors")).unwrap();
    let (semid::quant::any::AnyTokenizer::Mmq(src), semid::quant::any::AnyTokenizer::Mmq(dst)) =
        (src, dst)
    else {
        panic!("not mmq")
    };
    for name in [
        "shared.0.0.weight",
        "codebook.0",
        "decoder.0.weight",
        "gate.0.0.weight",
    ] {
        assert_ne!(
            src.param(name).unwrap().data,
            dst.param(name).unwrap().data,
            "{name}"
        );
    }
    assert!(
        sum["before"]["per_level"][0]["utilization"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        sum["after"]["per_level"][0]["utilization"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // It is a tokenizer run: `semid eval` encodes with it, `rank eval --codes` scores with it.
    let ev = set.dir.join("eval");
    ok(&strs(&[
        "-q",
        "eval",
        "--run",
        &s(&tuned),
        "--embeddings",
        &set.emb,
        "--ids",
        &set.ids,
        "--out",
        &s(&ev),
    ]));
    assert_eq!(
        std::fs::read(ev.join("codes.csv")).unwrap(),
        std::fs::read(tuned.join("codes.csv")).unwrap()
    );
    let re = set.dir.join("rank-eval");
    ok(&strs(&[
        "-q",
        "rank",
        "eval",
        "--run",
        &s(&a),
        "--interactions",
        &set.inter,
        "--codes",
        &s(&tuned),
        "--out",
        &s(&re),
    ]));
    assert_eq!(
        json(&re.join("metrics.json"))["test"],
        json(&a.join("metrics.json"))["test"]
    );
    // One seed, one result: the tuned tokenizer, its codes and the ranker, byte for byte.
    let b = set.dir.join("b");
    ok(&tune(
        &set,
        &tok,
        &b,
        &["--epochs", "2", "--tau", "0.5", "--batch-size", "128"],
    ));
    for f in [
        "tokenizer/codes.csv",
        "tokenizer/tokenizer_mmq.safetensors",
        "ranker.safetensors",
        "predictions.csv",
    ] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    // And `semid tokenize --resume` takes it as the finished MMQ run it is: nothing to train,
    // the same codes.
    let codes_before = std::fs::read(b.join("tokenizer").join("codes.csv")).unwrap();
    ok(&strs(&[
        "-q",
        "tokenize",
        "--method",
        "mmq",
        "--embeddings",
        &set.emb,
        "--ids",
        &set.ids,
        "--config",
        &s(&b.join("tokenizer").join("config.toml")),
        "--out",
        &s(&b.join("tokenizer")),
        "--resume",
    ]));
    assert_eq!(
        std::fs::read(b.join("tokenizer").join("codes.csv")).unwrap(),
        codes_before
    );
    let m = json(&a.join("metrics.json"));
    assert_eq!(m["model"], "din-sid+ft(tau=0.5)");
    assert!(m["finetune"]["changed_items"].is_u64());

    // Clear errors: a k-means run, other embeddings, a bad τ, settings without a run.
    let km = set.dir.join("km");
    ok(&strs(&[
        "-q",
        "tokenize",
        "--method",
        "rq-kmeans",
        "--embeddings",
        &set.emb,
        "--ids",
        &set.ids,
        "--k",
        "8",
        "--no-joint",
        "--out",
        &s(&km),
    ]));
    let err = fails(&tune(
        &set,
        &km,
        &set.dir.join("e1"),
        &["--finetune-family", "text"],
    ));
    assert!(err.contains("cannot be fine-tuned"), "{err}");
    let text_only = format!(
        "text={}",
        set.emb
            .split(',')
            .next()
            .unwrap()
            .trim_start_matches("text=")
    );
    let mut args = tune(&set, &tok, &set.dir.join("e2"), &[]);
    let i = args.iter().position(|a| a == "--embeddings").unwrap();
    args[i + 1] = text_only;
    let err = fails(&args);
    assert!(err.contains("mmq") && err.contains("embeddings"), "{err}");
    let err = fails(&tune(&set, &tok, &set.dir.join("e3"), &["--tau", "0"]));
    assert!(err.contains("tau must be a positive number"), "{err}");
    let err = fails(&strs(&[
        "-q",
        "rank",
        "train",
        "--interactions",
        &set.inter,
        "--model",
        "din-sid",
        "--codes",
        &s(&tok),
        "--tau",
        "0.1",
        "--out",
        &s(&set.dir.join("e4")),
    ]));
    assert!(err.contains("--finetune-tokenizer"), "{err}");
}

#[test]
fn a_killed_fine_tuning_run_resumes_to_the_bytes_of_an_uninterrupted_one() {
    let (set, tok) = set("resume", "rqvae");
    let cfg = set.dir.join("rank.toml");
    std::fs::write(
        &cfg,
        "checkpoint_steps = 2\nepochs = 2\npatience = 5\nbatch_size = 64\n",
    )
    .unwrap();
    let args = |out: &Path| {
        tune(
            &set,
            &tok,
            out,
            &[
                "--config",
                &s(&cfg),
                "--finetune-family",
                "joint",
                "--families",
                "joint",
            ],
        )
    };
    let whole = set.dir.join("whole");
    ok(&args(&whole));
    let cut = set.dir.join("cut");
    let mut child = semid()
        .args(args(&cut))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !cut.join("ranker.safetensors").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !cut.join("metrics.json").exists(),
        "the run finished before it was killed: nothing was resumed"
    );
    let mut resume = args(&cut);
    resume.push("--resume".into());
    ok(&resume);
    for f in [
        "predictions.csv",
        "ranker.safetensors",
        "tokenizer/codes.csv",
        "tokenizer/tokenizer_joint.safetensors",
        "tokenizer/finetune.json",
    ] {
        assert!(
            std::fs::read(whole.join(f)).unwrap() == std::fs::read(cut.join(f)).unwrap(),
            "{f} differs after resume"
        );
    }
    // A finished fine-tuning run is not trained again; the message says how to score it.
    let err = fails(&resume);
    assert!(err.contains("rank eval"), "{err}");
}

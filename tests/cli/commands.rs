//! End-to-end: the `semid` binary on small synthetic data (what CI runs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn semid() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_semid"));
    c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    c
}

fn run(args: &[&str]) -> String {
    let out = semid().args(args).output().expect("run semid");
    assert!(
        out.status.success(),
        "semid {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn synth_tokenize_report_resume() {
    let d = tmp("e2e");
    let data = d.join("data");
    run(&[
        "--quiet",
        "synth",
        "--items",
        "400",
        "--users",
        "50",
        "--seed",
        "3",
        "--out",
        s(&data),
    ]);
    for f in [
        "ids.txt",
        "text.npy",
        "audio.npy",
        "items.csv",
        "interactions.csv",
        "truth.json",
    ] {
        assert!(data.join(f).exists(), "{f}");
    }
    let emb = format!(
        "text={},audio={}",
        s(&data.join("text.npy")),
        s(&data.join("audio.npy"))
    );
    let run_dir = d.join("run");
    let out = run(&[
        "tokenize",
        "--method",
        "psrq",
        "--embeddings",
        &emb,
        "--ids",
        s(&data.join("ids.txt")),
        "--items",
        s(&data.join("items.csv")),
        "--out",
        s(&run_dir),
        "--k",
        "8",
        "--seed",
        "1",
    ]);
    assert!(
        out.contains("psrq:text") && out.contains("psrq:joint"),
        "{out}"
    );
    for f in [
        "codes.csv",
        "codes_text.npy",
        "codes_audio.npy",
        "codes_joint.npy",
        "metrics.json",
        "metrics.txt",
        "clusters_joint.svg",
        "tokenizer_text.safetensors",
        "tokenizer_joint.safetensors",
    ] {
        assert!(run_dir.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(run_dir.join("codes.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("item_id,text_l1,text_l2,text_l3,text_l4,audio_l1"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 401);

    // Resuming a finished run refits nothing and gives the same codes.
    let before = std::fs::read(run_dir.join("codes_joint.npy")).unwrap();
    run(&[
        "--quiet",
        "tokenize",
        "--method",
        "psrq",
        "--embeddings",
        &emb,
        "--ids",
        s(&data.join("ids.txt")),
        "--out",
        s(&run_dir),
        "--k",
        "8",
        "--seed",
        "1",
        "--resume",
    ]);
    assert_eq!(
        std::fs::read(run_dir.join("codes_joint.npy")).unwrap(),
        before
    );

    // Encoding the training items with the fitted run gives back their codes.
    let eval_dir = d.join("eval");
    let out = run(&[
        "eval",
        "--run",
        s(&run_dir),
        "--embeddings",
        &emb,
        "--ids",
        s(&data.join("ids.txt")),
        "--out",
        s(&eval_dir),
    ]);
    assert!(out.contains("psrq:joint"), "{out}");
    for f in ["codes_text.npy", "codes_audio.npy", "codes_joint.npy"] {
        assert_eq!(
            std::fs::read(eval_dir.join(f)).unwrap(),
            std::fs::read(run_dir.join(f)).unwrap(),
            "{f}"
        );
    }

    // Resuming with another method is a clear error.
    let out = semid()
        .args([
            "--quiet",
            "tokenize",
            "--method",
            "rq-kmeans",
            "--embeddings",
            &emb,
            "--ids",
            s(&data.join("ids.txt")),
            "--out",
            s(&run_dir),
            "--k",
            "8",
            "--resume",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has method `psrq`, this run `rq-kmeans`"),
        "{err}"
    );

    let rep = run(&["report", s(&run_dir), "--svg", s(&d.join("cmp.svg"))]);
    assert!(rep.contains("psrq:audio"), "{rep}");
    assert!(d.join("cmp.svg").exists());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn rqvae_tokenize_resume_eval() {
    let d = tmp("rqvae");
    let data = d.join("data");
    run(&[
        "--quiet",
        "synth",
        "--items",
        "300",
        "--users",
        "20",
        "--seed",
        "2",
        "--out",
        s(&data),
    ]);
    let cfg = d.join("rqvae.toml");
    std::fs::write(
        &cfg,
        "method = \"rqvae\"\n[rqvae]\nhidden = [32]\nlatent = 8\nepochs = 3\nbatch_size = 128\n",
    )
    .unwrap();
    let emb = format!(
        "text={},audio={}",
        s(&data.join("text.npy")),
        s(&data.join("audio.npy"))
    );
    let run_dir = d.join("run");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "tokenize".to_string(),
            "--config".into(),
            s(&cfg).into(),
            "--embeddings".into(),
            emb.clone(),
            "--ids".into(),
            s(&data.join("ids.txt")).into(),
            "--out".into(),
            s(&run_dir).into(),
            "--k".into(),
            "8".into(),
            "--levels".into(),
            "2".into(),
        ];
        v.extend(extra.iter().map(|e| e.to_string()));
        v
    };
    let a = args(&[]);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.contains("rqvae:text") && out.contains("rqvae:joint"),
        "{out}"
    );
    let csv = std::fs::read_to_string(run_dir.join("codes.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    // Two levels (the --levels override reached the RQ-VAE) plus the collision suffix.
    assert!(
        header.starts_with("item_id,text_l1,text_l2,text_l3,audio_l1"),
        "{header}"
    );
    let before = std::fs::read(run_dir.join("codes_joint.npy")).unwrap();
    // Resuming a finished run trains no further and gives the same codes.
    let a = args(&["--quiet", "--resume"]);
    run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(run_dir.join("codes_joint.npy")).unwrap(),
        before
    );
    // Encoding the training items with the fitted run gives back their codes.
    let eval_dir = d.join("eval");
    run(&[
        "--quiet",
        "eval",
        "--run",
        s(&run_dir),
        "--embeddings",
        &emb,
        "--ids",
        s(&data.join("ids.txt")),
        "--out",
        s(&eval_dir),
    ]);
    for f in ["codes_text.npy", "codes_audio.npy", "codes_joint.npy"] {
        assert_eq!(
            std::fs::read(eval_dir.join(f)).unwrap(),
            std::fs::read(run_dir.join(f)).unwrap(),
            "{f}"
        );
    }
    let out = run(&["config", "--method", "rqvae"]);
    assert!(
        out.contains("method = \"rqvae\"")
            && out.contains("[rqvae]")
            && out.contains("beta = 0.25"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn mmq_tokenize_resume_eval_config() {
    let d = tmp("mmq");
    let data = d.join("data");
    run(&[
        "--quiet",
        "synth",
        "--items",
        "300",
        "--users",
        "20",
        "--seed",
        "4",
        "--out",
        s(&data),
    ]);
    let cfg = d.join("mmq.toml");
    std::fs::write(
        &cfg,
        "method = \"mmq\"\n[mmq]\nlatent = 16\ndecoder_hidden = [32]\nepochs = 3\nbatch_size = 100\ncheckpoint_every = 1\n",
    )
    .unwrap();
    let emb = format!(
        "text={},audio={}",
        s(&data.join("text.npy")),
        s(&data.join("audio.npy"))
    );
    let run_dir = d.join("run");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "tokenize",
            "--config",
            s(&cfg),
            "--embeddings",
            &emb,
            "--ids",
            s(&data.join("ids.txt")),
            "--items",
            s(&data.join("items.csv")),
            "--out",
            s(&run_dir),
            "--k",
            "12",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        v.extend(extra.iter().map(|e| e.to_string()));
        v
    };
    let a = args(&[]);
    let out = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("mmq:mmq"), "{out}");
    // One family over both modalities: 2 shared + 2 text + 2 audio tokens (+ the suffix).
    let csv = std::fs::read_to_string(run_dir.join("codes.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("item_id,mmq_l1,mmq_l2,mmq_l3,mmq_l4,mmq_l5,mmq_l6"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 301);
    let first = csv.lines().nth(1).unwrap();
    assert!(first
        .split(',')
        .skip(1)
        .take(6)
        .all(|c| c.parse::<u32>().unwrap() < 12));
    assert!(!run_dir.join("tokenizer_text.safetensors").exists());
    let metrics = std::fs::read_to_string(run_dir.join("metrics.json")).unwrap();
    assert!(metrics.contains("mmq:mmq"), "{metrics}");
    let before = std::fs::read(run_dir.join("codes_mmq.npy")).unwrap();
    // Resuming a finished run trains no further and gives the same codes.
    let a = args(&["--quiet", "--resume"]);
    run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(run_dir.join("codes_mmq.npy")).unwrap(),
        before
    );
    // Encoding the training items with the fitted run gives back their codes.
    let eval_dir = d.join("eval");
    run(&[
        "--quiet",
        "eval",
        "--run",
        s(&run_dir),
        "--embeddings",
        &emb,
        "--ids",
        s(&data.join("ids.txt")),
        "--out",
        s(&eval_dir),
    ]);
    assert_eq!(
        std::fs::read(eval_dir.join("codes_mmq.npy")).unwrap(),
        before
    );
    // The modalities in another order have the same total width but are refused by name.
    let swapped = format!(
        "audio={},text={}",
        s(&data.join("audio.npy")),
        s(&data.join("text.npy"))
    );
    let out = semid()
        .args([
            "--quiet",
            "eval",
            "--run",
            s(&run_dir),
            "--embeddings",
            &swapped,
            "--ids",
            s(&data.join("ids.txt")),
            "--out",
            s(&d.join("eval2")),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fitted on the modalities text (")
            && err.contains("in this order), not audio ("),
        "{err}"
    );
    // --levels does not apply to MMQ: a clear error, not a silent no-op.
    let a = args(&["--levels", "3"]);
    let out = semid().args(&a).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--levels does not apply to mmq"), "{err}");
    // The MMQ training step is a benchmark workload.
    let out = run(&["--quiet", "bench", "mmq_step", "--quick"]);
    let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(line["workload"], "mmq_step", "{out}");
    assert!(line["items_per_s"].as_f64().unwrap() > 0.0, "{out}");
    assert_eq!(line["tokens"], 6, "{out}");
    let out = run(&["config", "--method", "mmq"]);
    assert!(
        out.contains("method = \"mmq\"")
            && out.contains("[mmq]")
            && out.contains("recon_weight = 12.0")
            && out.contains("aux_weight = 10.0")
            && out.contains("ortho_weight = 0.005")
            && out.contains("metric = \"cosine\""),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bad_embeddings_name_the_file() {
    let d = tmp("bad");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("bad.csv");
    std::fs::write(&f, "id,a,b\nx,1.0,2.0\ny,3.0,nan\n").unwrap();
    let out = semid()
        .args([
            "--quiet",
            "tokenize",
            "--embeddings",
            s(&f),
            "--out",
            s(&d.join("o")),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv") && err.contains("row 3"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_prints_the_defaults() {
    let out = run(&["config", "--method", "psrq"]);
    assert!(out.contains("method = \"psrq\""), "{out}");
    assert!(
        out.contains("[psrq]") && out.contains("levels = 3") && out.contains("k = 256"),
        "{out}"
    );
    assert!(out.contains("prefix_weight = 1.0"), "{out}");
    let out = run(&["config", "--method", "rq-kmeans"]);
    assert!(out.contains("[rq-kmeans]"), "{out}");
}

#[test]
fn info_names_the_adapter() {
    let out = run(&["info"]);
    assert!(
        out.contains("adapter:") && out.contains("backend:"),
        "{out}"
    );
}

#[test]
fn embed_item_texts_when_the_model_is_present() {
    let model = std::env::var_os("SEMID_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data"))
        .join("minilm");
    if !model.join("model.safetensors").exists() {
        eprintln!(
            "SKIPPED: no MiniLM model in {} (run `semid data fetch --what minilm`)",
            model.display()
        );
        return;
    }
    let d = tmp("embed");
    std::fs::create_dir_all(&d).unwrap();
    let items = d.join("items.csv");
    std::fs::write(
        &items,
        "id,title,year,genres\n1,Toy Story,1995,Animation Children's Comedy\n2,Heat,1995,Action Crime Thriller\n3,Babe,1995,Children's Comedy Drama\n",
    )
    .unwrap();
    let out = d.join("emb");
    run(&[
        "--quiet",
        "embed",
        "--items",
        s(&items),
        "--model",
        s(&model),
        "--out",
        s(&out),
    ]);
    let x = semid::data::npy::read_npy_f32(&out.join("text.npy")).unwrap();
    assert_eq!(x.shape, vec![3, 384]);
    // Toy Story's normalised vector (the data notes' reference values).
    let want = [-0.0723, 0.0234, 0.0364, -0.0399, 0.0119];
    for (g, w) in x.data[..5].iter().zip(want) {
        assert!((g - w).abs() < 1e-3, "{:?}", &x.data[..5]);
    }
    assert_eq!(
        std::fs::read_to_string(out.join("ids.txt")).unwrap(),
        "1\n2\n3\n"
    );
    // A template naming a missing field is a clear error.
    let o = semid()
        .args([
            "--quiet",
            "embed",
            "--items",
            s(&items),
            "--model",
            s(&model),
            "--out",
            s(&out),
            "--template",
            "{name}",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("name"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

//! `semid retrieve` end to end on a small log: train, eval, recommend, and the errors a user
//! meets (no codes for TIGER, an unknown user, resuming a finished run).

use crate::rank::{fails, ok, s, tmp};
use std::fmt::Write as _;

/// 30 users × 8 events over 12 items, each user walking the items in steps of their own size.
fn write_log(dir: &std::path::Path) -> std::path::PathBuf {
    let mut t = String::from("user,item,rating,timestamp\n");
    for u in 0..30 {
        for e in 0..8 {
            let item = (u + e * (1 + u % 3)) % 12;
            writeln!(
                t,
                "user {u},\"item, {item}\",{},{}",
                1 + (u + e) % 5,
                1000 + 10 * e + u
            )
            .unwrap();
        }
    }
    let p = dir.join("log.csv");
    std::fs::write(&p, t).unwrap();
    p
}

#[test]
fn sasrec_trains_evaluates_and_recommends_through_the_cli() {
    let d = tmp("retrieve-sasrec");
    let log = write_log(&d);
    let cfg = d.join("small.toml");
    std::fs::write(
        &cfg,
        "[sasrec]\nd_model = 8\nlayers = 1\nd_ff = 16\n[fit]\nepochs = 2\nbatch_size = 8\n",
    )
    .unwrap();
    let run = d.join("run");
    let out = ok(&[
        "-q",
        "retrieve",
        "train",
        "--interactions",
        s(&log),
        "--config",
        s(&cfg),
        "--out",
        s(&run),
    ]);
    assert!(
        out.contains("sasrec") && out.contains("popularity"),
        "{out}"
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["test"]["users"], 30);
    assert_eq!(m["protocol"]["items"], 12);
    assert_eq!(m["fit"]["valid_recall10"].as_array().unwrap().len(), 2);
    let again = fails(&[
        "-q",
        "retrieve",
        "train",
        "--interactions",
        s(&log),
        "--config",
        s(&cfg),
        "--out",
        s(&run),
        "--resume",
    ]);
    assert!(again.contains("has finished"), "{again}");
    let ev = d.join("eval");
    let out = ok(&[
        "-q",
        "retrieve",
        "eval",
        "--run",
        s(&run),
        "--interactions",
        s(&log),
        "--out",
        s(&ev),
    ]);
    assert!(out.contains("test"), "{out}");
    let m2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        m2["test"], m["test"],
        "eval scores the finished model the same"
    );
    let rec = ok(&[
        "-q",
        "retrieve",
        "recommend",
        "--run",
        s(&run),
        "--interactions",
        s(&log),
        "--user",
        "user 3",
        "-k",
        "4",
    ]);
    let lines: Vec<&str> = rec.lines().collect();
    assert_eq!(lines[0], "user,rank,item,score");
    assert_eq!(lines.len(), 5, "{rec}");
    assert!(
        lines[1].starts_with("user 3,1,\"item, "),
        "CSV fields are quoted: {rec}"
    );
    let e = fails(&[
        "-q",
        "retrieve",
        "recommend",
        "--run",
        s(&run),
        "--interactions",
        s(&log),
        "--user",
        "nobody",
    ]);
    assert!(e.contains("`nobody` is not a user"), "{e}");
}

#[test]
fn tiger_without_semantic_ids_is_refused_with_the_fix() {
    let d = tmp("retrieve-tiger-nocodes");
    let log = write_log(&d);
    let e = fails(&[
        "-q",
        "retrieve",
        "train",
        "--interactions",
        s(&log),
        "--model",
        "tiger",
        "--out",
        s(&d.join("run")),
    ]);
    assert!(e.contains("--codes"), "{e}");
}

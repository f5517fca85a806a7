//! The synthetic generator: determinism, shapes, labels, the planted structure, files on disk.

use semid::data::synth::{generate, SynthConfig, SynthData};
use std::collections::HashSet;
use std::path::PathBuf;

fn small() -> SynthConfig {
    SynthConfig {
        items: 600,
        users: 150,
        ..Default::default()
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    d / (na * nb)
}

/// Mean cosine of the modality over item pairs split by `same(i, j)`: (same, different).
fn mean_cos_split(
    d: &SynthData,
    modality: &str,
    same: impl Fn(usize, usize) -> Option<bool>,
) -> (f32, f32) {
    let m = d.embeddings.modality(modality).unwrap();
    let (mut s, mut ns, mut o, mut no) = (0f64, 0usize, 0f64, 0usize);
    let n = m.rows();
    for i in 0..n {
        for j in (i + 1)..n {
            match same(i, j) {
                Some(true) => {
                    s += cos(m.row(i), m.row(j)) as f64;
                    ns += 1;
                }
                Some(false) => {
                    o += cos(m.row(i), m.row(j)) as f64;
                    no += 1;
                }
                None => {}
            }
        }
    }
    assert!(ns > 0 && no > 0, "both groups must be non-empty");
    ((s / ns as f64) as f32, (o / no as f64) as f32)
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-synth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = generate(&small()).unwrap();
    let b = generate(&small()).unwrap();
    assert_eq!(a, b, "same config must give identical output");
    let c = generate(&SynthConfig { seed: 7, ..small() }).unwrap();
    for m in 0..2 {
        assert_ne!(
            a.embeddings.modalities[m].data, c.embeddings.modalities[m].data,
            "another seed must give other embeddings"
        );
    }
    assert_ne!(a.interactions.rows, c.interactions.rows);
    assert_ne!(a.truth.cluster_path, c.truth.cluster_path);
}

#[test]
fn item_side_does_not_depend_on_user_settings() {
    let a = generate(&small()).unwrap();
    let b = generate(&SynthConfig {
        users: 3,
        interactions_per_user: 5,
        ..small()
    })
    .unwrap();
    assert_eq!(a.embeddings, b.embeddings);
    assert_eq!(a.truth.cluster_path, b.truth.cluster_path);
    assert_eq!(b.interactions.users.len(), 3);
}

#[test]
fn default_shapes_labels_and_logs() {
    let cfg = SynthConfig::default();
    let d = generate(&cfg).unwrap();
    let n = cfg.items;
    assert_eq!(d.embeddings.len(), n);
    let names: Vec<&str> = d
        .embeddings
        .modalities
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["text", "audio"]);
    let text = d.embeddings.modality("text").unwrap();
    let audio = d.embeddings.modality("audio").unwrap();
    assert_eq!((text.dim, text.rows()), (768, n));
    assert_eq!((audio.dim, audio.rows()), (512, n));
    assert_eq!(text.data.len(), n * 768);
    assert!(text.data.iter().chain(&audio.data).all(|v| v.is_finite()));
    let unique: HashSet<&String> = d.embeddings.ids.iter().collect();
    assert_eq!(unique.len(), n, "ids must be unique");

    // Items and truth.
    assert_eq!(d.items.ids, d.embeddings.ids);
    let labels = d.items.labels.as_ref().expect("labels present");
    assert_eq!(labels.len(), n);
    assert_eq!(d.items.label_names.len(), 8);
    assert_eq!(d.truth.cluster_path.len(), n);
    for (i, p) in d.truth.cluster_path.iter().enumerate() {
        assert_eq!(p.len(), 3);
        assert!(p[0] < 8 && p[1] < 4 && p[2] < 4);
        assert_eq!(labels[i], p[0], "label = true top cluster");
        assert!(d.truth.leaf(i) < 128);
    }
    let tops: HashSet<u32> = labels.iter().copied().collect();
    assert_eq!(tops.len(), 8, "every top cluster is used at this size");
    assert_eq!(d.truth.level_labels(0), *labels);
    let l1 = d.truth.level_labels(1);
    assert!(l1.iter().all(|&c| c < 32));
    assert_eq!((d.truth.shared.dim, d.truth.shared.rows()), (32, n));
    assert_eq!(d.truth.specific.len(), 2);
    assert_eq!(d.truth.specific[0].rows(), n);
    assert_eq!(d.truth.specific[1].dim, 16);
    let pop_sum: f32 = d.truth.popularity.iter().sum();
    assert!((pop_sum - 1.0).abs() < 1e-3);
    assert_eq!(d.truth.users.len(), cfg.users);

    // Interactions.
    let inter = &d.interactions;
    assert_eq!(inter.users.len(), cfg.users);
    assert_eq!(inter.items, d.embeddings.ids);
    let mut per_user = vec![0usize; cfg.users];
    let mut last_t = vec![i64::MIN; cfg.users];
    for r in &inter.rows {
        let u = r.user as usize;
        assert!((r.item as usize) < n);
        assert!(r.label == 0.0 || r.label == 1.0);
        assert!(r.timestamp > last_t[u], "time-ordered within each user");
        last_t[u] = r.timestamp;
        per_user[u] += 1;
    }
    assert!(per_user.iter().all(|&c| c >= 3));
    let mean = inter.rows.len() as f64 / cfg.users as f64;
    assert!(
        (30.0..55.0).contains(&mean),
        "mean interactions per user {mean}"
    );
    let pos = inter.rows.iter().filter(|r| r.label == 1.0).count() as f64 / inter.rows.len() as f64;
    assert!((0.2..0.8).contains(&pos), "positive rate {pos}");
}

#[test]
fn hierarchy_is_present_in_both_modalities() {
    let d = generate(&small()).unwrap();
    let p = &d.truth.cluster_path;
    for m in ["text", "audio"] {
        let (same_top, diff_top) = mean_cos_split(&d, m, |i, j| Some(p[i][0] == p[j][0]));
        assert!(
            same_top > diff_top + 0.1,
            "{m}: same top cluster {same_top} vs different {diff_top}"
        );
        // Within a top cluster, the same sub-cluster is closer than another sub-cluster.
        let (same_sub, diff_sub) = mean_cos_split(&d, m, |i, j| {
            (p[i][0] == p[j][0]).then_some(p[i][1] == p[j][1])
        });
        assert!(
            same_sub > diff_sub + 0.02,
            "{m}: same sub-cluster {same_sub} vs sibling {diff_sub}"
        );
        // Within a sub-cluster, the same leaf is closer than a sibling leaf.
        let (same_leaf, diff_leaf) = mean_cos_split(&d, m, |i, j| {
            (p[i][..2] == p[j][..2]).then_some(p[i][2] == p[j][2])
        });
        assert!(
            same_leaf > diff_leaf,
            "{m}: same leaf {same_leaf} vs sibling {diff_leaf}"
        );
    }
}

#[test]
fn each_modality_carries_its_own_specific_structure() {
    let d = generate(&small()).unwrap();
    let p = &d.truth.cluster_path;
    for (k, own, other) in [(0usize, "text", "audio"), (1, "audio", "text")] {
        let sc = &d.truth.specific_cluster[k];
        // Pairs from different top clusters, split by this modality's specific cluster.
        let split = |i: usize, j: usize| (p[i][0] != p[j][0]).then_some(sc[i] == sc[j]);
        let (s_own, d_own) = mean_cos_split(&d, own, split);
        let (s_other, d_other) = mean_cos_split(&d, other, split);
        let gap_own = s_own - d_own;
        let gap_other = s_other - d_other;
        assert!(
            gap_own > 0.05 && gap_own > gap_other + 0.05,
            "{own}-specific clusters: gap in {own} {gap_own}, in {other} {gap_other}"
        );
    }
}

#[test]
fn popularity_has_a_long_tail() {
    let cfg = SynthConfig {
        items: 1000,
        users: 400,
        ..Default::default()
    };
    let share_of_top_tenth = |d: &SynthData| {
        let mut counts = vec![0usize; d.embeddings.len()];
        for r in &d.interactions.rows {
            counts[r.item as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = counts[..counts.len() / 10].iter().sum();
        top as f64 / d.interactions.rows.len() as f64
    };
    let zipf = share_of_top_tenth(&generate(&cfg).unwrap());
    let flat = share_of_top_tenth(
        &generate(&SynthConfig {
            tail_exponent: 0.0,
            ..cfg.clone()
        })
        .unwrap(),
    );
    assert!(zipf > 0.4, "top 10% of items get {zipf} of exposures");
    assert!(
        zipf > flat + 0.15,
        "zipf {zipf} vs uniform popularity {flat}"
    );
}

#[test]
fn clicks_follow_user_preferences() {
    let d = generate(&small()).unwrap();
    let (mut fav, mut nfav, mut other, mut nother) = (0f64, 0f64, 0f64, 0f64);
    for r in &d.interactions.rows {
        let u = &d.truth.users[r.user as usize];
        if u.favorite_leaves.contains(&d.truth.leaf(r.item as usize)) {
            fav += r.label as f64;
            nfav += 1.0;
        } else {
            other += r.label as f64;
            nother += 1.0;
        }
    }
    let (pf, po) = (fav / nfav, other / nother);
    assert!(
        pf > po + 0.3,
        "click rate in favourite leaves {pf} vs elsewhere {po}"
    );

    // The specific factor matters too: outside favourite top clusters, items of the user's
    // favourite specific clusters are clicked more.
    let (mut a, mut na, mut b, mut nb) = (0f64, 0f64, 0f64, 0f64);
    for r in &d.interactions.rows {
        let i = r.item as usize;
        let u = &d.truth.users[r.user as usize];
        let top = d.truth.cluster_path[i][0];
        let fav_tops: Vec<u32> = u.favorite_leaves.iter().map(|&l| l / 16).collect();
        if fav_tops.contains(&top) {
            continue;
        }
        let matches = (0..2)
            .filter(|&m| d.truth.specific_cluster[m][i] == u.specific_cluster[m])
            .count();
        if matches == 2 {
            a += r.label as f64;
            na += 1.0;
        } else if matches == 0 {
            b += r.label as f64;
            nb += 1.0;
        }
    }
    assert!(na > 20.0 && nb > 20.0);
    assert!(
        a / na > b / nb + 0.2,
        "specific match {} vs none {}",
        a / na,
        b / nb
    );
}

#[test]
fn odd_shapes_work() {
    let d = generate(&SynthConfig {
        items: 1,
        users: 1,
        clusters: vec![1],
        text_dim: 3,
        audio_dim: 1,
        shared_dim: 1,
        specific_dim: 1,
        hidden_dim: 1,
        specific_clusters: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(d.embeddings.modalities[0].data.len(), 3);
    assert_eq!(d.embeddings.modalities[1].data.len(), 1);
    assert!(d.interactions.rows.len() >= 3);
    let d = generate(&SynthConfig {
        items: 37,
        users: 5,
        clusters: vec![3, 5, 2, 2],
        text_dim: 29,
        audio_dim: 61,
        ..Default::default()
    })
    .unwrap();
    assert!(d.truth.cluster_path.iter().all(|p| p.len() == 4
        && p[0] < 3
        && p[1] < 5
        && p[2] < 2
        && p[3] < 2));
    assert_eq!(d.items.label_names.len(), 3);
    let no_users = generate(&SynthConfig {
        users: 0,
        ..small()
    })
    .unwrap();
    assert!(no_users.interactions.rows.is_empty());
}

#[test]
fn bad_configs_are_rejected_with_the_setting_named() {
    let cases: Vec<(SynthConfig, &str)> = vec![
        (
            SynthConfig {
                items: 0,
                ..small()
            },
            "items",
        ),
        (
            SynthConfig {
                clusters: vec![],
                ..small()
            },
            "clusters",
        ),
        (
            SynthConfig {
                clusters: vec![4, 0],
                ..small()
            },
            "clusters",
        ),
        (
            SynthConfig {
                clusters: vec![usize::MAX, 4],
                ..small()
            },
            "clusters",
        ),
        (
            SynthConfig {
                noise: f32::NAN,
                ..small()
            },
            "noise",
        ),
        (
            SynthConfig {
                tail_exponent: -1.0,
                ..small()
            },
            "tail_exponent",
        ),
        (
            SynthConfig {
                p_follow: 0.7,
                p_interest: 0.7,
                ..small()
            },
            "p_follow",
        ),
        (
            SynthConfig {
                items: usize::MAX / 2,
                ..small()
            },
            "too large",
        ),
    ];
    for (cfg, needle) in cases {
        let e = generate(&cfg).unwrap_err().to_string();
        assert!(e.contains(needle), "error `{e}` should mention `{needle}`");
    }
}

#[test]
fn config_from_partial_json_takes_defaults() {
    let cfg: SynthConfig = serde_json::from_str(r#"{"items": 10, "clusters": [2, 3]}"#).unwrap();
    assert_eq!(cfg.items, 10);
    assert_eq!(cfg.clusters, vec![2, 3]);
    assert_eq!(cfg.text_dim, 768);
    assert!(serde_json::from_str::<SynthConfig>(r#"{"itemz": 10}"#).is_err());
    let back: SynthConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
}

fn read_npy_f32(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hl) % 64, 0, "header padded to 64 bytes");
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(header.contains("'descr': '<f4'"));
    assert!(header.contains("'fortran_order': False"));
    assert!(header.ends_with('\n'));
    let shape_txt = header.split("'shape': (").nth(1).unwrap();
    let shape_txt = &shape_txt[..shape_txt.find(')').unwrap()];
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = b[10 + hl..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

#[test]
fn save_writes_data_and_truth() {
    let d = generate(&SynthConfig {
        items: 50,
        users: 7,
        ..Default::default()
    })
    .unwrap();
    let dir = tmp_dir("save");
    let written = d.save(&dir).unwrap();
    for name in [
        "ids.txt",
        "text.npy",
        "audio.npy",
        "items.csv",
        "interactions.csv",
        "truth.json",
        "truth_shared.npy",
        "truth_specific_text.npy",
        "truth_specific_audio.npy",
    ] {
        assert!(written.contains(&dir.join(name)), "{name} written");
        assert!(dir.join(name).is_file(), "{name} exists");
    }
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let ids = std::fs::read_to_string(dir.join("ids.txt")).unwrap();
    assert_eq!(ids.lines().collect::<Vec<_>>(), d.embeddings.ids);
    let (shape, data) = read_npy_f32(&dir.join("text.npy"));
    assert_eq!(shape, vec![50, 768]);
    assert_eq!(data, d.embeddings.modalities[0].data);
    let (shape, data) = read_npy_f32(&dir.join("audio.npy"));
    assert_eq!(shape, vec![50, 512]);
    assert_eq!(data, d.embeddings.modalities[1].data);
    let (shape, _) = read_npy_f32(&dir.join("truth_shared.npy"));
    assert_eq!(shape, vec![50, 32]);

    let inter = std::fs::read_to_string(dir.join("interactions.csv")).unwrap();
    let mut lines = inter.lines();
    assert_eq!(lines.next(), Some("user,item,label,timestamp"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), d.interactions.rows.len());
    let r0 = &d.interactions.rows[0];
    assert_eq!(
        rows[0],
        format!(
            "{},{},{},{}",
            d.interactions.users[r0.user as usize],
            d.interactions.items[r0.item as usize],
            r0.label,
            r0.timestamp
        )
    );
    assert!(rows
        .iter()
        .all(|l| l.split(',').nth(2) == Some("0") || l.split(',').nth(2) == Some("1")));

    let items = std::fs::read_to_string(dir.join("items.csv")).unwrap();
    let first = items.lines().nth(1).unwrap();
    let p = &d.truth.cluster_path[0];
    assert!(first.starts_with(&format!(
        "{},{},c{},{}.{}.{}",
        d.embeddings.ids[0], p[0], p[0], p[0], p[1], p[2]
    )));

    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    let paths: Vec<Vec<u32>> = serde_json::from_value(truth["cluster_path"].clone()).unwrap();
    assert_eq!(paths, d.truth.cluster_path);
    let cfg: SynthConfig = serde_json::from_value(truth["config"].clone()).unwrap();
    assert_eq!(cfg, d.config);
    assert_eq!(truth["users"].as_array().unwrap().len(), 7);
    assert_eq!(truth["stats"]["interactions"], d.interactions.rows.len());

    // Saving again over the same folder works and gives the same bytes.
    let before = std::fs::read(dir.join("text.npy")).unwrap();
    d.save(&dir).unwrap();
    assert_eq!(std::fs::read(dir.join("text.npy")).unwrap(), before);
    std::fs::remove_dir_all(&dir).unwrap();
}

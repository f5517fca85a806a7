//! Text embeddings: a tiny random BERT (written here) on the GPU against the plain-Rust forward
//! pass, the weight loader's checks, item templates and length batching; and, when the
//! all-MiniLM-L6-v2 files are present (`$SEMID_DATA_DIR/minilm` or `<repo>/data/minilm`), the
//! real encoder against the CPU forward pass and the published reference values.
use crate::common;
use common::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use semid::data::ItemTable;
use semid::embed::bert_cpu::{embed_cpu, forward_cpu};
use semid::embed::{
    format_items, length_batches, BertConfig, BertModel, BertWeights, TextEmbedder, TokenBatch,
    DEFAULT_TEMPLATE,
};
use semid::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("semid-embed-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

// ---------------------------------------------------------------------------------------------
// A tiny random BERT, written as config.json + model.safetensors.

fn tiny_config() -> BertConfig {
    BertConfig {
        vocab_size: 41,
        hidden_size: 12,
        num_attention_heads: 3,
        num_hidden_layers: 2,
        intermediate_size: 20,
        hidden_act: "gelu".into(),
        max_position_embeddings: 24,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        pad_token_id: 0,
    }
}

/// Every tensor name and shape of a BERT with `c`, random values; `skew` changes one shape.
fn tiny_tensors(c: &BertConfig, skew: bool) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![c.vocab_size, h],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![c.max_position_embeddings, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![c.type_vocab_size, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}.");
        for (n, s) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.query.bias", vec![h]),
            ("attention.self.key.weight", vec![h, h]),
            ("attention.self.key.bias", vec![h]),
            ("attention.self.value.weight", vec![h, h]),
            ("attention.self.value.bias", vec![h]),
            ("attention.output.dense.weight", vec![h, h]),
            ("attention.output.dense.bias", vec![h]),
            ("attention.output.LayerNorm.weight", vec![h]),
            ("attention.output.LayerNorm.bias", vec![h]),
            ("intermediate.dense.weight", vec![f, h]),
            ("intermediate.dense.bias", vec![f]),
            ("output.dense.weight", vec![h, f]),
            ("output.dense.bias", vec![h]),
            ("output.LayerNorm.weight", vec![h]),
            ("output.LayerNorm.bias", vec![h]),
        ] {
            specs.push((format!("{p}{n}"), s));
        }
    }
    if skew {
        specs[7].1 = vec![h + 1, h];
    }
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let len: usize = s.iter().product();
            let mut v = rand_vec(len, 100 + i as u64);
            if n.ends_with("LayerNorm.weight") {
                v.iter_mut().for_each(|x| *x = 1.0 + 0.3 * *x);
            } else if !n.contains("embeddings.") {
                v.iter_mut().for_each(|x| *x *= 0.6);
            }
            (n, s, v)
        })
        .collect()
}

fn write_model(dir: &Path, c: &BertConfig, prefix: &str, skew: bool) {
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(c).unwrap(),
    )
    .unwrap();
    let tensors = tiny_tensors(c, skew);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (format!("{prefix}{n}"), s, bytemuck::cast_slice(&v).to_vec()))
        .collect();
    // An i64 tensor the loader must ignore, as in the real file.
    let pos_ids: Vec<u8> = (0..c.max_position_embeddings as i64)
        .flat_map(|i| i.to_le_bytes())
        .collect();
    let mut views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    views.push((
        format!("{prefix}embeddings.position_ids"),
        TensorView::new(Dtype::I64, vec![1, c.max_position_embeddings], &pos_ids).unwrap(),
    ));
    let data = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), data).unwrap();
}

/// Token sequences of awkward lengths (1, primes, the maximum), ids across the vocabulary.
fn tiny_sequences(vocab: u32, max: usize) -> Vec<Vec<u32>> {
    let mut r = semid::rng::Rng::new(7);
    [5usize, 1, max, 13, 2, 7, 17, 3]
        .iter()
        .map(|&n| (0..n).map(|_| r.below(vocab as usize) as u32).collect())
        .collect()
}

#[test]
fn tiny_bert_matches_cpu_forward() {
    let c = tiny_config();
    let g = gpu();
    for (prefix, name) in [("", "plain"), ("bert.", "prefixed")] {
        let dir = tmp_dir(&format!("tiny-{name}"));
        write_model(&dir, &c, prefix, false);
        let w = BertWeights::load(&dir).unwrap();
        assert_eq!(w.layers.len(), 2);
        let model = BertModel::new(&g, &w).unwrap();
        let seqs = tiny_sequences(c.vocab_size as u32, c.max_position_embeddings);
        let batch = TokenBatch::pad(&seqs, 0);
        assert_eq!(batch.seq, c.max_position_embeddings);
        // Hidden states of the real tokens.
        let hidden = model.forward(&batch).unwrap().to_vec().unwrap();
        let h = c.hidden_size;
        for (b, s) in seqs.iter().enumerate() {
            let want = forward_cpu(&w, s).unwrap();
            let got = &hidden[b * batch.seq * h..][..s.len() * h];
            assert_close(
                got,
                &want,
                1e-4,
                1e-3,
                &format!("{name}: hidden of seq {b}"),
            );
        }
        for normalize in [false, true] {
            let pooled = model.embed(&batch, normalize).unwrap().to_vec().unwrap();
            for (b, s) in seqs.iter().enumerate() {
                let want = embed_cpu(&w, s, normalize).unwrap();
                let got = &pooled[b * h..(b + 1) * h];
                assert_close(got, &want, 1e-4, 1e-3, &format!("{name}: pooled {b}"));
                if normalize {
                    let n: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!((n - 1.0).abs() < 1e-4, "norm {n}");
                }
            }
        }
    }
}

#[test]
fn tiny_bert_empty_sequence_and_token_types() {
    let c = tiny_config();
    let g = gpu();
    let dir = tmp_dir("tiny-empty");
    write_model(&dir, &c, "", false);
    let w = BertWeights::load(&dir).unwrap();
    let model = BertModel::new(&g, &w).unwrap();
    // A zero-length sequence in a batch pools to zeros, normalised or not, never NaN.
    let batch = TokenBatch::pad(&[vec![3, 4, 5], vec![]], 0);
    for normalize in [false, true] {
        let v = model.embed(&batch, normalize).unwrap().to_vec().unwrap();
        let h = c.hidden_size;
        assert!(
            v[h..].iter().all(|&x| x == 0.0),
            "empty sequence: {:?}",
            &v[h..]
        );
        assert!(v[..h].iter().all(|x| x.is_finite()));
    }
    // Token types change the result.
    let mut typed = TokenBatch::pad(&[vec![3, 4, 5]], 0);
    let plain = model.embed(&typed, false).unwrap().to_vec().unwrap();
    typed.type_ids = Some(vec![0, 1, 1]);
    let other = model.embed(&typed, false).unwrap().to_vec().unwrap();
    assert!(max_rel_err(&other, &plain) > 1e-3);
    // Bad ids and lengths are errors, not GPU faults.
    let bad = TokenBatch::pad(&[vec![c.vocab_size as u32]], 0);
    assert!(matches!(model.forward(&bad), Err(Error::Invalid(_))));
    let mut long = TokenBatch::pad(&[vec![1; c.max_position_embeddings + 1]], 0);
    assert!(model.forward(&long).is_err());
    long.lengths[0] = 1000;
    assert!(model.forward(&long).is_err());
    typed.type_ids = Some(vec![0, 2, 0]);
    assert!(model.forward(&typed).is_err());
    g.sync().unwrap();
}

#[test]
fn loader_names_the_bad_tensor() {
    let c = tiny_config();
    let dir = tmp_dir("tiny-skew");
    write_model(&dir, &c, "", true);
    let e = BertWeights::load(&dir).unwrap_err();
    match e {
        Error::Data { field, message, .. } => {
            assert_eq!(field, "encoder.layer.0.attention.self.key.weight");
            assert!(message.contains("shape"), "{message}");
        }
        other => panic!("expected Error::Data, got {other}"),
    }
    // A config the encoder cannot run.
    let mut bad = c.clone();
    bad.num_attention_heads = 5;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&bad).unwrap(),
    )
    .unwrap();
    assert!(matches!(BertWeights::load(&dir), Err(Error::Data { .. })));
    // A missing folder names the missing file.
    let e = TextEmbedder::load(&gpu(), &dir.join("nowhere")).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Templates and batching (no model needed).

fn table() -> ItemTable {
    ItemTable {
        ids: vec!["a".into(), "b".into(), "c".into()],
        fields: vec![
            (
                "title".into(),
                vec!["Toy Story".into(), "Heat".into(), "Nameless".into()],
            ),
            ("year".into(), vec!["1995".into(), "1995".into(), "".into()]),
            (
                "genres".into(),
                vec![
                    "Animation Children's Comedy".into(),
                    "Action".into(),
                    "".into(),
                ],
            ),
        ],
        labels: None,
        label_names: vec![],
    }
}

#[test]
fn templates_format_item_fields() {
    let t = table();
    let texts = format_items(&t, DEFAULT_TEMPLATE).unwrap();
    assert_eq!(
        texts,
        vec![
            "Toy Story (1995) Animation Children's Comedy",
            "Heat (1995) Action",
            "Nameless",
        ]
    );
    let texts = format_items(&t, "{id}: {title} {{{year}}}").unwrap();
    assert_eq!(texts[0], "a: Toy Story {1995}");
    assert_eq!(texts[2], "c: Nameless {}");
    // A missing field is an error naming it.
    let e = format_items(&t, "{title} {director}").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`director`") && msg.contains("title"), "{msg}");
    assert!(format_items(&t, "{title").is_err());
    assert!(format_items(&t, "title}").is_err());
    assert!(format_items(&t, "{}").is_err());
}

#[test]
fn template_matches_movielens_item_texts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/ml-1m");
    let items = if dir.join("ml-1m.item").is_file() {
        semid::data::movielens::load_ml1m(&dir).unwrap().items
    } else {
        eprintln!("data/ml-1m is absent: comparing on a small table only");
        table()
    };
    assert_eq!(
        format_items(&items, DEFAULT_TEMPLATE).unwrap(),
        semid::data::movielens::item_texts(&items)
    );
}

#[test]
fn length_batches_cover_every_index_in_length_order() {
    let lens = [5usize, 3, 9, 3, 1, 7, 5];
    let b = length_batches(&lens, 3);
    assert_eq!(b, vec![vec![4, 1, 3], vec![0, 6, 5], vec![2]]);
    assert_eq!(length_batches(&[], 4), Vec::<Vec<usize>>::new());
    assert_eq!(length_batches(&[2, 1], 0), vec![vec![1], vec![0]]);
}

// ---------------------------------------------------------------------------------------------
// The real all-MiniLM-L6-v2, when downloaded.

fn model_dir() -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("SEMID_DATA_DIR") {
        dirs.push(PathBuf::from(d).join("minilm"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/minilm"));
    dirs.into_iter().find(|d| {
        ["model.safetensors", "tokenizer.json", "config.json"]
            .iter()
            .all(|f| d.join(f).is_file())
    })
}

struct MiniLm {
    weights: BertWeights,
    embedder: TextEmbedder,
}

/// The MiniLM model, loaded once; `None` (with a message) when its files are absent.
fn minilm() -> Option<&'static MiniLm> {
    static M: OnceLock<Option<MiniLm>> = OnceLock::new();
    let m = M.get_or_init(|| {
        let dir = model_dir()?;
        Some(MiniLm {
            weights: BertWeights::load(&dir).unwrap(),
            embedder: TextEmbedder::load(&gpu(), &dir).unwrap(),
        })
    });
    if m.is_none() {
        eprintln!(
            "SKIPPED: the all-MiniLM-L6-v2 files are not in $SEMID_DATA_DIR/minilm nor \
             <repo>/data/minilm; fetch them with semid::data::fetch (Source::MiniLm)"
        );
    }
    m.as_ref()
}

const TOY: &str = "Toy Story (1995) Animation Children's Comedy";
const BUG: &str = "A Bug's Life (1998) Animation Children's Comedy";
const RYAN: &str = "Saving Private Ryan (1998) Action Drama War";

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn minilm_matches_cpu_forward() {
    let Some(m) = minilm() else { return };
    let texts = s(&[TOY, "Heat (1995)", "a", RYAN]);
    let ids = m.embedder.tokenize(&texts).unwrap();
    for normalize in [false, true] {
        // One batch: the shorter texts are padded to the longest.
        let got = m.embedder.embed(&texts, 8, normalize).unwrap();
        let d = m.embedder.dim();
        assert_eq!(got.len(), texts.len() * d);
        for (i, seq) in ids.iter().enumerate() {
            let want = embed_cpu(&m.weights, seq, normalize).unwrap();
            let row = &got[i * d..(i + 1) * d];
            let c = cosine(row, &want);
            assert!(c >= 0.999, "text {i} ({}): cosine {c}", texts[i]);
            assert!(
                max_rel_err(row, &want) < 1e-2,
                "text {i}: {}",
                max_rel_err(row, &want)
            );
        }
    }
}

#[test]
fn minilm_reference_values() {
    let Some(m) = minilm() else { return };
    let e = &m.embedder;
    assert_eq!(e.dim(), 384);
    let raw = e.embed(&s(&[TOY]), 1, false).unwrap();
    let want_raw = [-0.4182, 0.1350, 0.2107, -0.2306, 0.0691];
    assert_close(&raw[..5], &want_raw, 1e-3, 0.0, "raw pooled");
    let norm = e.embed(&s(&[TOY]), 1, true).unwrap();
    let want_norm = [-0.0723, 0.0234, 0.0364, -0.0399, 0.0119];
    assert_close(&norm[..5], &want_norm, 1e-3, 0.0, "normalised");
    let v = e.embed(&s(&[TOY, BUG, RYAN]), 4, true).unwrap();
    let d = e.dim();
    let (toy, bug, ryan) = (&v[..d], &v[d..2 * d], &v[2 * d..]);
    let c1 = cosine(toy, bug);
    let c2 = cosine(toy, ryan);
    eprintln!(
        "raw {:?}\nnormalised {:?}\ncos(toy, bug) {c1:.4}, cos(toy, ryan) {c2:.4}",
        &raw[..5],
        &norm[..5]
    );
    assert!(
        (c1 - 0.668).abs() <= 0.005,
        "cos(Toy Story, A Bug's Life) = {c1}"
    );
    assert!(
        (c2 - 0.190).abs() <= 0.005,
        "cos(Toy Story, Saving Private Ryan) = {c2}"
    );
}

#[test]
fn minilm_tokenizer_truncates_and_does_not_pad() {
    let Some(m) = minilm() else { return };
    let long = "word ".repeat(200);
    let ids = m.embedder.tokenize(&s(&[TOY, &long, ""])).unwrap();
    assert_eq!(ids[0].first(), Some(&101), "[CLS] first");
    assert_eq!(ids[0].last(), Some(&102), "[SEP] last");
    assert!(ids[0].len() < 20, "no padding to 128: {}", ids[0].len());
    assert_eq!(ids[1].len(), 32, "truncated to the default 32");
    assert_eq!(ids[1].last(), Some(&102));
    assert_eq!(ids[2], vec![101, 102]);
}

#[test]
fn minilm_batching_keeps_order_and_reports_progress() {
    let Some(m) = minilm() else { return };
    let texts = s(&[
        RYAN,
        "Heat (1995) Action Crime Thriller",
        TOY,
        "",
        "Jumanji (1995) Adventure Children's Fantasy",
        BUG,
        "Grumpier Old Men (1995) Comedy Romance",
    ]);
    let d = m.embedder.dim();
    let one = m.embedder.embed(&texts, 1, true).unwrap();
    let mut calls = Vec::new();
    let three = m
        .embedder
        .embed_with_progress(&texts, 3, true, &mut |done, total| {
            calls.push((done, total))
        })
        .unwrap();
    assert_eq!(calls, vec![(3, 7), (6, 7), (7, 7)]);
    let all = m.embedder.embed(&texts, 64, true).unwrap();
    assert_close(&three, &one, 1e-4, 1e-3, "batch 3 vs 1");
    assert_close(&all, &one, 1e-4, 1e-3, "batch 64 vs 1");
    // Row i is text i's own embedding.
    let toy = m.embedder.embed(&s(&[TOY]), 1, true).unwrap();
    assert_close(&all[2 * d..3 * d], &toy, 1e-4, 1e-3, "order");
    // Items through the template.
    let t = table();
    let v = m
        .embedder
        .embed_items(&t, DEFAULT_TEMPLATE, 2, true, &mut |_, _| {})
        .unwrap();
    assert_close(&v[..d], &toy, 1e-4, 1e-3, "embed_items");
    assert!(m
        .embedder
        .embed_items(&t, "{plot}", 2, true, &mut |_, _| {})
        .is_err());
    assert!(m.embedder.embed(&texts, 0, true).is_err());
    assert!(m.embedder.embed(&[], 4, true).unwrap().is_empty());
}

//! `embed_text` workload (BENCH.md): MiniLM-L6 sentence embeddings of 4,096 item texts, at most
//! 32 tokens each, through [`TextEmbedder`].
//!
//! The texts are the MovieLens-1M item texts (`Title (Year) Genres`, 3,883 of them, cycled to
//! 4,096) when `ml-1m.item` is in the data folder, else seeded generated sentences; the
//! `text_source` field says which. Each timed run tokenizes, batches by length, runs the encoder
//! and reads every batch back. Without the model files the workload reports itself skipped.

use super::{record, time_runs, BenchOptions, Workload};
use crate::embed::{TextEmbedder, DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::rng::Rng;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Texts per run (BENCH.md).
pub const TEXTS: usize = 4096;
/// Texts per run with `--quick`.
pub const QUICK_TEXTS: usize = 256;

/// The `embed_text` workload.
pub fn workloads() -> Vec<Workload> {
    vec![Workload {
        name: "embed_text",
        about: "MiniLM-L6 (384-d) sentence embeddings of 4,096 item texts, max 32 tokens",
        run: run_embed_text,
    }]
}

fn data_dir() -> PathBuf {
    match std::env::var_os("SEMID_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("data"),
    }
}

/// `n` seeded sentences of 4 to 14 words, for when MovieLens is absent.
pub fn generated_texts(n: usize, seed: u64) -> Vec<String> {
    const WORDS: [&str; 48] = [
        "the",
        "last",
        "night",
        "city",
        "love",
        "story",
        "war",
        "dark",
        "house",
        "man",
        "woman",
        "return",
        "secret",
        "river",
        "king",
        "dream",
        "lost",
        "summer",
        "blue",
        "murder",
        "comedy",
        "drama",
        "action",
        "thriller",
        "romance",
        "adventure",
        "children's",
        "horror",
        "animation",
        "documentary",
        "western",
        "musical",
        "of",
        "and",
        "in",
        "a",
        "1995",
        "1987",
        "2000",
        "ghost",
        "island",
        "road",
        "star",
        "family",
        "space",
        "time",
        "game",
        "heart",
    ];
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = 4 + r.below(11);
            (0..len)
                .map(|_| WORDS[r.below(WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The benchmark's texts and a description of their source.
pub fn bench_texts(n: usize) -> (Vec<String>, String) {
    let dir = data_dir().join("ml-1m");
    if dir.join("ml-1m.item").is_file() {
        if let Ok(ml) = crate::data::movielens::load_ml1m(&dir) {
            let base = crate::data::movielens::item_texts(&ml.items);
            if !base.is_empty() {
                let texts: Vec<String> = base.iter().cycle().take(n).cloned().collect();
                let src = format!("MovieLens-1M item texts ({} cycled to {n})", base.len());
                return (texts, src);
            }
        }
    }
    (
        generated_texts(n, 1),
        "generated sentences (data/ml-1m absent)".into(),
    )
}

fn run_embed_text(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let model_dir = crate::embed::default_model_dir();
    if !model_dir.join("model.safetensors").is_file() {
        return Ok(json!({
            "workload": "embed_text",
            "adapter": gpu.adapter().name,
            "backend": gpu.adapter().backend,
            "skipped": format!(
                "no MiniLM model in {} (fetch it with semid::data::fetch, Source::MiniLm, or set SEMID_DATA_DIR)",
                model_dir.display()
            ),
        }));
    }
    let embedder = TextEmbedder::load(gpu, &model_dir)?;
    let n = if opts.quick { QUICK_TEXTS } else { TEXTS };
    let (texts, source) = bench_texts(n);
    let ids = embedder.tokenize(&texts)?;
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let padded: usize = crate::embed::length_batches(
        &ids.iter().map(Vec::len).collect::<Vec<_>>(),
        DEFAULT_BATCH_SIZE,
    )
    .iter()
    .map(|b| b.len() * b.iter().map(|&i| ids[i].len()).max().unwrap_or(0))
    .sum();
    let timing = time_runs(opts.reps, || {
        embedder.embed(&texts, DEFAULT_BATCH_SIZE, true).map(|_| ())
    })?;
    Ok(record(
        gpu,
        "embed_text",
        &timing,
        opts.quick,
        json!({
            "texts_per_s": n as f64 / timing.median_s,
            "texts": n,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "batch_size": DEFAULT_BATCH_SIZE,
            "tokens": tokens,
            "padded_tokens": padded,
            "text_source": source,
            "includes": "tokenization, length batching, forward, pooling, L2 normalisation, readback",
        }),
    ))
}

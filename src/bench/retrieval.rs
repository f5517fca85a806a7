//! `genret_step` and `beam_search` workloads (issue 14): TIGER with its defaults (4 + 4
//! blocks, width 128, 6 heads of 64, feed-forward 1,024) over an ML-1M-sized catalogue of 3,883
//! items with random semantic IDs of 3 levels × 256 codes plus the collision suffix (4 tokens),
//! every user's history a full window of 20 items. `genret_step`: one training step (batch 256:
//! forward, backward, Adam), a timed run waits for the GPU. `beam_search`: 20-beam
//! trie-constrained decoding of 1,024 users in batches of 256 (`users_per_s`, and the time all
//! 6,040 ML-1M test users would take). `--quick`: width 32, 1 + 1 blocks, 64 users.

use super::{dispatch_figures, merge, record, time_runs, BenchOptions, Workload};
use crate::data::types::{Interaction, Interactions};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::optim::Adam;
use crate::retrieval::{
    EvalSplit, RetrievalConfig, SeqModel, SeqProtocol, SidTable, Tiger, TigerConfig,
};
use crate::rng::Rng;
use serde_json::{json, Value};

/// ML-1M's catalogue size.
const ITEMS: usize = 3_883;
/// Users of the bench log (each with 23 events: 21 training, validation, test).
const USERS: usize = 1_024;
/// ML-1M's held-out users.
const ML1M_USERS: f64 = 6_040.0;

/// The retrieval workloads.
pub fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "genret_step",
            about: "one TIGER training step (defaults) at batch 256, history 20 items x 4 tokens",
            run: genret_step,
        },
        Workload {
            name: "beam_search",
            about: "20-beam trie-constrained decoding with TIGER's defaults, trie of 3,883 items x 4 tokens",
            run: beam_search,
        },
    ]
}

fn model(gpu: &Gpu, quick: bool) -> Result<(Tiger, SeqProtocol)> {
    let mut rng = Rng::new(7);
    let codes: Vec<u32> = (0..ITEMS * 3)
        .map(|_| (rng.next_u64() % 256) as u32)
        .collect();
    let sid = SidTable::new(&codes, &[256, 256, 256])?;
    let mut rows = Vec::with_capacity(USERS * 23);
    for u in 0..USERS {
        for t in 0..23 {
            rows.push(Interaction {
                user: u as u32,
                item: (rng.next_u64() % ITEMS as u64) as u32,
                label: 1.0,
                timestamp: t,
            });
        }
    }
    let log = Interactions {
        users: (0..USERS).map(|u| format!("u{u}")).collect(),
        items: (0..ITEMS).map(|i| format!("i{i}")).collect(),
        rows,
    };
    let p = SeqProtocol::build(&log, &RetrievalConfig::default())?;
    let cfg = if quick {
        TigerConfig {
            d_model: 32,
            enc_layers: 1,
            dec_layers: 1,
            heads: 2,
            head_dim: 16,
            d_ff: 64,
            ..Default::default()
        }
    } else {
        TigerConfig::default()
    };
    Ok((Tiger::new(gpu, &cfg, sid, 20, 1)?, p))
}

fn genret_step(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (mut m, p) = model(gpu, opts.quick)?;
    let batch: Vec<(u32, u32)> = (0..256u32).map(|u| (u, 20)).collect();
    let mut opt = Adam::new(1e-3);
    m.train_step(&mut opt, &p, &batch, 0)?;
    gpu.sync()?;
    let mut step = 1;
    let t = time_runs(opts.reps, || {
        m.train_step(&mut opt, &p, &batch, step)?;
        step += 1;
        gpu.sync()
    })?;
    let dispatch = dispatch_figures(gpu, opts.reps, || {
        m.train_step(&mut opt, &p, &batch, 0).map(|_| ())
    })?;
    Ok(record(
        gpu,
        "genret_step",
        &t,
        opts.quick,
        merge(
            json!({
                "batch": 256, "history_items": 20, "tokens_per_item": m.sid().positions(),
                "items": ITEMS, "params": m.store.num_elements(),
            }),
            dispatch,
        ),
    ))
}

fn beam_search(gpu: &Gpu, opts: &BenchOptions) -> Result<Value> {
    let (m, p) = model(gpu, opts.quick)?;
    let users: Vec<u32> = (0..if opts.quick { 64 } else { USERS as u32 }).collect();
    let run = || -> Result<()> {
        for chunk in users.chunks(256) {
            m.rank(&p, EvalSplit::Test, chunk, 20)?;
        }
        Ok(())
    };
    run()?;
    let t = time_runs(opts.reps, run)?;
    let ups = users.len() as f64 / t.median_s;
    Ok(record(
        gpu,
        "beam_search",
        &t,
        opts.quick,
        json!({
            "users": users.len(), "beams": m.config().beams, "users_per_s": ups,
            "ml1m_test_users_s": ML1M_USERS / ups, "items": ITEMS,
            "trie_nodes": m.trie().trie().n_nodes(),
        }),
    ))
}

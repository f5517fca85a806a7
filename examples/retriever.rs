//! Generative retrieval in the library: PSRQ semantic IDs for synthetic items, a small
//! TIGER-style model trained on the users' click sequences, decoded by constrained beam search,
//! scored by Recall/NDCG against popularity.
use semid::data::synth::{generate, SynthConfig};
use semid::retrieval::{
    evaluate, fit, EvalSplit, FitConfig, Hooks, RetrievalConfig, SeqProtocol, SidTable, Tiger,
    TigerConfig,
};
use semid::{Gpu, Psrq, PsrqConfig};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::default_device()?;
    let data = generate(&SynthConfig {
        items: 300,
        users: 200,
        ..Default::default()
    })?;
    let text = data.embeddings.modality("text").expect("a text modality");
    let (_, codes) = Psrq::fit(
        &gpu,
        &text.data,
        text.dim,
        &PsrqConfig {
            k: 16,
            ..Default::default()
        },
    )?;
    let sid = SidTable::new(&codes.data, &codes.sizes)?;
    // A 0/1 log: its clicks are the interactions, impressions without a click are not.
    let proto = RetrievalConfig::default();
    let p = SeqProtocol::build(&data.interactions, &proto)?;
    let small = TigerConfig {
        d_model: 64,
        enc_layers: 2,
        dec_layers: 2,
        heads: 2,
        head_dim: 32,
        d_ff: 256,
        ..Default::default()
    };
    let mut model = Tiger::new(&gpu, &small, sid, proto.history, 1)?;
    let cfg = FitConfig {
        epochs: 2,
        batch_size: 256,
        ..Default::default()
    };
    let t0 = Instant::now();
    let summary = fit(
        &mut model,
        &p,
        &cfg,
        Hooks {
            progress: &mut |pr| {
                eprint!(
                    "\repoch {} step {}/{} loss {:?}   ",
                    pr.epoch + 1,
                    pr.step,
                    pr.steps,
                    pr.loss
                )
            },
            checkpoint: &mut |_, _| Ok(()),
            resume: None,
        },
    )?;
    eprintln!();
    println!(
        "trained {} steps in {:.1} s; validation Recall@10 per epoch {:?}",
        summary.steps,
        t0.elapsed().as_secs_f64(),
        summary.valid_recall10
    );
    let t1 = Instant::now();
    let m = evaluate(&model, &p, EvalSplit::Test, 256)?;
    println!(
        "test Recall@10 {:.4} NDCG@10 {:.4} over {} users ({:.1} ms per user decoded)",
        m.recall_at(10).unwrap_or(0.0),
        m.ndcg_at(10).unwrap_or(0.0),
        m.users,
        1e3 * t1.elapsed().as_secs_f64() / m.users as f64
    );
    Ok(())
}

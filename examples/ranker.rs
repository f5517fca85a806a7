//! Train DIN with and without semantic IDs on the synthetic click log, from a Rust program:
//! fit PSRQ on the items' text embeddings, align its codes to the log's items, train both
//! rankers under the ranking protocol and compare AUC and cold AUC with the popularity
//! baseline. `cargo run --release --example ranker` (a minute or two on lavapipe).
use semid::data::synth::{generate, SynthConfig};
use semid::rank::{
    popularity_metrics, CodeTables, FitHooks, ModelKind, ProtocolConfig, RankProtocol, Ranker,
    RankerConfig, RunCodes, SplitName,
};
use semid::{Gpu, Psrq, PsrqConfig};

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::default_device()?;
    let data = generate(&SynthConfig {
        items: 600,
        users: 400,
        seed: 5,
        ..Default::default()
    })?;
    // Click logs are 0/1: a label of at least 1 is positive.
    let protocol = RankProtocol::build(
        &data.interactions,
        &ProtocolConfig {
            positive_threshold: 1.0,
            ..Default::default()
        },
    )?;

    // Semantic IDs of every item from its text embedding.
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
    // The codes in the embeddings' item order, aligned to the log's items (the same rules, and
    // errors for items without codes, as for tokenizer runs on disk).
    let run = RunCodes {
        run: "in memory".into(),
        method: Some("psrq".into()),
        ids: data.embeddings.ids.clone(),
        families: vec![("text".into(), codes)],
    };
    let tables = CodeTables::align(&[run], &data.interactions.items)?;

    let pop = popularity_metrics(&protocol)?;
    println!(
        "popularity   test AUC {:.4}  cold AUC {:.4}",
        pop.test.auc.unwrap_or(f64::NAN),
        pop.test.cold_auc.unwrap_or(f64::NAN)
    );
    for (model, codes) in [(ModelKind::Din, None), (ModelKind::DinSid, Some(&tables))] {
        let cfg = RankerConfig {
            model,
            families: if codes.is_some() {
                vec!["text".into()]
            } else {
                vec![]
            },
            epochs: 4,
            ..Default::default()
        };
        let mut ranker = Ranker::new(&gpu, &cfg, protocol.n_items(), 20, codes)?;
        let report = ranker.fit(
            &protocol,
            FitHooks {
                progress: &mut |_| {},
                checkpoint: &mut |_, _| Ok(()),
                resume: None,
            },
        )?;
        let m = ranker.evaluate(&protocol, SplitName::Test)?;
        println!(
            "{:<12} test AUC {:.4}  cold AUC {:.4}  (best epoch {} of {:?})",
            cfg.label(),
            m.auc.unwrap_or(f64::NAN),
            m.cold_auc.unwrap_or(f64::NAN),
            report.best_epoch + 1,
            report.valid_auc
        );
    }
    Ok(())
}

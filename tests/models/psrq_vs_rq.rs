//! On the synthetic multimodal data, PSRQ's level-2 and level-3 codes stay more coherent in the
//! original embedding space, and purer in the true labels, than RQ-KMeans' (the PSRQ paper's
//! Figure 1). Only the direction is asserted, on several seeds.
use crate::common;
use common::*;
use semid::data::synth::{generate, SynthConfig};
use semid::metrics::{Metrics, MetricsInput};
use semid::{Psrq, PsrqConfig, RqKMeans, RqKMeansConfig};

fn metrics(name: &str, codes: &semid::Codes, x: &[f32], d: usize, labels: &[u32]) -> Metrics {
    Metrics::compute(
        name,
        &MetricsInput::new(&codes.data, &codes.sizes)
            .with_embeddings(x, d)
            .with_labels(labels),
    )
    .unwrap()
}

#[test]
fn psrq_keeps_deeper_levels_coherent_and_pure() {
    let g = gpu();
    for seed in [1u64, 2, 3] {
        let data = generate(&SynthConfig {
            items: 1500,
            users: 20,
            seed,
            ..Default::default()
        })
        .unwrap();
        let text = data.embeddings.modality("text").unwrap();
        let labels = data.items.labels.clone().unwrap();
        let (_, rq) = RqKMeans::fit(
            &g,
            &text.data,
            text.dim,
            &RqKMeansConfig {
                k: 16,
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        let (_, ps) = Psrq::fit(
            &g,
            &text.data,
            text.dim,
            &PsrqConfig {
                k: 16,
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        let m_rq = metrics("rq", &rq, &text.data, text.dim, &labels);
        let m_ps = metrics("psrq", &ps, &text.data, text.dim, &labels);
        for level in [1, 2] {
            let (a, b) = (&m_rq.per_level[level], &m_ps.per_level[level]);
            let coh = |m: &semid::metrics::LevelMetrics| {
                m.code.cohesion.as_ref().unwrap().item_weighted.unwrap()
            };
            assert!(
                coh(b) > coh(a),
                "seed {seed}, level {}: PSRQ cohesion {} vs RQ {}",
                level + 1,
                coh(b),
                coh(a)
            );
            assert!(
                b.code.purity.unwrap() > a.code.purity.unwrap(),
                "seed {seed}, level {}: PSRQ purity {:?} vs RQ {:?}",
                level + 1,
                b.code.purity,
                a.code.purity
            );
        }
        // Level 1 is the same k-means in both.
        assert_eq!(rq.level(0), ps.level(0));
    }
}

//! Generative-retrieval decoding: the code trie, the GPU beam step against its CPU reference,
//! beam search against exact search and brute force, unconstrained invalid IDs.

use crate::common::gpu;
use semid::kernels::beam::{
    constrained_top_k, constrained_top_k_cpu, extend_prefixes, extend_prefixes_cpu, top_k_plan,
    TopKCpu, INVALID,
};
use semid::retrieval::decode::{
    beam_search, beam_search_cpu, exact_search, invalid_id_stats, BeamConfig, CodeTrie,
    CpuStepScorer, Hit, StepScorer,
};
use semid::{Error, Result, Tensor};
use std::collections::{BTreeMap, BTreeSet};

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Distinct random codes `[n, T]`.
fn random_codes(n: usize, vocab: &[usize], seed: u64) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut s = seed;
    while seen.len() < n {
        let row: Vec<u32> = vocab
            .iter()
            .map(|&v| {
                s = mix(s);
                (s % v as u64) as u32
            })
            .collect();
        if seen.insert(row.clone()) {
            out.extend(row);
        }
    }
    out
}

/// A deterministic fake model: log-softmax of logits hashed from (user, prefix, token), in
/// steps of 0.25 so that ties occur.
struct Fake {
    seed: u64,
    vocab: Vec<usize>,
}

impl Fake {
    fn row(&self, user: usize, prefix: &[u32], step: usize) -> Vec<f32> {
        let mut h = mix(self.seed ^ (user as u64) << 20);
        for &t in prefix {
            h = mix(h ^ t as u64);
        }
        let logits: Vec<f64> = (0..self.vocab[step])
            .map(|c| (mix(h ^ (c as u64) << 32) % 16) as f64 * 0.25)
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + logits.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        logits.iter().map(|x| (x - lse) as f32).collect()
    }

    fn all(&self, step: usize, prefixes: &[u32], rows: usize, per_user: usize) -> Vec<f32> {
        (0..rows)
            .flat_map(|r| self.row(r / per_user, &prefixes[r * step..(r + 1) * step], step))
            .collect()
    }
}

impl StepScorer for Fake {
    fn log_probs(&mut self, step: usize, prefixes: &Tensor, per_user: usize) -> Result<Tensor> {
        let rows = prefixes.shape()[0];
        let p = if prefixes.numel() == 0 {
            Vec::new()
        } else {
            prefixes.to_u32()?
        };
        let lp = self.all(step, &p, rows, per_user);
        Tensor::from_slice(prefixes.gpu(), &lp, &[rows, self.vocab[step]])
    }
}

impl CpuStepScorer for Fake {
    fn log_probs_cpu(
        &mut self,
        step: usize,
        prefixes: &[u32],
        rows: usize,
        per_user: usize,
    ) -> Result<Vec<f32>> {
        Ok(self.all(step, prefixes, rows, per_user))
    }
}

/// Every item's log-likelihood for `user`, summed in f32 from the first token, sorted as hits.
fn brute_force(fake: &Fake, codes: &[u32], t: usize, user: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = codes
        .chunks(t)
        .enumerate()
        .map(|(i, row)| {
            let mut lp = 0f32;
            for s in 0..t {
                lp += fake.row(user, &row[..s], s)[row[s] as usize];
            }
            Hit {
                item: Some(i as u32),
                tokens: row.to_vec(),
                log_prob: lp,
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        b.log_prob
            .partial_cmp(&a.log_prob)
            .unwrap()
            .then(a.item.cmp(&b.item))
    });
    hits
}

#[test]
fn trie_matches_a_brute_force_map_of_prefixes() {
    let vocab = [5usize, 3, 7, 2];
    let n = 60;
    let codes = random_codes(n, &vocab, 7);
    let trie = CodeTrie::build(&codes, &vocab).unwrap();
    // Every distinct prefix, by length, in lexicographic order: the nodes in BFS order.
    let mut map: BTreeMap<Vec<u32>, Option<u32>> = BTreeMap::new();
    for (i, row) in codes.chunks(4).enumerate() {
        for l in 0..=4 {
            map.entry(row[..l].to_vec()).or_insert(None);
        }
        map.insert(row.to_vec(), Some(i as u32));
    }
    assert_eq!(trie.n_nodes(), map.len());
    assert_eq!(trie.n_items(), n);
    assert_eq!(trie.depth(), 4);
    let mut want: Vec<&Vec<u32>> = map.keys().collect();
    want.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    for (node, prefix) in want.iter().enumerate() {
        let node = node as u32;
        assert_eq!(&trie.prefix(node), *prefix, "node {node}");
        assert_eq!(trie.find(prefix), Some(node));
        assert_eq!(trie.item_of(node), map[*prefix], "item of node {node}");
        assert!(trie.nodes_at_depth(prefix.len()).contains(&node));
        let (toks, kids) = trie.children(node);
        let want_toks: Vec<u32> = (0..vocab.get(prefix.len()).copied().unwrap_or(0) as u32)
            .filter(|&c| {
                let mut p = (*prefix).clone();
                p.push(c);
                map.contains_key(&p)
            })
            .collect();
        assert_eq!(toks, &want_toks[..], "children of node {node}");
        for (&t, &k) in toks.iter().zip(kids) {
            let mut p = (*prefix).clone();
            p.push(t);
            assert_eq!(trie.prefix(k), p);
        }
    }
    assert_eq!(trie.nodes_at_depth(0), 0..1);
    assert_eq!(trie.find(&[9]), None);
}

fn invalid_msg(r: Result<CodeTrie>) -> String {
    match r {
        Err(Error::Invalid(m)) => m,
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn trie_build_errors_name_the_item_row_and_position() {
    let vocab = [4usize, 3];
    let m = invalid_msg(CodeTrie::build(&[0, 1, 2, 2, 1, 3], &vocab));
    assert!(
        m.contains("item row 2, position 1") && m.contains("token 3"),
        "{m}"
    );
    let m = invalid_msg(CodeTrie::build(&[0, 1, 2, 2, 3, 0, 2, 2], &vocab));
    assert!(m.contains("item rows 1 and 3"), "{m}");
    let m = invalid_msg(CodeTrie::build(&[], &[]));
    assert!(m.contains("at least one position"), "{m}");
    let m = invalid_msg(CodeTrie::build(&[0, 0], &[2, 0]));
    assert!(m.contains("vocab[1] = 0"), "{m}");
    match CodeTrie::build(&[0, 1, 2], &vocab) {
        Err(Error::Shape { message, .. }) => assert!(message.contains("T = 2"), "{message}"),
        other => panic!("expected Error::Shape, got {other:?}"),
    }
    let empty = CodeTrie::build(&[], &vocab).unwrap();
    assert_eq!((empty.n_items(), empty.n_nodes()), (0, 1));
}

/// The GPU step against its CPU reference for `users` × `beams` rows over `vocab` tokens, beams
/// at random nodes of a trie (some dead), scores with ties and −∞.
fn check_top_k(users: usize, beams: usize, vocab: usize, seed: u64) {
    let g = gpu();
    let voc = [vocab, vocab];
    let codes = random_codes((vocab * 3).min(400).min(vocab * vocab), &voc, seed);
    let trie = CodeTrie::build(&codes, &voc).unwrap();
    let gt = trie.to_gpu(&g).unwrap();
    let rows = users * beams;
    let inner = trie.nodes_at_depth(2).start;
    let mut s = seed;
    let mut next = || {
        s = mix(s);
        s
    };
    let node: Vec<u32> = (0..rows)
        .map(|_| match next() % 8 {
            0 => INVALID,
            _ => (next() % inner as u64) as u32,
        })
        .collect();
    let score: Vec<f32> = (0..rows)
        .map(|_| match next() % 10 {
            0 => f32::NEG_INFINITY,
            v => -(v as f32) * 0.5,
        })
        .collect();
    let logp: Vec<f32> = (0..rows * vocab)
        .map(|_| -((next() % 8) as f32) * 0.25)
        .collect();
    let (off, tok, kid) = trie.csr();
    let lt = Tensor::from_slice(&g, &logp, &[rows, vocab]).unwrap();
    let st = Tensor::from_slice(&g, &score, &[rows]).unwrap();
    let nt = Tensor::from_u32(&g, &node, &[rows]).unwrap();
    for constrained in [true, false] {
        let want = constrained_top_k_cpu(
            &logp,
            &score,
            &node,
            off,
            tok,
            kid,
            beams,
            vocab,
            constrained,
        );
        let got = constrained_top_k(&lt, &st, &nt, gt.csr(), beams, constrained).unwrap();
        let u = Tensor::read_all_u32(&[&got.parent, &got.token, &got.node]).unwrap();
        let got = TopKCpu {
            score: got.score.to_vec().unwrap(),
            parent: u[0].clone(),
            token: u[1].clone(),
            node: u[2].clone(),
        };
        let what =
            format!("users {users}, beams {beams}, vocab {vocab}, constrained {constrained}");
        for r in 0..rows {
            assert_eq!(
                (
                    got.score[r].to_bits(),
                    got.parent[r],
                    got.token[r],
                    got.node[r]
                ),
                (
                    want.score[r].to_bits(),
                    want.parent[r],
                    want.token[r],
                    want.node[r]
                ),
                "{what}: slot {r}"
            );
            if constrained && got.score[r] > f32::NEG_INFINITY {
                assert_ne!(got.node[r], INVALID, "{what}: slot {r} left the trie");
            }
        }
    }
}

#[test]
fn gpu_top_k_matches_cpu_for_one_user_one_beam_one_token() {
    check_top_k(1, 1, 1, 1);
}

#[test]
fn gpu_top_k_matches_cpu_at_prime_shapes() {
    check_top_k(3, 7, 13, 2);
    check_top_k(5, 20, 31, 3);
}

#[test]
fn gpu_top_k_matches_cpu_past_256_tokens_and_over_several_windows() {
    check_top_k(2, 5, 257, 4);
    check_top_k(1, 20, 5003, 5);
    // Enough candidates per user for several windows and a merge.
    assert!(top_k_plan(64, 5003).1 > 1);
    check_top_k(1, 64, 5003, 6);
}

#[test]
fn gpu_top_k_matches_cpu_for_more_than_65535_users() {
    check_top_k(70_001, 1, 3, 7);
}

#[test]
fn extend_prefixes_matches_cpu() {
    let g = gpu();
    let (users, beams, width) = (70_001usize, 2usize, 3usize);
    let rows = users * beams;
    let pre: Vec<u32> = (0..rows * width)
        .map(|i| mix(i as u64) as u32 % 97)
        .collect();
    let parent: Vec<u32> = (0..rows).map(|i| mix(i as u64 + 5) as u32 % 2).collect();
    let token: Vec<u32> = (0..rows).map(|i| i as u32).collect();
    let got = extend_prefixes(
        &Tensor::from_u32(&g, &pre, &[rows, width]).unwrap(),
        &Tensor::from_u32(&g, &parent, &[rows]).unwrap(),
        &Tensor::from_u32(&g, &token, &[rows]).unwrap(),
        beams,
    )
    .unwrap();
    assert_eq!(
        got.to_u32().unwrap(),
        extend_prefixes_cpu(&pre, width, &parent, &token, beams)
    );
}

#[test]
fn constrained_beam_with_beams_at_least_items_is_exact() {
    let vocab = vec![4usize, 3, 5];
    let codes = random_codes(25, &vocab, 11);
    let trie = CodeTrie::build(&codes, &vocab).unwrap();
    let gt = trie.to_gpu(&gpu()).unwrap();
    let mut fake = Fake {
        seed: 3,
        vocab: vocab.clone(),
    };
    let users = 3;
    let cfg = BeamConfig {
        beams: 32,
        constrained: true,
    };
    let beam = beam_search(&gt, &mut fake, users, &cfg).unwrap();
    let exact = exact_search(&gt, &mut fake, users, 32).unwrap();
    let cpu = beam_search_cpu(&trie, &mut fake, users, &cfg).unwrap();
    for u in 0..users {
        let bf = brute_force(&fake, &codes, 3, u);
        assert_eq!(beam[u].len(), 25, "user {u}");
        assert_eq!(beam[u], exact[u], "user {u}: beam vs exact");
        assert_eq!(exact[u], bf, "user {u}: exact vs brute force");
        assert_eq!(cpu[u], bf, "user {u}: CPU beam vs brute force");
    }
}

#[test]
fn constrained_beam_returns_only_real_items() {
    let vocab = vec![6usize, 5, 4];
    let codes = random_codes(40, &vocab, 12);
    let trie = CodeTrie::build(&codes, &vocab).unwrap();
    let gt = trie.to_gpu(&gpu()).unwrap();
    let mut fake = Fake {
        seed: 9,
        vocab: vocab.clone(),
    };
    let cfg = BeamConfig {
        beams: 5,
        constrained: true,
    };
    let beam = beam_search(&gt, &mut fake, 4, &cfg).unwrap();
    let cpu = beam_search_cpu(&trie, &mut fake, 4, &cfg).unwrap();
    assert_eq!(beam, cpu);
    let exact = exact_search(&gt, &mut fake, 4, 5).unwrap();
    for (u, hits) in beam.iter().enumerate() {
        assert_eq!(hits.len(), 5, "user {u}");
        for h in hits {
            let i = h.item.expect("a real item") as usize;
            assert_eq!(h.tokens, codes[i * 3..i * 3 + 3], "user {u}");
        }
        // The beam's best is never better than the exact best.
        assert!(hits[0].log_prob <= exact[u][0].log_prob);
    }
}

#[test]
fn unconstrained_beam_on_a_sparse_trie_returns_invalid_ids_and_the_rate_counts_them() {
    let vocab = vec![8usize, 8, 8];
    let codes = random_codes(10, &vocab, 13);
    let trie = CodeTrie::build(&codes, &vocab).unwrap();
    let gt = trie.to_gpu(&gpu()).unwrap();
    let mut fake = Fake {
        seed: 4,
        vocab: vocab.clone(),
    };
    let cfg = BeamConfig {
        beams: 6,
        constrained: false,
    };
    let beam = beam_search(&gt, &mut fake, 3, &cfg).unwrap();
    let cpu = beam_search_cpu(&trie, &mut fake, 3, &cfg).unwrap();
    assert_eq!(beam, cpu);
    let mut invalid = 0;
    for hits in &beam {
        assert_eq!(hits.len(), 6);
        for h in hits {
            assert_eq!(h.item, trie.find(&h.tokens).and_then(|n| trie.item_of(n)));
            invalid += usize::from(h.item.is_none());
        }
    }
    let stats = invalid_id_stats(&beam);
    assert!(invalid > 0, "a sparse trie should give some invalid IDs");
    assert_eq!((stats.hits, stats.invalid), (18, invalid));
    assert!((stats.rate() - invalid as f64 / 18.0).abs() < 1e-12);
    let constrained = beam_search(
        &gt,
        &mut fake,
        3,
        &BeamConfig {
            beams: 6,
            constrained: true,
        },
    )
    .unwrap();
    assert_eq!(invalid_id_stats(&constrained).invalid, 0);
}

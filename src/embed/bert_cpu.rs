//! A plain-Rust BERT forward pass (f64 accumulation, one unpadded sequence at a time), the
//! reference the GPU encoder is tested against.

use super::bert::{BertWeights, Weight, NORMALIZE_EPS};
use crate::error::{Error, Result};

/// y[t, j] = Σ_i x[t, i] · w[j, i] + b[j] for a PyTorch Linear weight `w` of `[out, in]`.
fn linear(x: &[f32], w: &Weight, b: &Weight) -> Vec<f32> {
    let (out, inp) = (w.shape[0], w.shape[1]);
    let rows = x.len() / inp;
    let mut y = vec![0f32; rows * out];
    for t in 0..rows {
        let xr = &x[t * inp..(t + 1) * inp];
        for j in 0..out {
            let wr = &w.data[j * inp..(j + 1) * inp];
            let dot: f64 = xr.iter().zip(wr).map(|(&a, &c)| a as f64 * c as f64).sum();
            y[t * out + j] = (dot + b.data[j] as f64) as f32;
        }
    }
    y
}

fn layernorm(x: &mut [f32], g: &Weight, b: &Weight, eps: f64) {
    let h = g.data.len();
    for row in x.chunks_mut(h) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        let r = 1.0 / (var + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            *v = ((*v as f64 - mean) * r * g.data[j] as f64 + b.data[j] as f64) as f32;
        }
    }
}

/// The last hidden states `[ids.len(), hidden]` of one sequence, every token real (no padding),
/// token types all 0.
pub fn forward_cpu(w: &BertWeights, ids: &[u32]) -> Result<Vec<f32>> {
    let c = &w.config;
    let (n, h) = (ids.len(), c.hidden_size);
    if n > c.max_position_embeddings {
        return Err(Error::Invalid(format!(
            "forward_cpu: {n} tokens exceed {} positions",
            c.max_position_embeddings
        )));
    }
    if let Some(&bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
        return Err(Error::Invalid(format!(
            "forward_cpu: token id {bad} is out of range for a vocabulary of {}",
            c.vocab_size
        )));
    }
    let act = c.activation().map_err(Error::Invalid)?;
    let eps = c.layer_norm_eps;
    let mut x = vec![0f32; n * h];
    for (t, &id) in ids.iter().enumerate() {
        for j in 0..h {
            x[t * h + j] = w.word.data[id as usize * h + j]
                + w.position.data[t * h + j]
                + w.token_type.data[j];
        }
    }
    layernorm(&mut x, &w.emb_ln_g, &w.emb_ln_b, eps);
    let heads = c.num_attention_heads;
    let dh = c.head_dim();
    let scale = 1.0 / (dh as f64).sqrt();
    for l in &w.layers {
        let q = linear(&x, &l.q_w, &l.q_b);
        let k = linear(&x, &l.k_w, &l.k_b);
        let v = linear(&x, &l.v_w, &l.v_b);
        let mut ctx = vec![0f32; n * h];
        let mut p = vec![0f64; n];
        for hd in 0..heads {
            for i in 0..n {
                let qi = &q[i * h + hd * dh..][..dh];
                for (j, pj) in p.iter_mut().enumerate() {
                    let kj = &k[j * h + hd * dh..][..dh];
                    *pj = qi
                        .iter()
                        .zip(kj)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * scale;
                }
                let mx = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = p
                    .iter_mut()
                    .map(|s| {
                        *s = (*s - mx).exp();
                        *s
                    })
                    .sum();
                for d in 0..dh {
                    let acc: f64 = (0..n).map(|j| p[j] * v[j * h + hd * dh + d] as f64).sum();
                    ctx[i * h + hd * dh + d] = (acc / sum) as f32;
                }
            }
        }
        let mut a = linear(&ctx, &l.o_w, &l.o_b);
        a.iter_mut().zip(&x).for_each(|(a, &x)| *a += x);
        layernorm(&mut a, &l.ln1_g, &l.ln1_b, eps);
        let mut f = linear(&a, &l.ffn_in_w, &l.ffn_in_b);
        f.iter_mut().for_each(|v| *v = act.cpu(*v));
        let mut o = linear(&f, &l.ffn_out_w, &l.ffn_out_b);
        o.iter_mut().zip(&a).for_each(|(o, &a)| *o += a);
        layernorm(&mut o, &l.ln2_g, &l.ln2_b, eps);
        x = o;
    }
    Ok(x)
}

/// The sentence embedding of one sequence: the mean of [`forward_cpu`]'s rows, L2-normalised
/// (divided by max(‖v‖, [`NORMALIZE_EPS`])) if `normalize`. An empty sequence gives zeros.
pub fn embed_cpu(w: &BertWeights, ids: &[u32], normalize: bool) -> Result<Vec<f32>> {
    let h = w.config.hidden_size;
    let x = forward_cpu(w, ids)?;
    let n = ids.len();
    let mut v = vec![0f64; h];
    for row in x.chunks(h) {
        v.iter_mut().zip(row).for_each(|(a, &b)| *a += b as f64);
    }
    if n > 0 {
        v.iter_mut().for_each(|a| *a /= n as f64);
    }
    if normalize {
        let norm = v
            .iter()
            .map(|a| a * a)
            .sum::<f64>()
            .sqrt()
            .max(NORMALIZE_EPS as f64);
        v.iter_mut().for_each(|a| *a /= norm);
    }
    Ok(v.into_iter().map(|a| a as f32).collect())
}

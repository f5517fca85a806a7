//! [`CodeTrie`]: the prefix trie of a catalogue's semantic IDs, and its GPU copy [`GpuTrie`].
//!
//! Nodes are numbered in breadth-first order with the root 0 and each node's children sorted by
//! token, so the nodes at depth `t` are one contiguous range ([`CodeTrie::nodes_at_depth`]) in
//! lexicographic order of their prefixes, and the leaves (depth `T`) are the items.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::beam::{TrieCsr, INVALID};
use crate::tensor::Tensor;
use std::ops::Range;

/// The prefix trie of a set of distinct semantic IDs, children in CSR form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeTrie {
    vocab: Vec<usize>,
    n_items: usize,
    /// `[n_nodes + 1]`: node `n`'s children are edges `offsets[n]..offsets[n + 1]`.
    offsets: Vec<u32>,
    /// `[n_edges]`: the token of each edge, ascending within a node.
    tokens: Vec<u32>,
    /// `[n_edges]`: the child node of each edge.
    children: Vec<u32>,
    /// `[n_nodes]`: each node's parent ([`INVALID`] for the root).
    parent: Vec<u32>,
    /// `[n_nodes]`: the token on the edge into each node (0 for the root).
    token_in: Vec<u32>,
    /// `[T + 2]`: depth `t`'s nodes are `depth_start[t]..depth_start[t + 1]`.
    depth_start: Vec<u32>,
    /// `[n_items]`: the item row of each leaf, in leaf order.
    leaf_item: Vec<u32>,
}

impl CodeTrie {
    /// Builds the trie of `codes` (row-major `[n_items, T]`, `T = vocab.len()`): the token at
    /// position `t` must be below `vocab[t]` and no two rows may be equal. Errors name the item
    /// row and position ([`Error::Invalid`]) or the lengths that do not fit ([`Error::Shape`]).
    pub fn build(codes: &[u32], vocab: &[usize]) -> Result<CodeTrie> {
        const OP: &str = "CodeTrie::build";
        let t_len = vocab.len();
        if t_len == 0 {
            return Err(Error::Invalid(format!(
                "{OP}: a semantic ID needs at least one position (vocab is empty)"
            )));
        }
        if let Some((t, &v)) = vocab
            .iter()
            .enumerate()
            .find(|(_, &v)| v == 0 || u32::try_from(v).is_err())
        {
            return Err(Error::Invalid(format!(
                "{OP}: vocab[{t}] = {v} must be in 1..=2^32 - 1"
            )));
        }
        if !codes.len().is_multiple_of(t_len) {
            return Err(Error::shape(
                OP,
                format!(
                    "{} tokens are not whole rows of T = {t_len} positions (the last row has {})",
                    codes.len(),
                    codes.len() % t_len
                ),
            ));
        }
        let n = codes.len() / t_len;
        let row = |i: usize| &codes[i * t_len..(i + 1) * t_len];
        for i in 0..n {
            for (t, (&c, &v)) in row(i).iter().zip(vocab).enumerate() {
                if c as usize >= v {
                    return Err(Error::Invalid(format!(
                        "{OP}: item row {i}, position {t}: token {c} is not below vocab[{t}] = {v}"
                    )));
                }
            }
        }
        if n.saturating_mul(t_len) >= INVALID as usize - 1 {
            return Err(Error::shape(
                OP,
                format!("{n} items of {t_len} positions may need more trie nodes than a u32 holds"),
            ));
        }
        // Lexicographic order of the rows (ties by row, so a duplicate names the lower row first).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| row(a).cmp(row(b)).then(a.cmp(&b)));
        // lcp[k]: how many leading tokens sorted row k shares with sorted row k − 1.
        let mut lcp = vec![0usize; n];
        for k in 1..n {
            let (a, b) = (row(order[k - 1]), row(order[k]));
            let l = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            if l == t_len {
                return Err(Error::Invalid(format!(
                    "{OP}: item rows {} and {} have the same semantic ID {:?}",
                    order[k - 1],
                    order[k],
                    a
                )));
            }
            lcp[k] = l;
        }
        // Sorted row k opens one node at every depth below its lcp, so depth d holds the rows
        // with lcp < d; in lexicographic order, which is breadth-first order within a depth.
        let mut depth_start = vec![0u32; t_len + 2];
        depth_start[1] = 1;
        for d in 1..=t_len {
            let count = lcp.iter().filter(|&&l| l < d).count() as u32;
            depth_start[d + 1] = depth_start[d] + count;
        }
        let n_nodes = depth_start[t_len + 1] as usize;
        let mut parent = vec![INVALID; n_nodes];
        let mut token_in = vec![0u32; n_nodes];
        let mut leaf_item = vec![0u32; n];
        let mut next: Vec<u32> = depth_start[..=t_len].to_vec();
        let mut cur = vec![0u32; t_len + 1];
        for (k, &i) in order.iter().enumerate() {
            for d in lcp[k] + 1..=t_len {
                let id = next[d];
                next[d] += 1;
                parent[id as usize] = cur[d - 1];
                token_in[id as usize] = row(i)[d - 1];
                cur[d] = id;
            }
            leaf_item[(cur[t_len] - depth_start[t_len]) as usize] = i as u32;
        }
        // Children: nodes 1.. in order are the edges, grouped by parent (parents ascend with
        // the node number) and by token within a parent.
        let mut offsets = vec![0u32; n_nodes + 1];
        for &p in &parent[1..] {
            offsets[p as usize + 1] += 1;
        }
        for k in 0..n_nodes {
            offsets[k + 1] += offsets[k];
        }
        Ok(CodeTrie {
            vocab: vocab.to_vec(),
            n_items: n,
            offsets,
            tokens: token_in[1..].to_vec(),
            children: (1..n_nodes as u32).collect(),
            parent,
            token_in,
            depth_start,
            leaf_item,
        })
    }

    /// Positions of a semantic ID (`T`).
    pub fn depth(&self) -> usize {
        self.vocab.len()
    }

    /// Tokens per position.
    pub fn vocab(&self) -> &[usize] {
        &self.vocab
    }

    /// Items (leaves).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Nodes, the root included.
    pub fn n_nodes(&self) -> usize {
        self.parent.len()
    }

    /// The nodes at depth `t` (0: the root; `T`: the leaves); empty past `T`.
    pub fn nodes_at_depth(&self, t: usize) -> Range<u32> {
        if t > self.depth() {
            let end = self.n_nodes() as u32;
            return end..end;
        }
        self.depth_start[t]..self.depth_start[t + 1]
    }

    /// The tokens and nodes of `node`'s children, sorted by token (empty for a leaf or a node
    /// out of range).
    pub fn children(&self, node: u32) -> (&[u32], &[u32]) {
        let n = node as usize;
        if n >= self.n_nodes() {
            return (&[], &[]);
        }
        let (a, b) = (self.offsets[n] as usize, self.offsets[n + 1] as usize);
        (&self.tokens[a..b], &self.children[a..b])
    }

    /// The child of `node` along `token`, or `None`.
    pub fn child(&self, node: u32, token: u32) -> Option<u32> {
        let (toks, kids) = self.children(node);
        toks.binary_search(&token).ok().map(|k| kids[k])
    }

    /// The node of a prefix, or `None` when no item starts with it.
    pub fn find(&self, prefix: &[u32]) -> Option<u32> {
        prefix.iter().try_fold(0u32, |n, &t| self.child(n, t))
    }

    /// The item row of a leaf, or `None` for an inner node or a node out of range.
    pub fn item_of(&self, leaf: u32) -> Option<u32> {
        let r = self.nodes_at_depth(self.depth());
        r.contains(&leaf)
            .then(|| self.leaf_item[(leaf - r.start) as usize])
    }

    /// The tokens from the root to `node` (empty for the root or a node out of range).
    pub fn prefix(&self, node: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut n = node;
        while (n as usize) < self.n_nodes() && n != 0 {
            out.push(self.token_in[n as usize]);
            n = self.parent[n as usize];
        }
        out.reverse();
        out
    }

    /// The CSR arrays: `(offsets [n_nodes + 1], tokens [n_edges], children [n_edges])`.
    pub fn csr(&self) -> (&[u32], &[u32], &[u32]) {
        (&self.offsets, &self.tokens, &self.children)
    }

    /// Uploads the CSR once, for [`crate::retrieval::decode::beam_search`].
    pub fn to_gpu(&self, gpu: &Gpu) -> Result<GpuTrie> {
        // An empty edge list still binds: one unused word.
        let pad = |v: &[u32]| if v.is_empty() { vec![0] } else { v.to_vec() };
        Ok(GpuTrie {
            offsets: Tensor::from_u32(gpu, &self.offsets, &[self.offsets.len()])?,
            tokens: Tensor::from_u32(gpu, &pad(&self.tokens), &[self.tokens.len().max(1)])?,
            children: Tensor::from_u32(gpu, &pad(&self.children), &[self.children.len().max(1)])?,
            trie: self.clone(),
            gpu: gpu.clone(),
        })
    }
}

/// A [`CodeTrie`] with its CSR on the GPU (uploaded once by [`CodeTrie::to_gpu`]); keeps a
/// copy of the trie for the CPU side of decoding (leaf to item, node prefixes).
#[derive(Clone, Debug)]
pub struct GpuTrie {
    trie: CodeTrie,
    gpu: Gpu,
    offsets: Tensor,
    tokens: Tensor,
    children: Tensor,
}

impl GpuTrie {
    /// The trie it was made from.
    pub fn trie(&self) -> &CodeTrie {
        &self.trie
    }

    /// The device holding it.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The CSR tensors, as the beam kernel takes them.
    pub fn csr(&self) -> TrieCsr<'_> {
        TrieCsr {
            offsets: &self.offsets,
            tokens: &self.tokens,
            children: &self.children,
        }
    }
}

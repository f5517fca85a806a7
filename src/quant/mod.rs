//! Tokenizers that turn embeddings into semantic IDs, and the clustering they build on.

pub mod kmeans;

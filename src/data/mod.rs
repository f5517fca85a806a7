//! Data in and out: embedding and interaction formats, the synthetic generator, real data
//! sets, and splits.

#[cfg(feature = "fetch")]
pub mod fetch;
pub mod movielens;
pub mod synth;
pub mod types;

pub mod csv_embeddings;
mod delimited;
pub mod embeddings;
pub mod fileio;
pub mod interactions;
pub mod names;
pub mod npy;
pub mod safetensors_io;
pub mod splits;

pub use embeddings::{load_item_embeddings, EmbeddingInput};
pub use interactions::{load_interactions, load_interactions_for_items, load_item_table};
pub use splits::{ColdSplit, NegativeSampler, Split};
pub use types::{Interaction, Interactions, ItemEmbeddings, ItemTable, Modality};

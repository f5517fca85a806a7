//! Data in and out: embedding and interaction formats, the synthetic generator, real data
//! sets, and splits.

pub mod fetch;
pub mod movielens;
pub mod synth;
pub mod types;

pub use types::{Interaction, Interactions, ItemEmbeddings, ItemTable, Modality};

//! Generative retrieval on semantic IDs: decoding a user's next item token by token.
pub mod decode;

//! The differentiable ops, one file per family, each forward next to its gradient rule. All
//! are methods of [`Graph`](super::Graph).

mod attention;
mod dropout;
mod elementwise;
mod loss;
mod matmul;
mod movement;
mod norm;
mod reduce;
mod soft_index;
mod softmax;

pub use norm::NORMALIZE_EPS;

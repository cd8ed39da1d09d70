//! Layers shared by the encoders: batch norm that also runs in f16, 1x1
//! convolutions and temporal `(k, 1)` convolutions written as matrix
//! products (candle's `conv2d` cannot express a `(9, 1)` kernel with
//! `(4, 0)` padding and `(2, 1)` stride, and its im2col path is slow on CPU;
//! see CANDLE-NOTES.md), and the joint aggregation of graph convolutions
//! over all adjacency subsets ([`aggregate`]). Their CPU f32 paths are custom
//! ops with hand-written backward passes, each checked against candle's
//! own ops; other dtypes and devices run candle's ops.
//!
//! Every layer takes its weights through a `VarBuilder` whose names match
//! the PyTorch reference's `state_dict`, so checkpoints map one to one.

pub mod activation;
pub mod aggregate;
pub mod batch_norm;
pub mod batch_norm_train;
pub mod broadcast;
pub mod conv;
mod cpu_slice;
pub mod im2col;
pub mod pool;
pub mod reduce;
pub mod weight_matmul;

pub use activation::{add_relu, hard_swish, relu, swish};
pub use aggregate::graph_aggregate;
pub use batch_norm::BatchNorm;
pub use broadcast::{add_along, add_trailing};
pub use conv::{Pointwise, TemporalConv};
pub use im2col::{subsample_time, time_columns};
pub use pool::max_pool3_time;
pub use reduce::mean_keepdim;
pub use weight_matmul::weight_matmul;

/// `max |a - b|` over all elements: the layers' tests compare custom ops
/// with candle's own ops through it.
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .unwrap()
}

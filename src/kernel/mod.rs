//! CPU kernels for inference: a checked wrapper around the `gemm` crate's
//! strided matrix product, and the small dense loops that graph networks
//! spend the rest of their time in (per-channel joint aggregation, `tanh`,
//! im2col along time).
//!
//! Why: the candle graph of a CTR-GCN block is ~40 tensor ops, each
//! allocating its output and walking memory once; at batch 1 on a 2-core
//! CPU that overhead, not arithmetic, is most of the time (CANDLE-NOTES.md).
//! The kernels here let an inference plan ([`crate::model::ctrgcn::cpu`])
//! run a whole block in five matrix products and three fused loops over
//! buffers it owns.
//!
//! Every public function checks its slice bounds before touching memory,
//! so the `unsafe` inside stays behind a safe interface.

pub mod gemm;
pub mod simd;

pub use gemm::{matmul, MatMut, MatRef};

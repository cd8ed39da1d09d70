//! The interface every action encoder implements.

use candle_core::Tensor;

use super::Trace;
use crate::{Error, Result};

/// An action recognition network: skeleton windows in, class logits out.
///
/// Input `x: (N, C, T, V, M)` — batch, input channels (the model's streams
/// stacked), frames, joints, persons. Output `(N, K)` logits.
pub trait Encoder: Send + Sync {
    /// Forward pass recording named intermediate tensors into `trace`.
    /// `train` selects batch statistics in BN and enables dropout.
    fn forward_traced(&self, x: &Tensor, train: bool, trace: &mut Trace) -> Result<Tensor>;

    /// Forward pass without a trace.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_traced(x, train, &mut Trace::off())
    }

    /// Class logits `(N, K)` and the last block's feature map
    /// `(N*M, C_last, T', V)` from one forward pass, for objectives that
    /// pool body parts (GAP). Encoders that do not expose their feature
    /// map answer [`Error::Config`].
    fn forward_with_features(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let _ = (x, train);
        Err(Error::config(
            "method",
            "this encoder does not expose its last feature map",
        ))
    }

    /// The same network with every inference batch norm folded into the
    /// convolution before it (outputs change by rounding only).
    fn fold_batch_norm(&self) -> Result<Box<dyn Encoder>>;
}

//! Windows of poses and the input streams computed from them.
//!
//! The code here is shared by training and serving: a model directory names
//! its streams and temporal contract, and both the dataset pipeline and the
//! live runtime build model input through [`input::prepare`] and
//! [`input::to_input`] (normalization, frame selection) and
//! [`stream::compute`] (streams).

pub mod input;
pub mod stream;

pub use input::{model_input, prepare, to_input, PoseSeq, PrepareOptions, Prepared};
pub use stream::Stream;

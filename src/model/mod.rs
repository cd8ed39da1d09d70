//! Encoders and model directories.
//!
//! Each encoder is a folder named after the model (`ctrgcn/`, `stgcn/`,
//! `efficientgcn/`, `scdnet/`, ...) with its typed `Config` in `mod.rs` and its layers in
//! `model.rs`; weights are named as in the reference implementation's
//! `state_dict` so checkpoints map one to one.

pub mod builtin;
pub mod card;
pub mod ctrgcn;
pub mod directory;
pub mod efficientgcn;
pub mod encoder;
pub mod ensemble;
pub mod flops;
pub mod import;
pub mod layer;
pub mod quantize;
pub mod scdnet;
pub mod skeletonmae;
pub mod stgcn;
pub mod trace;

pub use card::ModelCard;
pub use directory::{LoadedModel, ModelDir};
pub use encoder::Encoder;
pub use ensemble::Ensemble;
pub use trace::Trace;

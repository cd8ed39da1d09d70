//! # skelact
//!
//! An embedded edge runtime that turns a depth camera's stream of human body
//! joints into recognized actions (falls, gestures, everyday activities), and
//! the workstation tooling that trains, evaluates and quantizes the models it
//! runs.
//!
//! ## Usage
//!
//! ```no_run
//! use skelact::skeleton::Layout;
//! let layout = Layout::ntu25();
//! assert_eq!(layout.num_joints(), 25);
//! ```
//!
//! ## Types
//!
//! - [`skeleton`]: skeleton layouts, defined once (joint names + parents);
//!   edges, bones, adjacency stacks, flips, body parts and mappings derive
//!   from them.
//! - [`model`]: the encoders (CTR-GCN, ST-GCN, EfficientGCN-B0) in candle,
//!   model directories (`model.toml` + `weights.safetensors`), BN folding.
//! - [`window`]: input streams (joint, bone, motion) computed from windows of
//!   poses — one code path for training and serving.
//! - [`source`]: dataset readers, and the live [`source::JointSource`]s
//!   (synthetic scene, dataset replay, recordings, UDP).
//! - [`lift`]: 3D joints from RGB-D: camera intrinsics and deprojection,
//!   robust depth at 2D landmarks, the MediaPipe-33 to model layout mapping.
//! - [`runtime`]: the live pipeline — tracker, windows, batched inference,
//!   decisions, sinks, latency histograms — behind
//!   [`runtime::Runtime::builder`].
//! - [`pose`]: 2D body landmarks from colour images (MediaPipe BlazePose's
//!   TFLite networks read and run in candle).
//! - [`board`]: board profiles (`boards/*.toml`).
//!
//! ## Performance
//!
//! Inference runs in candle on CPU (f32, f16 storage) or CUDA (feature
//! `cuda`). Convolutions along time are written as matrix products, batch
//! norm is folded into the preceding convolutions for inference.
#![warn(missing_docs)]

pub mod board;
pub mod error;
pub mod kernel;
pub mod lift;
pub mod model;
pub mod pose;
pub mod runtime;
pub mod skeleton;
pub mod source;
#[cfg(feature = "train")]
pub mod train;
pub mod window;

pub use error::{Error, Result};

//! Training (feature `train`): data sets and splits, augmentations, the
//! supervised trainer, evaluation and export.
//!
//! Training samples go through the same input path as serving
//! ([`crate::window::prepare`]): the trainer only chooses the frames at
//! random and plugs augmentations in between centering and scaling. A run
//! ends with a model directory whose card records the temporal contract,
//! normalization and provenance (command, data, split, seed, epochs, wall
//! time, measured accuracy).
//!
//! - [`data`]: NW-UCLA cross-view and UTD-MHAD cross-subject splits.
//! - [`augment`]: rotation, scale, shear, flip, temporal crop-resize.
//! - [`masking`]: SCD-Net's structure-guided spatial and tube temporal
//!   masks.
//! - [`optim`]: SGD with Nesterov momentum and AdamW, with selective weight
//!   decay; warm-up with step or cosine decay.
//! - [`loss`]: label-smoothed cross-entropy.
//! - [`ema`]: an exponential moving average of the weights, evaluated and
//!   exported instead of the last weights (`--ema`).
//! - [`metrics`]: top-1 / top-5, per-class accuracy, confusion matrix.
//! - [`distill`]: knowledge distillation from a fused ensemble of trained
//!   models into the one being trained (`--distill`).
//! - [`fusion`]: weighted score fusion of models that read different
//!   streams (CTR-GCN's four-stream ensemble).
//! - [`plot`]: PNG loss/accuracy curves and confusion heatmaps.
//! - [`backend`]: the training weight source (pre-BN biases frozen).
//! - [`config`]: a run's settings ([`TrainConfig`], [`Method`]) and the
//!   model card it trains.
//! - [`trainer`]: the loop, checkpoints, evaluation, export.
//! - [`history`]: the per-epoch records of `metrics.csv` and the plots drawn
//!   from them.
//! - [`gap`]: GAP's text descriptions, sentence encoder, part head and
//!   multi-part contrastive loss (`Method::Gap`).
//! - [`mmcl`]: MMCL co-learning with UTD-MHAD's depth video: depth
//!   pairing, depth encoder, NT-Xent alignment, teacher-feature refinement
//!   (`Method::Mmcl`).
//! - [`mae`]: SkeletonMAE's masked graph autoencoder pretraining; [`init`]
//!   loads its encoder before fine-tuning (`--arch skeletonmae --init`).
//! - [`scd`]: SCD-Net's dual-branch contrastive pretraining with momentum
//!   encoder and queues, linear evaluation and kNN retrieval; [`init`]
//!   loads its encoder (and reads its widths) before fine-tuning
//!   (`--arch scdnet --init`).

pub mod augment;
pub mod backend;
pub mod config;
pub mod data;
pub mod distill;
pub mod ema;
pub mod fusion;
pub mod gap;
pub mod history;
pub mod init;
pub mod loss;
pub mod mae;
pub mod masking;
pub mod metrics;
pub mod mmcl;
pub mod optim;
pub mod plot;
pub mod scd;
pub mod trainer;

pub use config::{Method, TrainConfig};
pub use data::{Benchmark, Split};
pub use trainer::{evaluate, evaluate_views, train, train_on, TrainOutcome};

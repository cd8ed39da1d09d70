//! Importers from published checkpoints into model directories.
//!
//! An imported model is a normal model directory: its card carries the
//! class names and the input preprocessing the authors used, so that the
//! runtime feeds it what it was trained on.

use std::path::Path;

use super::card::Provenance;
use super::{builtin, efficientgcn, ModelDir};
use crate::{Error, Result};

/// Imports the authors' EfficientGCN-B0 NTU-60 cross-subject checkpoint
/// (`2001_EfficientGCN-B0_ntu-xsub.pth.tar`) into `out`.
pub fn efficientgcn(checkpoint: &Path, out: &Path) -> Result<ModelDir> {
    let (config, weights) = efficientgcn::import_checkpoint(checkpoint)?;
    let mut card = builtin::card("efficientgcn-b0").ok_or_else(|| Error::Unknown {
        kind: "architecture",
        name: "efficientgcn-b0".into(),
    })??;
    card.name = "efficientgcn-b0-ntu60-xsub".into();
    card.description =
        "EfficientGCN-B0 (Song et al., TPAMI 2022) trained by the authors on NTU RGB+D 60 cross-subject; 60 daily, medical and mutual actions including falling down".into();
    card.architecture = super::card::Architecture::Efficientgcn(config);
    card.provenance = Provenance {
        command: format!("skelact import efficientgcn {}", checkpoint.display()),
        data: "NTU RGB+D 60 (Kinect v2, 40 subjects)".into(),
        split: "cross-subject".into(),
        seed: None,
        license: "MIT (EfficientGCNv1 authors)".into(),
        metrics: Default::default(),
        notes: "accuracy not measured by skelact (NTU RGB+D is not in the shared data); the authors' checkpoint records best_state.acc_top1 = 0.8986 on NTU-60 cross-subject".into(),
    };
    ModelDir::create(out, &card, &weights)
}

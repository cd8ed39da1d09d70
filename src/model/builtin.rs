//! Built-in architectures: the published configurations and the edge
//! variants, as model cards with fresh weights.
//!
//! `skelact inspect ctrgcn` prints what a published network costs without a
//! trained model; training (`--features train`) starts from these cards.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::card::{
    Architecture, InputSpec, ModelCard, Normalization, Precision, Provenance, Sampling,
    SkeletonSpec, TemporalContract,
};
use super::directory::{build_encoder, is_buffer, LoadedModel};
use super::{ctrgcn, efficientgcn, flops, stgcn};
use crate::skeleton::Layout;
use crate::window::Stream;
use crate::{Error, Result};

/// Names accepted by [`card`].
pub const NAMES: [&str; 5] = [
    "ctrgcn",
    "ctrgcn-edge",
    "stgcn",
    "stgcn-edge",
    "efficientgcn-b0",
];

fn ntu60_classes() -> Vec<String> {
    efficientgcn::classes::NTU60_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn ucla_classes() -> Vec<String> {
    crate::source::nwucla::CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A card for one of the [`NAMES`]: the published NTU-60 configurations
/// (64-frame windows, 2 persons, joint stream) and the NW-UCLA edge
/// variants (52 frames, 1 person). `None` for an unknown name.
pub fn card(name: &str) -> Option<Result<ModelCard>> {
    let make = |layout_name: &str,
                arch: Result<Architecture>,
                classes: Vec<String>,
                frames,
                persons,
                streams: Vec<Stream>,
                center: &str|
     -> Result<ModelCard> {
        let layout = Layout::by_name(layout_name)?;
        let mut arch = arch?;
        match &mut arch {
            Architecture::Ctrgcn(c) => c.num_person = persons,
            Architecture::Stgcn(c) => c.num_person = persons,
            Architecture::Efficientgcn(_) => {}
            Architecture::Skeletonmae(c) => c.backbone.num_person = persons,
            Architecture::Scdnet(c) => {
                c.num_person = persons;
                c.frames = frames;
            }
        }
        Ok(ModelCard {
            name: name.to_string(),
            description: format!("built-in {name} architecture"),
            precision: Precision::F32,
            skeleton: SkeletonSpec {
                layout: layout.name().to_string(),
                edge_hash: layout.edge_hash(),
            },
            input: InputSpec {
                streams,
                coords: 3,
                persons,
                center_joint: layout.joint_index(center)?,
                views: Vec::new(),
            },
            temporal: TemporalContract {
                frames,
                source_fps: 30.0,
                sampling: Sampling::Window,
            },
            normalization: Normalization::CenterFirstFrame,
            classes,
            architecture: arch,
            provenance: Provenance::default(),
        })
    };
    let card = match name {
        "ctrgcn" => make(
            "ntu25",
            ctrgcn::Config::published("ntu25", 60).map(Architecture::Ctrgcn),
            ntu60_classes(),
            64,
            2,
            vec![Stream::Joint],
            "spine_mid",
        ),
        "ctrgcn-edge" => make(
            "kinect20-ucla",
            ctrgcn::Config::edge("kinect20-ucla", 10).map(Architecture::Ctrgcn),
            ucla_classes(),
            52,
            1,
            vec![Stream::Joint],
            "spine",
        ),
        "stgcn" => make(
            "ntu25",
            stgcn::Config::published("ntu25", 60).map(Architecture::Stgcn),
            ntu60_classes(),
            64,
            2,
            vec![Stream::Joint],
            "spine_mid",
        ),
        "stgcn-edge" => make(
            "kinect20-ucla",
            stgcn::Config::edge("kinect20-ucla", 10).map(Architecture::Stgcn),
            ucla_classes(),
            52,
            1,
            vec![Stream::Joint],
            "spine",
        ),
        "efficientgcn-b0" => make(
            "ntu25",
            Ok(Architecture::Efficientgcn(efficientgcn::Config::default())),
            ntu60_classes(),
            288,
            2,
            vec![
                Stream::EfficientJoint,
                Stream::EfficientVelocity,
                Stream::EfficientBone,
            ],
            "spine_mid",
        )
        .map(|mut c| {
            c.temporal.sampling = Sampling::CropFirst;
            c.normalization = Normalization::None;
            c
        }),
        _ => return None,
    };
    Some(card)
}

/// The card's architecture with freshly initialised weights.
pub fn fresh(card: &ModelCard, device: &Device) -> Result<LoadedModel> {
    card.validate()?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let encoder = build_encoder(&card.architecture, vb)?;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::config("architecture", "weight map poisoned"))?;
    let num_params = data
        .iter()
        .filter(|(k, _)| !is_buffer(k))
        .map(|(_, v)| v.elem_count())
        .sum();
    Ok(LoadedModel {
        card: card.clone(),
        encoder,
        num_params,
    })
}

/// Multiply-accumulates of one forward pass over one window of the card's
/// contract (batch 1), counted by running a zero window.
pub fn macs_per_window(model: &LoadedModel, device: &Device) -> Result<u64> {
    let c = &model.card;
    let v = c.layout()?.num_joints();
    let x = Tensor::zeros(
        (1, c.input.channels(), c.temporal.frames, v, c.input.persons),
        DType::F32,
        device,
    )?;
    let (out, macs) = flops::measure(|| model.encoder.forward_t(&x, false));
    out?;
    Ok(macs)
}

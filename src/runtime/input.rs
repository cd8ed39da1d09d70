//! From track windows to the model's input tensor, through the one path
//! training uses ([`crate::window::input`]): the card's persons,
//! normalization and frame selection ([`prepare`](crate::window::prepare)),
//! then its streams ([`to_input`]).
//!
//! A full window holds the card's `T` frames, so frame selection is the
//! identity for every sampling policy; a short final window (a track that
//! ended early) is zero-padded or resampled exactly as the card says.

use candle_core::{Device, Tensor};

use super::tracker::TrackWindow;
use crate::model::ModelCard;
use crate::window::input::{prepare_views, to_input, PoseSeq, Prepared};
use crate::{Error, Result};

/// The model input `(N * max(1, views), C, T, V, M)` for a batch of track
/// windows, each window the first person of its sample.
pub fn window_tensor(
    windows: &[&TrackWindow],
    card: &ModelCard,
    device: &Device,
) -> Result<Tensor> {
    let prepared = prepare_windows(windows, card)?;
    let refs: Vec<_> = prepared.iter().collect();
    to_input(&refs, card, device)
}

/// The windows normalized and their frames selected as `card` says, before
/// streams are computed: what every model of an ensemble shares (the
/// members agree on everything [`prepare_views`] reads), so that each
/// member only computes its streams ([`to_input`]). A card with test-time
/// views gives each window once per view, views varying fastest
/// ([`crate::window::input::mean_probs`] averages them back).
pub fn prepare_windows(windows: &[&TrackWindow], card: &ModelCard) -> Result<Vec<Prepared>> {
    if windows.is_empty() {
        return Err(Error::config("batch", "needs at least one window"));
    }
    let mut prepared = Vec::with_capacity(windows.len());
    for w in windows {
        let n = w.frames * w.num_joints * 3;
        let joints = w.joints.get(..n).ok_or_else(|| {
            Error::shape(
                "track window",
                format!("({}, {}, 3)", w.frames, w.num_joints),
                &[w.joints.len()],
            )
        })?;
        let seq = PoseSeq::new(joints, w.frames, 1, w.num_joints)?;
        prepared.extend(prepare_views(seq, card, None, &card.input.views)?);
    }
    Ok(prepared)
}

//! Score fusion at inference: several models score the same window, each
//! from its own input stream, and a weighted sum of their class scores
//! decides.
//!
//! This is how the CTR-GCN family reports its best numbers (four models on
//! the joint, bone, joint-motion and bone-motion streams; CTR-GCN's
//! `ensemble.py` sums raw logits with weights 0.6, 0.6, 0.4, 0.4). Each
//! member keeps its own card, so each computes its own stream through the
//! one input path ([`crate::window::to_input`]); what the members must
//! share depends on the use:
//!
//! - scoring whole clips offline (`skelact eval A B …`): the classes and the
//!   skeleton layout ([`check_compatible`]);
//! - serving a live stream ([`Ensemble`]): also the temporal contract, the
//!   normalization and the persons per window ([`check_servable`]), because
//!   the tracker cuts one window per track for all of them.
//!
//! A single model is an ensemble of one with weight 1, so the runtime has
//! one inference path.

use candle_core::{DType, Tensor};

use super::{LoadedModel, ModelCard};
use crate::window::Stream;
use crate::{Error, Result};

/// CTR-GCN's weight for a model reading `streams`: 0.4 when every stream
/// is a motion stream, else 0.6.
pub fn default_weight(streams: &[Stream]) -> f64 {
    let motion = |s: &Stream| matches!(s, Stream::JointMotion | Stream::BoneMotion);
    if !streams.is_empty() && streams.iter().all(motion) {
        0.4
    } else {
        0.6
    }
}

/// The default weights of models reading `streams` (one entry per model):
/// CTR-GCN's per-stream weight ([`default_weight`]) shared equally by the
/// models that read the same streams, so that several seeds of one stream
/// count as one stream (their logits averaged) rather than outweighing the
/// others. One model per stream gives CTR-GCN's weights unchanged.
pub fn default_weights<'a>(streams: impl IntoIterator<Item = &'a [Stream]>) -> Vec<f64> {
    let streams: Vec<&[Stream]> = streams.into_iter().collect();
    streams
        .iter()
        .map(|s| {
            let alike = streams.iter().filter(|o| o == &s).count();
            default_weight(s) / alike as f64
        })
        .collect()
}

/// Checks that models can be fused on whole clips: the same classes in the
/// same order, the same skeleton layout.
pub fn check_compatible(cards: &[&ModelCard]) -> Result<()> {
    let Some(first) = cards.first() else {
        return Err(Error::config("fusion", "needs at least one model"));
    };
    for c in &cards[1..] {
        if c.classes != first.classes {
            return Err(Error::config(
                "fusion",
                format!("{} and {} have different classes", first.name, c.name),
            ));
        }
        if c.skeleton.layout != first.skeleton.layout {
            return Err(Error::config(
                "fusion",
                format!(
                    "{} reads {}, {} reads {}",
                    first.name, first.skeleton.layout, c.name, c.skeleton.layout
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that models can be fused on a live stream: [`check_compatible`],
/// and the same temporal contract, normalization and persons per window
/// (streams may differ).
pub fn check_servable(cards: &[&ModelCard]) -> Result<()> {
    check_compatible(cards)?;
    let first = cards[0];
    for c in &cards[1..] {
        let differs = |what: &str, a: String, b: String| {
            Error::mismatch(
                format!("ensemble: {what}"),
                format!("{a} (model {})", first.name),
                format!("{b} (model {})", c.name),
            )
        };
        if c.temporal != first.temporal {
            return Err(differs(
                "temporal contract",
                format!("{:?}", first.temporal),
                format!("{:?}", c.temporal),
            ));
        }
        if c.normalization != first.normalization {
            return Err(differs(
                "normalization",
                format!("{:?}", first.normalization),
                format!("{:?}", c.normalization),
            ));
        }
        if c.input.views != first.input.views {
            return Err(differs(
                "test-time views",
                format!("{:?}", first.input.views),
                format!("{:?}", c.input.views),
            ));
        }
        if (c.input.persons, c.input.center_joint)
            != (first.input.persons, first.input.center_joint)
        {
            return Err(differs(
                "persons / center joint",
                format!("{} / {}", first.input.persons, first.input.center_joint),
                format!("{} / {}", c.input.persons, c.input.center_joint),
            ));
        }
    }
    Ok(())
}

/// Checks fusion weights: one per model, each finite.
pub fn check_weights(weights: &[f64], models: usize) -> Result<()> {
    if weights.len() != models {
        return Err(Error::config(
            "fusion weights",
            format!("{} weights for {models} models", weights.len()),
        ));
    }
    if let Some(w) = weights.iter().find(|w| !w.is_finite()) {
        return Err(Error::config(
            "fusion weights",
            format!("{w} is not finite"),
        ));
    }
    Ok(())
}

/// Models served together on one stream, with their fusion weights.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<LoadedModel>,
    weights: Vec<f64>,
}

impl Ensemble {
    /// One model, weight 1.
    pub fn single(model: LoadedModel) -> Self {
        Self {
            members: vec![model],
            weights: vec![1.0],
        }
    }

    /// `members` fused with `weights` (default: [`default_weights`] of the
    /// members' streams; 1 for a single model). Refuses members that cannot
    /// share a stream ([`check_servable`]) and weights that are not finite
    /// or do not match the members.
    pub fn new(members: Vec<LoadedModel>, weights: Option<Vec<f64>>) -> Result<Self> {
        let cards: Vec<&ModelCard> = members.iter().map(|m| &m.card).collect();
        check_servable(&cards)?;
        let weights = match weights {
            Some(w) => w,
            None if members.len() == 1 => vec![1.0],
            None => default_weights(cards.iter().map(|c| c.input.streams.as_slice())),
        };
        check_weights(&weights, members.len())?;
        Ok(Self { members, weights })
    }

    /// The first member's card: the contract every member shares (layout,
    /// classes, window, normalization).
    pub fn card(&self) -> &ModelCard {
        &self.members[0].card
    }

    /// The members, in order.
    pub fn members(&self) -> &[LoadedModel] {
        &self.members
    }

    /// The fusion weights, in member order.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The members' names joined with ` + `.
    pub fn name(&self) -> String {
        let names: Vec<&str> = self.members.iter().map(|m| m.card.name.as_str()).collect();
        names.join(" + ")
    }

    /// Every member with its batch norms folded into the convolutions.
    pub fn fold_batch_norm(mut self) -> Result<Self> {
        for m in &mut self.members {
            m.encoder = m.encoder.fold_batch_norm()?;
        }
        Ok(self)
    }

    /// `sum_m weights[m] * logits_m`, in f32: `(N, classes)`. `input` gives
    /// the model input `(N, C, T, V, M)` for a member's card (its streams).
    /// A single model's logits are returned as they are (in f32).
    pub fn logits(&self, input: impl FnMut(&ModelCard) -> Result<Tensor>) -> Result<Tensor> {
        self.weighted_sum(&self.member_logits(input)?)
    }

    /// Each member's logits `(N, classes)` in f32, in member order, from
    /// the input `input` gives for its card.
    pub fn member_logits(
        &self,
        mut input: impl FnMut(&ModelCard) -> Result<Tensor>,
    ) -> Result<Vec<Tensor>> {
        self.members
            .iter()
            .map(|m| Ok(m.logits(&input(&m.card)?)?.to_dtype(DType::F32)?))
            .collect()
    }

    /// `sum_m weights[m] * logits[m]` of the members' logits
    /// ([`Self::member_logits`]); a single model's as they are. Refuses a
    /// slice that does not hold one tensor per member.
    pub fn weighted_sum(&self, logits: &[Tensor]) -> Result<Tensor> {
        if logits.len() != self.weights.len() {
            return Err(Error::config(
                "ensemble",
                format!("{} logits for {} members", logits.len(), self.weights.len()),
            ));
        }
        let mut sum: Option<Tensor> = None;
        for (l, &w) in logits.iter().zip(&self.weights) {
            let term = if self.members.len() == 1 && w == 1.0 {
                l.clone()
            } else {
                l.affine(w, 0.0)?
            };
            sum = Some(match sum {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        sum.ok_or_else(|| Error::config("ensemble", "has no models"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrgcn_weights() {
        assert_eq!(default_weight(&[Stream::Joint]), 0.6);
        assert_eq!(default_weight(&[Stream::Bone]), 0.6);
        assert_eq!(default_weight(&[Stream::JointMotion]), 0.4);
        assert_eq!(default_weight(&[Stream::BoneMotion]), 0.4);
        assert_eq!(default_weight(&[Stream::Joint, Stream::JointMotion]), 0.6);
    }

    #[test]
    fn models_of_one_stream_share_its_weight() {
        let (j, b, jm) = (
            &[Stream::Joint][..],
            &[Stream::Bone][..],
            &[Stream::JointMotion][..],
        );
        assert_eq!(default_weights([j, b, jm]), [0.6, 0.6, 0.4]);
        let w = default_weights([j, b, j, jm, j, j]);
        let want = [0.15, 0.6, 0.15, 0.4, 0.15, 0.15];
        assert!(
            w.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-12),
            "{w:?}"
        );
        assert_eq!(default_weights([jm, jm]), [0.2, 0.2]);
    }
}

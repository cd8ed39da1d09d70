//! SkeletonMAE's masking: which joints of a frame's graph are replaced by
//! the learnable mask token.
//!
//! The paper masks whole body regions (head, torso, each arm, each leg;
//! [`crate::skeleton::part::regions`]) and found one arm and one leg
//! together best, with random joint masking consistently worse. skelact
//! offers the three as [`MaskStrategy`]: the default draws the side of the
//! arm and the side of the leg independently for every graph (so every
//! limb is masked as often as its mirror), a fixed region list, and random
//! joints for the ablation.

use rand::Rng;

use crate::skeleton::part::{region_joints, Region};
use crate::skeleton::Layout;
use crate::{Error, Result};

/// How the joints to mask are chosen for each graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MaskStrategy {
    /// One arm and one leg, each side drawn at random (SkeletonMAE's best).
    #[default]
    ArmAndLeg,
    /// These regions, in every graph.
    Regions(Vec<Region>),
    /// This many joints drawn uniformly without replacement (the paper's
    /// weaker baseline).
    RandomJoints(usize),
}

impl MaskStrategy {
    /// Parses `arm-leg`, `regions:left_arm,right_leg` (region names as
    /// [`Region::name`]) or `random:N`.
    pub fn by_name(s: &str) -> Result<Self> {
        let bad = |why: String| Error::config("mask", why);
        if s == "arm-leg" {
            return Ok(MaskStrategy::ArmAndLeg);
        }
        if let Some(list) = s.strip_prefix("regions:") {
            let regions = list
                .split(',')
                .map(|name| {
                    Region::ALL
                        .iter()
                        .copied()
                        .find(|r| r.name() == name.trim())
                        .ok_or_else(|| {
                            bad(format!(
                                "unknown region `{name}` (head, torso, left_arm, right_arm, left_leg, right_leg)"
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(MaskStrategy::Regions(regions));
        }
        if let Some(n) = s.strip_prefix("random:") {
            let n = n.trim().parse().map_err(|e| bad(format!("`{s}`: {e}")))?;
            return Ok(MaskStrategy::RandomJoints(n));
        }
        Err(bad(format!(
            "`{s}`: expected arm-leg, regions:NAME,NAME or random:N"
        )))
    }

    /// The joints to mask in one graph, sorted.
    pub fn joints<R: Rng + ?Sized>(&self, layout: &Layout, rng: &mut R) -> Vec<usize> {
        let mut out = match self {
            MaskStrategy::ArmAndLeg => {
                let arm = if rng.random::<bool>() {
                    Region::LeftArm
                } else {
                    Region::RightArm
                };
                let leg = if rng.random::<bool>() {
                    Region::LeftLeg
                } else {
                    Region::RightLeg
                };
                let mut j = region_joints(layout, arm);
                j.extend(region_joints(layout, leg));
                j
            }
            MaskStrategy::Regions(rs) => {
                rs.iter().flat_map(|&r| region_joints(layout, r)).collect()
            }
            MaskStrategy::RandomJoints(n) => {
                let v = layout.num_joints();
                rand::seq::index::sample(rng, v, (*n).min(v)).into_vec()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A `(B, V)` mask, row-major (1 = masked), drawing each of `graphs`
/// graphs' joints with `strategy`.
pub fn mask_rows<R: Rng + ?Sized>(
    strategy: &MaskStrategy,
    layout: &Layout,
    graphs: usize,
    rng: &mut R,
) -> Vec<f32> {
    let v = layout.num_joints();
    let mut m = vec![0.0f32; graphs * v];
    for row in m.chunks_exact_mut(v) {
        for j in strategy.joints(layout, rng) {
            row[j] = 1.0;
        }
    }
    m
}

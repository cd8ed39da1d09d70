//! SCD-Net's two masking augmentations (Wu et al., Spatio-temporal Clues
//! Disentanglement Network, AAAI 2024; the authors' `feeder/augmentations.py`),
//! on model-ready coordinates `(T, M, V, 3)` — after
//! normalization and frame selection, as the reference masks its final
//! 64-frame input.
//!
//! - **Structure-guided spatial mask** ([`structure_guided_joints`]): take
//!   the undirected skeleton adjacency with self-loops (`I + inward +
//!   outward`), square it so that entry `(s, j)` counts the walks of length
//!   2 from `s` to `j` (a 2-hop neighbourhood weighted by connectivity), draw
//!   seed joints uniformly (with replacement, as `np.random.randint`), sum
//!   their rows, and zero the joints with the largest sums (SCD-Net: 5 seeds,
//!   8 of NTU's 25 joints) in every frame and person. Masked joints thus form
//!   connected patches around the seeds instead of scattered points.
//! - **Tube temporal mask** ([`tube_frames`]): cut the frames into
//!   consecutive tubes of a fixed length (SCD-Net: 16 tubes of 4 of its 64
//!   frames), draw tubes without replacement and zero every joint of their
//!   frames (SCD-Net: 6 of 16, a ratio of 0.375). When the frame count is not
//!   a multiple of the tube length the last tube is shorter; the number of
//!   masked tubes is `round(ratio * tubes)`.
//!
//! The graph comes from the layout ([`crate::skeleton::graph::undirected`]),
//! so the mask follows whichever skeleton the model uses. Every random
//! choice is drawn from the caller's RNG.

use rand::Rng;

use crate::skeleton::{graph, Layout};

/// `A^2` of the layout's undirected adjacency with self-loops, `V * V`
/// row-major: entry `(s, j)` is the number of walks of length 2 from `s` to
/// `j`.
pub fn two_hop_weights(layout: &Layout) -> Vec<f32> {
    let a = graph::undirected(layout, true);
    let v = a.v;
    let m = a.matrix(0);
    let mut out = vec![0.0f32; v * v];
    for i in 0..v {
        for k in 0..v {
            let aik = m[i * v + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..v {
                out[i * v + j] += aik * m[k * v + j];
            }
        }
    }
    out
}

/// The joints the structure-guided mask zeroes, sorted: `seeds` seed joints
/// drawn uniformly with replacement, and the `count` joints with the largest
/// summed [`two_hop_weights`] from those seeds. Ties go to the higher joint
/// index (what the reference's `argsort()[-count:]` picks under a stable
/// sort). `count` is capped at the number of joints.
pub fn structure_guided_joints<R: Rng + ?Sized>(
    layout: &Layout,
    seeds: usize,
    count: usize,
    rng: &mut R,
) -> Vec<usize> {
    let v = layout.num_joints();
    if v == 0 || count == 0 {
        return Vec::new();
    }
    let a2 = two_hop_weights(layout);
    let mut flag = vec![0.0f32; v];
    for _ in 0..seeds {
        let s = rng.random_range(0..v);
        for (f, w) in flag.iter_mut().zip(&a2[s * v..(s + 1) * v]) {
            *f += w;
        }
    }
    // Stable ascending order by weight; the last `count` are masked.
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| flag[a].total_cmp(&flag[b]));
    let mut chosen = order[v - count.min(v)..].to_vec();
    chosen.sort_unstable();
    chosen
}

/// The frames the tube mask zeroes, sorted: `frames` cut into tubes of
/// `tube` frames (the last one shorter when `tube` does not divide
/// `frames`), `round(ratio * tubes)` of them drawn without replacement.
pub fn tube_frames<R: Rng + ?Sized>(
    frames: usize,
    tube: usize,
    ratio: f32,
    rng: &mut R,
) -> Vec<usize> {
    let tube = tube.max(1);
    let tubes = frames.div_ceil(tube);
    let k = masked_tubes(tubes, ratio);
    if k == 0 {
        return Vec::new();
    }
    let mut picked = rand::seq::index::sample(rng, tubes, k).into_vec();
    picked.sort_unstable();
    picked
        .into_iter()
        .flat_map(|i| i * tube..((i + 1) * tube).min(frames))
        .collect()
}

/// How many of `tubes` tubes a ratio masks: `round(ratio * tubes)`, within
/// `[0, tubes]`.
pub fn masked_tubes(tubes: usize, ratio: f32) -> usize {
    ((ratio.clamp(0.0, 1.0) * tubes as f32).round() as usize).min(tubes)
}

/// Zeroes `joints` in every frame and person of `x: (T, M, V, 3)`.
pub fn zero_joints(x: &mut [f32], v: usize, joints: &[usize]) {
    for pose in x.chunks_exact_mut(v * 3) {
        for &j in joints {
            pose[j * 3..j * 3 + 3].fill(0.0);
        }
    }
}

/// Zeroes every value of `frames` in `x: (T, ...)` with `stride` values per
/// frame.
pub fn zero_frames(x: &mut [f32], stride: usize, frames: &[usize]) {
    for &f in frames {
        if let Some(frame) = x.get_mut(f * stride..(f + 1) * stride) {
            frame.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hop_weights_count_walks() {
        // NW-UCLA: joint 5 (left elbow) has neighbours 4 (shoulder) and 6
        // (wrist); walks of length 2 from 5 to 5: 5-5-5, 5-4-5, 5-6-5.
        let l = Layout::kinect20_ucla();
        let a2 = two_hop_weights(l);
        let v = l.num_joints();
        assert_eq!(a2[5 * v + 5], 3.0);
        // 5 to 7 (hand): 5-6-7 only.
        assert_eq!(a2[5 * v + 7], 1.0);
        // 5 to 0 (hip centre): more than two hops.
        assert_eq!(a2[5 * v], 0.0);
    }

    #[test]
    fn masked_tube_count_rounds() {
        assert_eq!(masked_tubes(16, 0.375), 6);
        assert_eq!(masked_tubes(13, 0.375), 5);
        assert_eq!(masked_tubes(4, 0.0), 0);
        assert_eq!(masked_tubes(4, 2.0), 4);
    }
}

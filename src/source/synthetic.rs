//! A synthetic demo scene: several people walking, waving, sitting, bending
//! and falling, generated procedurally — no files, no camera, no
//! randomness beyond a seeded jitter, so every run is the same.
//!
//! The skeleton is Kinect v1 (`kinect20-ucla` order), in the camera frame the
//! data sets use: x right, y up, z away from the camera, the floor at
//! `y = -FLOOR_DEPTH_M` below the camera. Each person follows a script of
//! activities (see [`Activity`]) shifted in time by their index, so that at
//! any moment people do different things; odd-numbered people leave the
//! field of view for a moment, so tracks end and new ones begin.

use super::live::{Frame, JointSource};
use crate::skeleton::Layout;
use crate::Result;

/// Height of the camera above the floor: the floor is at `y = -1.0` m.
pub const FLOOR_DEPTH_M: f32 = 1.0;

/// What a synthetic person does during one segment of their script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Standing still, breathing.
    Idle,
    /// Walking sideways across the view.
    Walk,
    /// Waving the right hand above the head.
    Wave,
    /// Sitting down, sitting, standing up.
    Sit,
    /// Bending down to pick something up and straightening again.
    Bend,
    /// Falling to the floor and lying there.
    Fall,
    /// Out of view (no pose reported).
    Away,
}

/// The script every person cycles through (activity, seconds).
pub const SCRIPT: [(Activity, f32); 8] = [
    (Activity::Walk, 4.0),
    (Activity::Wave, 3.0),
    (Activity::Sit, 5.0),
    (Activity::Idle, 2.0),
    (Activity::Bend, 3.0),
    (Activity::Away, 1.5),
    (Activity::Fall, 5.0),
    (Activity::Idle, 2.5),
];

/// The scene's frame rate.
pub const FPS: f32 = 30.0;

// kinect20-ucla joint order.
const HIP_C: usize = 0;
const SPINE: usize = 1;
const SHOULDER_C: usize = 2;
const HEAD: usize = 3;
const L_SHOULDER: usize = 4;
const L_ELBOW: usize = 5;
const L_WRIST: usize = 6;
const L_HAND: usize = 7;
const R_SHOULDER: usize = 8;
const R_ELBOW: usize = 9;
const R_WRIST: usize = 10;
const R_HAND: usize = 11;
const L_HIP: usize = 12;
const L_KNEE: usize = 13;
const L_ANKLE: usize = 14;
const L_FOOT: usize = 15;
const R_HIP: usize = 16;
const R_KNEE: usize = 17;
const R_ANKLE: usize = 18;
const R_FOOT: usize = 19;

/// Standing pose, body frame: metres above the floor (y), right of the
/// body centre (x), towards the camera negative (z).
const STAND: [[f32; 3]; 20] = [
    [0.0, 0.95, 0.0],    // hip centre
    [0.0, 1.20, 0.02],   // spine
    [0.0, 1.45, 0.0],    // shoulder centre
    [0.0, 1.65, 0.0],    // head
    [-0.18, 1.42, 0.0],  // left shoulder
    [-0.22, 1.15, 0.0],  // left elbow
    [-0.24, 0.90, 0.0],  // left wrist
    [-0.25, 0.82, 0.0],  // left hand
    [0.18, 1.42, 0.0],   // right shoulder
    [0.22, 1.15, 0.0],   // right elbow
    [0.24, 0.90, 0.0],   // right wrist
    [0.25, 0.82, 0.0],   // right hand
    [-0.10, 0.92, 0.0],  // left hip
    [-0.10, 0.50, 0.0],  // left knee
    [-0.10, 0.08, 0.0],  // left ankle
    [-0.10, 0.03, -0.1], // left foot
    [0.10, 0.92, 0.0],   // right hip
    [0.10, 0.50, 0.0],   // right knee
    [0.10, 0.08, 0.0],   // right ankle
    [0.10, 0.03, -0.1],  // right foot
];

/// The synthetic scene as a [`JointSource`].
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    people: usize,
    total_frames: u64,
    next: u64,
    seed: u64,
}

impl SyntheticSource {
    /// `people` people for `seconds` seconds (at [`FPS`]), jitter from
    /// `seed`.
    pub fn new(people: usize, seconds: f32, seed: u64) -> Self {
        Self {
            people,
            total_frames: (seconds.max(0.0) * FPS).round() as u64,
            next: 0,
            seed,
        }
    }

    /// The activity of person `p` at time `t` seconds, with the phase
    /// (0..1) inside it.
    pub fn activity_at(p: usize, t: f32) -> (Activity, f32) {
        let period: f32 = SCRIPT.iter().map(|s| s.1).sum();
        // Shift each person by a few segments so they do different things.
        let offset = (p as f32) * 7.3;
        let mut u = (t + offset).rem_euclid(period);
        for (a, d) in SCRIPT {
            if u < d {
                let a = if a == Activity::Away && p % 2 == 0 {
                    Activity::Idle
                } else {
                    a
                };
                return (a, u / d);
            }
            u -= d;
        }
        (Activity::Idle, 0.0)
    }

    /// Writes the joints of person `p` at time `t` into `out` (20 joints,
    /// camera frame). Returns false when the person is out of view.
    pub fn pose_at(p: usize, t: f32, out: &mut [[f32; 3]]) -> bool {
        let (act, ph) = Self::activity_at(p, t);
        if act == Activity::Away || out.len() < 20 {
            return false;
        }
        out[..20].copy_from_slice(&STAND);
        let tau = std::f32::consts::TAU;
        // breathing
        let b = 0.005 * (t * 1.7 + p as f32).sin();
        for j in [SPINE, SHOULDER_C, HEAD, L_SHOULDER, R_SHOULDER] {
            out[j][1] += b;
        }
        let mut x0 = -1.2 + 1.2 * p as f32;
        let z0 = 3.0 + 0.4 * (p % 3) as f32;
        let mut tilt = 0.0f32; // rotation about z (falling), radians
        match act {
            Activity::Idle | Activity::Away => {}
            Activity::Walk => {
                // walk 1.2 m to the right and back
                let s = (ph * tau).sin();
                x0 += 0.6 * s;
                let step = (ph * 4.0 * tau).sin();
                for (k, a) in [(L_KNEE, 0.5), (L_ANKLE, 1.0), (L_FOOT, 1.0)] {
                    out[k][2] += 0.25 * a * step;
                }
                for (k, a) in [(R_KNEE, 0.5), (R_ANKLE, 1.0), (R_FOOT, 1.0)] {
                    out[k][2] -= 0.25 * a * step;
                }
                for (k, a) in [(L_ELBOW, 0.5), (L_WRIST, 1.0), (L_HAND, 1.0)] {
                    out[k][2] -= 0.15 * a * step;
                }
                for (k, a) in [(R_ELBOW, 0.5), (R_WRIST, 1.0), (R_HAND, 1.0)] {
                    out[k][2] += 0.15 * a * step;
                }
                let bob = 0.02 * (ph * 8.0 * tau).sin().abs();
                for j in out.iter_mut().take(20) {
                    j[1] += bob;
                }
            }
            Activity::Wave => {
                let up = ramp(ph, 0.0, 0.15) * (1.0 - ramp(ph, 0.85, 1.0));
                let w = 0.15 * (ph * 6.0 * tau).sin();
                let raised = [
                    (R_ELBOW, [0.35, 1.55, 0.0]),
                    (R_WRIST, [0.35 + w, 1.85, 0.0]),
                    (R_HAND, [0.36 + w, 1.93, 0.0]),
                ];
                for (k, pos) in raised {
                    for a in 0..3 {
                        out[k][a] += up * (pos[a] - out[k][a]);
                    }
                }
            }
            Activity::Sit => {
                // down over 20 %, sit, up over the last 20 %
                let d = ramp(ph, 0.0, 0.2) * (1.0 - ramp(ph, 0.8, 1.0));
                let drop = 0.45 * d;
                for j in [
                    HIP_C, SPINE, SHOULDER_C, HEAD, L_SHOULDER, L_ELBOW, L_WRIST, L_HAND,
                    R_SHOULDER, R_ELBOW, R_WRIST, R_HAND, L_HIP, R_HIP,
                ] {
                    out[j][1] -= drop;
                }
                for k in [L_KNEE, R_KNEE] {
                    out[k][2] -= 0.4 * d;
                    out[k][1] -= 0.02 * d;
                }
                for j in [HIP_C, L_HIP, R_HIP] {
                    out[j][2] += 0.05 * d;
                }
            }
            Activity::Bend => {
                let d = (ph * std::f32::consts::PI).sin();
                // the upper body pivots forward about the hips
                let ang = 1.2 * d;
                let (s, c) = ang.sin_cos();
                let pivot = out[HIP_C];
                for j in [
                    SPINE, SHOULDER_C, HEAD, L_SHOULDER, L_ELBOW, L_WRIST, L_HAND, R_SHOULDER,
                    R_ELBOW, R_WRIST, R_HAND,
                ] {
                    let dy = out[j][1] - pivot[1];
                    let dz = out[j][2] - pivot[2];
                    out[j][1] = pivot[1] + dy * c + dz * s;
                    out[j][2] = pivot[2] - dy * s + dz * c;
                }
                for k in [L_KNEE, R_KNEE] {
                    out[k][2] -= 0.1 * d;
                }
                for j in [HIP_C, L_HIP, R_HIP] {
                    out[j][1] -= 0.1 * d;
                    out[j][2] += 0.1 * d;
                }
            }
            Activity::Fall => {
                // topple sideways over 0.15 of the segment, then lie still
                let f = ramp(ph, 0.0, 0.15);
                tilt = f * f * std::f32::consts::FRAC_PI_2 * 0.97;
            }
        }
        // rotate about the feet (z axis) and place in the camera frame
        let (s, c) = tilt.sin_cos();
        for j in out.iter_mut().take(20) {
            let (x, y) = (j[0], j[1]);
            let xr = x * c + y * s;
            let yr = -x * s + y * c + 0.03 * (tilt / std::f32::consts::FRAC_PI_2);
            j[0] = x0 + xr;
            j[1] = yr - FLOOR_DEPTH_M;
            j[2] += z0;
        }
        true
    }
}

/// 0 before `a`, 1 after `b`, linear in between.
fn ramp(x: f32, a: f32, b: f32) -> f32 {
    ((x - a) / (b - a)).clamp(0.0, 1.0)
}

/// A small deterministic hash to jitter joints (SplitMix64).
fn jitter(seed: u64, a: u64, b: u64, c: u64) -> f32 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(c.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

impl JointSource for SyntheticSource {
    fn layout(&self) -> &'static Layout {
        Layout::kinect20_ucla()
    }

    fn fps(&self) -> f32 {
        FPS
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool> {
        if self.next >= self.total_frames {
            return Ok(false);
        }
        let n = self.next;
        self.next += 1;
        if frame.layout.name() != self.layout().name() {
            frame.set_layout(self.layout());
        }
        frame.clear();
        frame.seq = n;
        frame.captured_at_ns = (n as f64 * 1e9 / FPS as f64) as u64;
        let t = n as f32 / FPS;
        for p in 0..self.people {
            if Self::activity_at(p, t).0 == Activity::Away {
                continue;
            }
            let pose = frame.push_pose();
            Self::pose_at(p, t, &mut pose.joints);
            for (j, xyz) in pose.joints.iter_mut().enumerate() {
                for (a, v) in xyz.iter_mut().enumerate() {
                    *v += 0.006 * jitter(self.seed, n, (p * 20 + j) as u64, a as u64);
                }
            }
        }
        Ok(true)
    }

    fn describe(&self) -> String {
        format!(
            "synthetic scene: {} people, {:.1} s at {FPS} fps",
            self.people,
            self.total_frames as f32 / FPS
        )
    }
}

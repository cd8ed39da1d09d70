//! From 2D landmarks and an aligned depth image to 3D joints in the layout
//! a model expects.
//!
//! Per landmark: the robust depth of [`super::DepthLookup`], deprojection
//! with the colour stream's intrinsics (the depth image must be aligned to
//! the colour image, as RealSense's `align` block makes it), and a
//! confidence = landmark visibility x depth validity. The 33 MediaPipe
//! points then go through the layout mapping of [`crate::skeleton::mapping`]
//! (MediaPipe-33 to NTU-25 or Kinect-20: hip centre = mean of the hips,
//! head = mean of the ears, ...), where a derived joint takes the lowest
//! confidence of its sources.
//!
//! Axes: RealSense points are x right, y down, z forward; skelact poses are
//! x right, y up, z away from the camera (Kinect's convention, which the
//! shipped models were trained on), so y changes sign. A landmark without
//! depth becomes a NaN joint with confidence 0. Lifted points lie on the
//! body's surface, a few centimetres in front of where a Kinect places the
//! joint centre.

use super::{DepthImage, DepthLookup, Intrinsics, Landmarks2d};
use crate::skeleton::mapping::{mapping, Mapping};
use crate::skeleton::Layout;
use crate::source::{Frame, Pose};
use crate::{Error, Result};

/// Lifts MediaPipe-33 landmarks to 3D joints of a target layout.
#[derive(Debug, Clone)]
pub struct Lifter {
    lookup: DepthLookup,
    mapping: Mapping,
    /// A person with fewer joints of positive confidence is left out.
    min_joints: usize,
    scratch: Vec<f32>,
    points: Vec<[f32; 3]>,
    confidence: Vec<f32>,
    skipped: u64,
}

impl Lifter {
    /// A lifter to `target` (any layout that MediaPipe-33 maps to:
    /// `ntu25`, `kinect20_ucla`, `kinect20_utd`, `coco17`, `mediapipe33`).
    pub fn new(target: &'static Layout, lookup: DepthLookup) -> Result<Self> {
        lookup.validate()?;
        let from = Layout::mediapipe33();
        let v = from.num_joints();
        Ok(Self {
            lookup,
            mapping: mapping(from, target)?,
            min_joints: 1,
            scratch: Vec::with_capacity((2 * lookup.radius_px + 1).pow(2)),
            points: vec![[0.0; 3]; v],
            confidence: vec![0.0; v],
            skipped: 0,
        })
    }

    /// Leaves out a person with fewer than `n` joints of positive
    /// confidence (default 1: only people without any depth are left out).
    pub fn with_min_joints(mut self, n: usize) -> Self {
        self.min_joints = n;
        self
    }

    /// The layout of the lifted poses.
    pub fn layout(&self) -> &'static Layout {
        self.mapping.to()
    }

    /// People left out so far for having too few joints with depth.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The MediaPipe-33 points (skelact axes, metres) and confidences of
    /// the last lifted person, before the layout mapping.
    pub fn landmarks_3d(&self) -> (&[[f32; 3]], &[f32]) {
        (&self.points, &self.confidence)
    }

    /// Lifts one person into `pose` (resized to the target layout).
    ///
    /// Errors when the landmark count is not 33, the depth image does not
    /// have the intrinsics' size, or the intrinsics are unusable; bad
    /// values inside (NaN pixels, landmarks outside the image, holes) give
    /// joints of confidence 0 instead.
    pub fn lift(
        &mut self,
        landmarks: &Landmarks2d,
        depth: &DepthImage,
        intrinsics: &Intrinsics,
        pose: &mut Pose,
    ) -> Result<()> {
        let v = self.points.len();
        if landmarks.pixels.len() != v || landmarks.visibility.len() != v {
            return Err(Error::shape(
                "MediaPipe landmarks (pixels, visibility)",
                format!("{v} and {v}"),
                &[landmarks.pixels.len(), landmarks.visibility.len()],
            ));
        }
        intrinsics.validate()?;
        if (depth.width(), depth.height()) != (intrinsics.width, intrinsics.height) {
            return Err(Error::mismatch(
                "depth image size (align depth to colour)",
                format!("{}x{}", intrinsics.width, intrinsics.height),
                format!("{}x{}", depth.width(), depth.height()),
            ));
        }
        for (j, (&px, &vis)) in landmarks
            .pixels
            .iter()
            .zip(&landmarks.visibility)
            .enumerate()
        {
            let vis = if vis.is_finite() {
                vis.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let s = self.lookup.sample(depth, px, &mut self.scratch);
            let c = vis * s.validity;
            if c > 0.0 {
                let [x, y, z] = intrinsics.deproject(px, s.depth_m);
                self.points[j] = [x, -y, z];
                self.confidence[j] = c;
            } else {
                self.points[j] = [f32::NAN; 3];
                self.confidence[j] = 0.0;
            }
        }
        let t = self.mapping.to().num_joints();
        pose.joints.resize(t, [0.0; 3]);
        pose.confidence.resize(t, 0.0);
        self.mapping.apply_with_confidence_into(
            &self.points,
            &self.confidence,
            &mut pose.joints,
            &mut pose.confidence,
        )?;
        for (p, c) in pose.joints.iter_mut().zip(&mut pose.confidence) {
            if !(*c > 0.0 && p.iter().all(|a| a.is_finite())) {
                *p = [f32::NAN; 3];
                *c = 0.0;
            }
        }
        Ok(())
    }

    /// Replaces the people of `frame` (whose layout must be this lifter's)
    /// with the lifted `people`; returns how many were kept.
    pub fn lift_frame(
        &mut self,
        people: &[Landmarks2d],
        depth: &DepthImage,
        intrinsics: &Intrinsics,
        frame: &mut Frame,
    ) -> Result<usize> {
        if frame.layout != self.layout() {
            return Err(Error::mismatch(
                "frame layout",
                self.layout().name(),
                frame.layout.name(),
            ));
        }
        frame.clear();
        for lm in people {
            let pose = frame.push_pose();
            self.lift(lm, depth, intrinsics, pose)?;
            let seen = pose.confidence.iter().filter(|&&c| c > 0.0).count();
            if seen < self.min_joints.max(1) {
                frame.people.pop();
                self.skipped += 1;
            }
        }
        Ok(frame.people.len())
    }
}

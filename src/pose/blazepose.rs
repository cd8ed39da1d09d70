//! MediaPipe BlazePose (detector + full landmark model) on one RGB image
//! stream: 33 body landmarks of one person per frame, in image pixels.
//!
//! The pipeline is MediaPipe's `pose_landmark_cpu` graph (mediapipe
//! 0.10.21, `model_complexity=1`, smoothing off):
//!
//! 1. Without a tracked ROI: the detector on the image letterboxed into
//!    224x224 (values in [-1, 1]); SSD decoding, weighted NMS, the best
//!    detection; ROI centred on its hip keypoint, side twice the distance to
//!    its full-body scale keypoint, rotated so that keypoint is up, squared
//!    and scaled by 1.25.
//! 2. The ROI warped to 256x256 (values in [0, 1]); the landmark model:
//!    39 landmarks (33 + 6 auxiliary) x (x, y, z, visibility, presence
//!    logits), a pose-presence score, a 64x64x39 heatmap.
//! 3. Presence below 0.5: no pose; the next frame detects again.
//! 4. Landmarks refined from the heatmap (score-weighted mean position in a
//!    9x9 window where the peak sigmoid reaches 0.5), projected through the
//!    ROI into pixels; visibility is the sigmoid of its logit.
//! 5. Tracking: the next frame's ROI comes from the auxiliary landmarks 33
//!    (hip centre) and 34 (scale point) the same way, and the detector is
//!    skipped while the pose stays present.

use std::path::Path;

use candle_core::Device;

use super::anchor::{self, Anchor, DETECTOR_INPUT, NUM_ANCHORS};
use super::interpreter::Interpreter;
use super::roi::{warp, Border, CropSpec, Roi};
use super::tflite::Model;
use crate::{Error, Result};

/// File name of the detector inside a model folder.
pub const DETECTOR_FILE: &str = "pose_detection.tflite";
/// File name of the full landmark model inside a model folder.
pub const LANDMARK_FILE: &str = "pose_landmark_full.tflite";
/// Side of the landmark model's square input, pixels.
pub const LANDMARK_INPUT: usize = 256;
/// The detector's input: the letterboxed image, zeros outside, in [-1, 1].
pub const DETECTOR_CROP: CropSpec = CropSpec {
    side: DETECTOR_INPUT,
    border: Border::Zero,
    range: [-1.0, 1.0],
};
/// The landmark model's input: the ROI, edges replicated, in [0, 1].
pub const LANDMARK_CROP: CropSpec = CropSpec {
    side: LANDMARK_INPUT,
    border: Border::Replicate,
    range: [0.0, 1.0],
};
/// Landmarks reported (MediaPipe's BlazePose-33 topology).
pub const NUM_LANDMARKS: usize = 33;
/// Landmarks the network predicts (33 + 6 auxiliary).
const NUM_RAW_LANDMARKS: usize = 39;
/// Detector score threshold (`min_detection_confidence`).
pub const MIN_DETECTION_SCORE: f32 = 0.5;
/// Pose-presence threshold (`min_tracking_confidence`).
pub const MIN_PRESENCE: f32 = 0.5;
/// NMS IoU threshold.
const NMS_IOU: f32 = 0.3;
/// ROI margin around the alignment square.
const ROI_SCALE: f32 = 1.25;
/// Heatmap refinement window and confidence. MediaPipe's graph source shows
/// a 7x7 window; the 0.10.21 wheel matches a 9x9 one (landmark positions
/// within 0.06 px of MediaPipe's with 9, up to 3 px off with 7).
const REFINE_KERNEL: usize = 9;
const REFINE_MIN_CONFIDENCE: f32 = 0.5;

/// One person's landmarks in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PoseLandmarks {
    /// 33 landmarks, image pixel coordinates (x right, y down).
    pub pixels: Vec<[f32; 2]>,
    /// Depth relative to the hips, in the same scale as x (pixels), smaller
    /// is nearer the camera.
    pub z: Vec<f32>,
    /// Per landmark, probability that it is visible (not occluded).
    pub visibility: Vec<f32>,
    /// Probability that a pose is present in the ROI.
    pub presence: f32,
}

/// Time spent in each stage of the last [`BlazePose::estimate`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Detector, pre- and post-processing included; 0 when tracking.
    pub detector_ms: f64,
    /// Landmark model, pre- and post-processing included.
    pub landmark_ms: f64,
}

/// The two networks and the tracking state.
pub struct BlazePose {
    detector: Interpreter,
    landmark: Interpreter,
    anchors: Vec<Anchor>,
    /// ROI for the next frame, from the last frame's landmarks.
    tracked: Option<Roi>,
    last_times: StageTimes,
}

/// The raw outputs of the landmark model for one ROI.
#[derive(Debug, Clone)]
pub struct LandmarkOutput {
    /// (39, 5): x, y, z in input pixels, visibility and presence logits.
    pub landmarks: Vec<f32>,
    /// Pose presence score.
    pub flag: f32,
    /// (64, 64, 39) heatmap logits.
    pub heatmap: Vec<f32>,
    /// Heatmap side.
    pub heatmap_side: usize,
}

impl BlazePose {
    /// Loads `pose_detection.tflite` and `pose_landmark_full.tflite` from
    /// `dir` (see `.ci/fetch-blazepose.sh`).
    pub fn load(dir: &Path) -> Result<Self> {
        let device = Device::Cpu;
        let detector = Interpreter::new(&Model::load(&dir.join(DETECTOR_FILE))?, &device)?;
        let landmark = Interpreter::new(&Model::load(&dir.join(LANDMARK_FILE))?, &device)?;
        if detector.input_shape(0) != Some(&[1, DETECTOR_INPUT, DETECTOR_INPUT, 3][..]) {
            return Err(Error::mismatch(
                "pose detector input",
                "[1, 224, 224, 3]",
                format!("{:?}", detector.input_shape(0)),
            ));
        }
        if landmark.input_shape(0) != Some(&[1, LANDMARK_INPUT, LANDMARK_INPUT, 3][..]) {
            return Err(Error::mismatch(
                "pose landmark input",
                "[1, 256, 256, 3]",
                format!("{:?}", landmark.input_shape(0)),
            ));
        }
        Ok(Self {
            detector,
            landmark,
            anchors: anchor::pose_anchors(),
            tracked: None,
            last_times: StageTimes::default(),
        })
    }

    /// The detector network (for parity tests and benchmarks).
    pub fn detector(&self) -> &Interpreter {
        &self.detector
    }

    /// The landmark network (for parity tests and benchmarks).
    pub fn landmark_model(&self) -> &Interpreter {
        &self.landmark
    }

    /// Stage times of the last [`estimate`](Self::estimate).
    pub fn last_times(&self) -> StageTimes {
        self.last_times
    }

    /// Forgets the tracked ROI: the next frame runs the detector.
    pub fn reset(&mut self) {
        self.tracked = None;
    }

    /// Landmarks of (at most) one person in an RGB8 interleaved image.
    /// Empty when no pose is found. Uses the ROI tracked from the previous
    /// call when there is one.
    pub fn estimate(
        &mut self,
        rgb: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<PoseLandmarks>> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(Error::shape(
                "RGB8 image",
                format!("{width}x{height}x3 bytes"),
                &[rgb.len()],
            ));
        }
        self.last_times = StageTimes::default();
        let roi = match self.tracked.take() {
            Some(r) => r,
            None => {
                let t = std::time::Instant::now();
                let roi = self.detect(rgb, width, height)?;
                self.last_times.detector_ms = t.elapsed().as_secs_f64() * 1e3;
                match roi {
                    Some(r) => r,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let t = std::time::Instant::now();
        let result = self.landmarks_in(rgb, width, height, &roi)?;
        self.last_times.landmark_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok(match result {
            Some((pose, next)) => {
                self.tracked = Some(next);
                vec![pose]
            }
            None => Vec::new(),
        })
    }

    /// The detector's ROI for the best pose in the image, if any.
    pub fn detect(&self, rgb: &[u8], width: usize, height: usize) -> Result<Option<Roi>> {
        let (square, _) = Roi::full_image(width, height).letterbox();
        let input = warp(rgb, width, height, &square, &DETECTOR_CROP);
        let mut out = self.detector.run_slices(&[&input])?;
        let (boxes, scores) = match out.as_mut_slice() {
            [b, s] => (std::mem::take(b), std::mem::take(s)),
            _ => {
                return Err(Error::shape(
                    "pose detector outputs",
                    "2 tensors",
                    &[out.len()],
                ))
            }
        };
        if boxes.len() != NUM_ANCHORS * 12 || scores.len() != NUM_ANCHORS {
            return Err(Error::shape(
                "pose detector boxes",
                "[1, 2254, 12]",
                &[boxes.len()],
            ));
        }
        let dets = anchor::weighted_nms(
            anchor::decode(&boxes, &scores, &self.anchors, MIN_DETECTION_SCORE),
            NMS_IOU,
        );
        Ok(dets.first().map(|d| {
            let hip = square.project(d.keypoints[0][0], d.keypoints[0][1]);
            let scale = square.project(d.keypoints[1][0], d.keypoints[1][1]);
            Roi::from_alignment(hip, scale, ROI_SCALE)
        }))
    }

    /// Runs the landmark model on one ROI (raw outputs).
    pub fn landmark_raw(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        roi: &Roi,
    ) -> Result<LandmarkOutput> {
        let input = warp(rgb, width, height, roi, &LANDMARK_CROP);
        let mut out = self.landmark.run_slices(&[&input])?;
        if out.len() != 5 {
            return Err(Error::shape(
                "pose landmark outputs",
                "5 tensors",
                &[out.len()],
            ));
        }
        let landmarks = std::mem::take(&mut out[0]);
        let flag = std::mem::take(&mut out[1]);
        let heatmap_side = self
            .landmark
            .output_shape(3)
            .and_then(|s| s.get(1).copied())
            .unwrap_or(0);
        let heatmap = std::mem::take(&mut out[3]);
        if landmarks.len() != NUM_RAW_LANDMARKS * 5
            || flag.len() != 1
            || heatmap.len() != heatmap_side * heatmap_side * NUM_RAW_LANDMARKS
        {
            return Err(Error::shape(
                "pose landmarks",
                "[1, 195]",
                &[landmarks.len()],
            ));
        }
        Ok(LandmarkOutput {
            landmarks,
            flag: flag[0],
            heatmap,
            heatmap_side,
        })
    }

    /// Landmarks in `roi`, and the ROI they imply for the next frame;
    /// `None` when the pose is not present.
    fn landmarks_in(
        &self,
        rgb: &[u8],
        width: usize,
        height: usize,
        roi: &Roi,
    ) -> Result<Option<(PoseLandmarks, Roi)>> {
        let raw = self.landmark_raw(rgb, width, height, roi)?;
        if raw.flag < MIN_PRESENCE {
            return Ok(None);
        }
        let s = LANDMARK_INPUT as f32;
        let mut norm: Vec<[f32; 2]> = raw
            .landmarks
            .chunks_exact(5)
            .map(|l| [l[0] / s, l[1] / s])
            .collect();
        refine_from_heatmap(&mut norm, &raw.heatmap, raw.heatmap_side);
        let pixels: Vec<[f32; 2]> = norm.iter().map(|p| roi.project(p[0], p[1])).collect();
        let pose = PoseLandmarks {
            pixels: pixels[..NUM_LANDMARKS].to_vec(),
            z: raw
                .landmarks
                .chunks_exact(5)
                .take(NUM_LANDMARKS)
                .map(|l| l[2] / s * roi.width)
                .collect(),
            visibility: raw
                .landmarks
                .chunks_exact(5)
                .take(NUM_LANDMARKS)
                .map(|l| sigmoid(l[3]))
                .collect(),
            presence: raw.flag,
        };
        let next = Roi::from_alignment(pixels[33], pixels[34], ROI_SCALE);
        Ok(Some((pose, next)))
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// MediaPipe's `RefineLandmarksFromHeatmapCalculator`: each landmark
/// (normalized ROI coordinates) moves to the sigmoid-weighted mean cell of
/// the heatmap window around it, when the window's peak reaches 0.5.
fn refine_from_heatmap(lms: &mut [[f32; 2]], heatmap: &[f32], side: usize) {
    // heatmap: (side, side, 39)
    let channels = lms.len();
    let off = (REFINE_KERNEL - 1) / 2;
    for (k, lm) in lms.iter_mut().enumerate() {
        let col = (lm[0] * side as f32) as i64;
        let row = (lm[1] * side as f32) as i64;
        if col < 0 || row < 0 || col >= side as i64 || row >= side as i64 {
            continue;
        }
        let (col, row) = (col as usize, row as usize);
        let (mut sum, mut wc, mut wr, mut peak) = (0f32, 0f32, 0f32, 0f32);
        for r in row.saturating_sub(off)..(row + off + 1).min(side) {
            for c in col.saturating_sub(off)..(col + off + 1).min(side) {
                let conf = sigmoid(heatmap[(r * side + c) * channels + k]);
                sum += conf;
                peak = peak.max(conf);
                wc += c as f32 * conf;
                wr += r as f32 * conf;
            }
        }
        if peak >= REFINE_MIN_CONFIDENCE && sum > 0.0 {
            lm[0] = wc / side as f32 / sum;
            lm[1] = wr / side as f32 / sum;
        }
    }
}

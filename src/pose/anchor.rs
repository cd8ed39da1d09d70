//! BlazePose detector post-processing: SSD anchors, box and keypoint
//! decoding, and weighted non-maximum suppression.
//!
//! Follows MediaPipe's `pose_detection_cpu.pbtxt` (mediapipe 0.10.21):
//! `SsdAnchorsCalculator` (5 layers, strides 8/16/32/32/32, scales
//! 0.1484375..0.75, one aspect ratio plus the interpolated one, fixed
//! anchor size: 2254 anchors for 224x224), `TensorsToDetectionsCalculator`
//! (12 coordinates per box in x-first order, scales 224, sigmoid scores
//! clipped at ±100) and `NonMaxSuppressionCalculator` (WEIGHTED, IoU 0.3).

/// One anchor: its centre in normalized input coordinates (fixed size 1x1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Centre x in [0, 1].
    pub x: f32,
    /// Centre y in [0, 1].
    pub y: f32,
}

/// Side of the detector's square input, pixels.
pub const DETECTOR_INPUT: usize = 224;
/// Number of anchors (rows of the detector's outputs).
pub const NUM_ANCHORS: usize = 2254;
/// Keypoints per detection: hip centre, full-body size/rotation point,
/// shoulder centre, upper-body size/rotation point.
pub const NUM_KEYPOINTS: usize = 4;

/// MediaPipe's `SsdAnchorsCalculator` with the pose detector's options.
pub fn pose_anchors() -> Vec<Anchor> {
    let strides = [8usize, 16, 32, 32, 32];
    let num_layers = strides.len();
    let mut anchors = Vec::with_capacity(NUM_ANCHORS);
    let mut layer = 0;
    while layer < num_layers {
        // Anchors per cell: for each layer sharing this stride, one for the
        // aspect ratio 1.0 and one interpolated (also ratio 1.0); with a
        // fixed anchor size only their count matters.
        let mut per_cell = 0;
        let mut last = layer;
        while last < num_layers && strides[last] == strides[layer] {
            per_cell += 2;
            last += 1;
        }
        let fm = DETECTOR_INPUT.div_ceil(strides[layer]);
        for y in 0..fm {
            for x in 0..fm {
                for _ in 0..per_cell {
                    anchors.push(Anchor {
                        x: (x as f32 + 0.5) / fm as f32,
                        y: (y as f32 + 0.5) / fm as f32,
                    });
                }
            }
        }
        layer = last;
    }
    anchors
}

/// A decoded detection in normalized detector-input coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Sigmoid score.
    pub score: f32,
    /// Box as (xmin, ymin, xmax, ymax).
    pub bbox: [f32; 4],
    /// The four keypoints, (x, y).
    pub keypoints: [[f32; 2]; NUM_KEYPOINTS],
}

/// Decodes the detector's outputs (`boxes`: anchors x 12, `scores`:
/// anchors) into the detections scoring at least `min_score`.
pub fn decode(boxes: &[f32], scores: &[f32], anchors: &[Anchor], min_score: f32) -> Vec<Detection> {
    let scale = DETECTOR_INPUT as f32;
    let mut out = Vec::new();
    for (i, ((raw, &logit), a)) in boxes.chunks_exact(12).zip(scores).zip(anchors).enumerate() {
        let _ = i;
        let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
        if score < min_score {
            continue;
        }
        let xc = raw[0] / scale + a.x;
        let yc = raw[1] / scale + a.y;
        let w = raw[2] / scale;
        let h = raw[3] / scale;
        let mut keypoints = [[0.0; 2]; NUM_KEYPOINTS];
        for (k, kp) in keypoints.iter_mut().enumerate() {
            *kp = [raw[4 + 2 * k] / scale + a.x, raw[5 + 2 * k] / scale + a.y];
        }
        out.push(Detection {
            score,
            bbox: [xc - w / 2.0, yc - h / 2.0, xc + w / 2.0, yc + h / 2.0],
            keypoints,
        });
    }
    out
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// MediaPipe's weighted non-maximum suppression: the best remaining
/// detection absorbs every detection overlapping it by more than
/// `threshold` IoU, its box and keypoints becoming their score-weighted
/// mean; its score stays its own. Highest score first.
pub fn weighted_nms(mut dets: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while !dets.is_empty() {
        let top = dets[0].clone();
        let (cands, rest): (Vec<Detection>, Vec<Detection>) = dets
            .into_iter()
            .partition(|d| iou(&d.bbox, &top.bbox) > threshold);
        let mut merged = top.clone();
        let total: f32 = cands.iter().map(|d| d.score).sum();
        if !cands.is_empty() && total > 0.0 {
            let mut bbox = [0.0f32; 4];
            let mut kps = [[0.0f32; 2]; NUM_KEYPOINTS];
            for d in &cands {
                for (m, v) in bbox.iter_mut().zip(d.bbox) {
                    *m += v * d.score;
                }
                for (m, v) in kps.iter_mut().zip(d.keypoints) {
                    m[0] += v[0] * d.score;
                    m[1] += v[1] * d.score;
                }
            }
            merged.bbox = bbox.map(|v| v / total);
            merged.keypoints = kps.map(|[x, y]| [x / total, y / total]);
        }
        out.push(merged);
        dets = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_count_and_grid() {
        let a = pose_anchors();
        assert_eq!(a.len(), NUM_ANCHORS);
        // First cell of the stride-8 grid (28x28), two anchors.
        assert_eq!(
            a[0],
            Anchor {
                x: 0.5 / 28.0,
                y: 0.5 / 28.0
            }
        );
        assert_eq!(a[1], a[0]);
        // Last anchor: last cell of the 7x7 grid.
        assert_eq!(
            a[NUM_ANCHORS - 1],
            Anchor {
                x: 6.5 / 7.0,
                y: 6.5 / 7.0
            }
        );
        // Stride-16 block starts after 28*28*2.
        assert_eq!(
            a[1568],
            Anchor {
                x: 0.5 / 14.0,
                y: 0.5 / 14.0
            }
        );
    }

    #[test]
    fn nms_merges_overlaps_by_score() {
        let d = |s: f32, x: f32| Detection {
            score: s,
            bbox: [x, 0.0, x + 1.0, 1.0],
            keypoints: [[x, 0.0]; 4],
        };
        let out = weighted_nms(vec![d(0.6, 0.1), d(0.9, 0.0), d(0.8, 5.0)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        let x = (0.9 * 0.0 + 0.6 * 0.1) / 1.5;
        assert!((out[0].bbox[0] - x).abs() < 1e-6);
        assert_eq!(out[1].bbox[0], 5.0);
    }
}

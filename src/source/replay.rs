//! Dataset clips replayed as one live stream, the way a camera sees a day:
//! clip after clip at the recorded frame rate, with idle gaps (frames with
//! nobody in view) between them.
//!
//! Timestamps advance at the clips' frame rate; the runtime decides whether
//! to pace them in real time. [`ReplaySource::segments`] tells where each
//! clip lies in stream time, so that decisions can be scored against the
//! clips' labels.

use std::path::Path;

use super::clip::Clip;
use super::live::{Frame, JointSource};
use crate::skeleton::Layout;
use crate::{Error, Result};

/// Where one clip lies in the replayed stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The clip's name.
    pub name: String,
    /// Its class, 0-based into the data set's class list.
    pub label: usize,
    /// Capture time of its first frame.
    pub start_ns: u64,
    /// Capture time of its last frame.
    pub end_ns: u64,
}

/// Clips replayed one after another with idle gaps.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    clips: Vec<Clip>,
    layout: &'static Layout,
    fps: f32,
    gap_frames: usize,
    clip: usize,
    frame_in_clip: usize,
    gap_left: usize,
    seq: u64,
    segments: Vec<Segment>,
}

impl ReplaySource {
    /// Replays `clips` (all of one layout and frame rate) with `gap_s`
    /// seconds of empty frames before each clip.
    pub fn new(clips: Vec<Clip>, gap_s: f32) -> Result<Self> {
        let Some(first) = clips.first() else {
            return Err(Error::config("replay", "no clips to replay"));
        };
        let layout = Layout::by_name(first.layout)?;
        let fps = first.fps;
        if !(fps > 0.0 && fps.is_finite()) {
            return Err(Error::config(
                "replay fps",
                format!("{fps} is not positive"),
            ));
        }
        for c in &clips {
            if c.layout != first.layout || c.fps != fps {
                return Err(Error::mismatch(
                    format!("clip {}", c.name),
                    format!("{} at {fps} fps", first.layout),
                    format!("{} at {} fps", c.layout, c.fps),
                ));
            }
            c.validate()?;
        }
        let gap_frames = (gap_s.max(0.0) * fps).round() as usize;
        let mut segments = Vec::with_capacity(clips.len());
        let mut n = 0u64;
        let ns = |n: u64| (n as f64 * 1e9 / fps as f64) as u64;
        for c in &clips {
            n += gap_frames as u64;
            segments.push(Segment {
                name: c.name.clone(),
                label: c.label,
                start_ns: ns(n),
                end_ns: ns(n + c.num_frames as u64 - 1),
            });
            n += c.num_frames as u64;
        }
        Ok(Self {
            clips,
            layout,
            fps,
            gap_frames,
            clip: 0,
            frame_in_clip: 0,
            gap_left: gap_frames,
            seq: 0,
            segments,
        })
    }

    /// NW-UCLA clips of `dir` (`all_sqe`) seen from camera `view` (1..3;
    /// `None` for all), at most `limit`, in file order.
    pub fn nwucla(dir: &Path, view: Option<u32>, limit: usize, gap_s: f32) -> Result<Self> {
        let mut clips = Vec::new();
        for path in super::nwucla::list(dir)? {
            if clips.len() >= limit {
                break;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let meta = super::nwucla::parse_name(name);
            if let (Some(v), Some(m)) = (view, meta) {
                if m.camera != Some(v) {
                    continue;
                }
            }
            clips.push(super::nwucla::read_clip(&path)?);
        }
        Self::new(clips, gap_s)
    }

    /// UTD-MHAD skeleton clips of `dir`, at most `limit`; with `subjects`,
    /// only clips of those performers (the cross-subject test split is
    /// subjects 2, 4, 6, 8).
    pub fn utd(dir: &Path, subjects: Option<&[u32]>, limit: usize, gap_s: f32) -> Result<Self> {
        Self::new(utd_clips(dir, subjects, limit)?, gap_s)
    }

    /// NTU RGB+D `.skeleton` files of `dir` (two bodies selected by motion
    /// energy, as the reader does), at most `limit`, in file order.
    pub fn ntu(dir: &Path, limit: usize, gap_s: f32) -> Result<Self> {
        let mut clips = Vec::new();
        for path in super::list_files(dir, |n| n.ends_with(".skeleton"))? {
            if clips.len() >= limit {
                break;
            }
            clips.push(super::ntu::read_clip(&path)?);
        }
        Self::new(clips, gap_s)
    }

    /// Where each clip lies in stream time.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Total frames of the stream, gaps included.
    pub fn total_frames(&self) -> u64 {
        self.clips
            .iter()
            .map(|c| (c.num_frames + self.gap_frames) as u64)
            .sum()
    }
}

impl JointSource for ReplaySource {
    fn layout(&self) -> &'static Layout {
        self.layout
    }

    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool> {
        if self.clip >= self.clips.len() {
            return Ok(false);
        }
        if frame.layout.name() != self.layout.name() {
            frame.set_layout(self.layout);
        }
        frame.clear();
        frame.seq = self.seq;
        frame.captured_at_ns = (self.seq as f64 * 1e9 / self.fps as f64) as u64;
        self.seq += 1;
        if self.gap_left > 0 {
            self.gap_left -= 1;
            return Ok(true);
        }
        let c = &self.clips[self.clip];
        let t = self.frame_in_clip;
        let v = c.num_joints;
        for m in 0..c.num_persons {
            let base = (t * c.num_persons + m) * v * 3;
            let src = &c.joints[base..base + v * 3];
            if src.iter().all(|&a| a == 0.0) {
                continue;
            }
            let pose = frame.push_pose();
            for (dst, xyz) in pose.joints.iter_mut().zip(src.chunks_exact(3)) {
                dst.copy_from_slice(xyz);
            }
        }
        self.frame_in_clip += 1;
        if self.frame_in_clip >= c.num_frames {
            self.clip += 1;
            self.frame_in_clip = 0;
            self.gap_left = self.gap_frames;
        }
        Ok(true)
    }

    fn describe(&self) -> String {
        format!(
            "replay: {} clips ({}), {} frames at {} fps",
            self.clips.len(),
            self.layout.name(),
            self.total_frames(),
            self.fps
        )
    }
}

/// The UTD-MHAD skeleton clips [`ReplaySource::utd`] replays, in file
/// order: at most `limit`, of `subjects` when given.
pub fn utd_clips(dir: &Path, subjects: Option<&[u32]>, limit: usize) -> Result<Vec<Clip>> {
    let mut clips = Vec::new();
    for path in super::utd::list(dir, super::utd::Modality::Skeleton)? {
        if clips.len() >= limit {
            break;
        }
        let clip = super::utd::read_skeleton(&path)?;
        if subjects.is_none_or(|s| clip.meta.subject.is_some_and(|x| s.contains(&x))) {
            clips.push(clip);
        }
    }
    Ok(clips)
}

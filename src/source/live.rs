//! Live streams of poses: [`Frame`], [`Pose`] and the [`JointSource`] trait
//! every input of the runtime implements (synthetic scene, dataset replay,
//! recordings, UDP).
//!
//! A source fills a caller-owned [`Frame`] in place, so that a frame (and
//! the poses inside it) can be recycled: at steady state reading a frame
//! allocates nothing. Timestamps are sensor time (`captured_at_ns`), kept
//! apart from processing time, which the runtime measures itself (the
//! copper-rs habit).

use crate::skeleton::Layout;
use crate::Result;

/// One person's joints in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Pose {
    /// Joint positions in metres, camera frame (x right, y up, z away from
    /// the camera), one `[x, y, z]` per joint of the frame's layout. A
    /// missing joint is NaN or has confidence 0.
    pub joints: Vec<[f32; 3]>,
    /// Per-joint confidence in `[0, 1]`; 0 marks a joint the tracker did
    /// not see.
    pub confidence: Vec<f32>,
}

impl Pose {
    /// A pose of `v` joints at the origin with confidence 1.
    pub fn new(v: usize) -> Self {
        Self {
            joints: vec![[0.0; 3]; v],
            confidence: vec![1.0; v],
        }
    }

    /// Whether joint `j` was seen: finite coordinates and a positive
    /// confidence.
    pub fn joint_valid(&self, j: usize) -> bool {
        match (self.joints.get(j), self.confidence.get(j)) {
            (Some(p), Some(&c)) => c > 0.0 && p.iter().all(|a| a.is_finite()),
            _ => false,
        }
    }
}

/// Everything a sensor reports at one instant.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Sensor time of capture, nanoseconds on the source's own clock.
    pub captured_at_ns: u64,
    /// Frame counter of the source, increasing by one per frame read.
    pub seq: u64,
    /// The joint layout of every pose in the frame.
    pub layout: &'static Layout,
    /// The people in view.
    pub people: Vec<Pose>,
    /// Poses kept for reuse by [`Frame::push_pose`].
    spare: Vec<Pose>,
}

impl Frame {
    /// An empty frame for `layout`, with room for `max_people` poses
    /// allocated up front.
    pub fn new(layout: &'static Layout, max_people: usize) -> Self {
        let v = layout.num_joints();
        Self {
            captured_at_ns: 0,
            seq: 0,
            layout,
            people: Vec::with_capacity(max_people),
            spare: (0..max_people).map(|_| Pose::new(v)).collect(),
        }
    }

    /// Removes every pose, keeping their memory for [`Frame::push_pose`].
    pub fn clear(&mut self) {
        while let Some(p) = self.people.pop() {
            self.spare.push(p);
        }
    }

    /// Adds a pose (reusing a spare one when there is one) and returns it
    /// for filling; its joints are the layout's count, values unspecified,
    /// confidences 1.
    pub fn push_pose(&mut self) -> &mut Pose {
        let v = self.layout.num_joints();
        let mut p = self.spare.pop().unwrap_or_else(|| Pose::new(v));
        p.joints.resize(v, [0.0; 3]);
        p.confidence.resize(v, 1.0);
        p.confidence.iter_mut().for_each(|c| *c = 1.0);
        self.people.push(p);
        let last = self.people.len() - 1;
        &mut self.people[last]
    }

    /// Changes the layout (clearing the frame).
    pub fn set_layout(&mut self, layout: &'static Layout) {
        self.clear();
        if layout.num_joints() != self.layout.num_joints() {
            let v = layout.num_joints();
            for p in &mut self.spare {
                p.joints.resize(v, [0.0; 3]);
                p.confidence.resize(v, 1.0);
            }
        }
        self.layout = layout;
    }
}

/// A stream of frames: a camera, a file replayed as if live, a network
/// socket.
pub trait JointSource: Send {
    /// The joint layout of the poses this source produces.
    fn layout(&self) -> &'static Layout;

    /// Nominal frame rate in Hz.
    fn fps(&self) -> f32;

    /// Fills `frame` with the next frame. `Ok(false)` means the stream has
    /// ended; an error means it cannot go on. A source that waits for data
    /// (network) returns within about 100 ms with `Ok(true)` and an empty,
    /// unchanged-seq frame marked by [`Frame::seq`] equal to `u64::MAX`
    /// when nothing arrived, so that the runtime can notice a shutdown.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool>;

    /// Frames this source discarded itself (malformed datagrams, corrupt
    /// records), for the drop counters.
    fn dropped(&self) -> u64 {
        0
    }

    /// A short description for logs (`synthetic: 3 people`, ...).
    fn describe(&self) -> String;

    /// Time spent on the last frame before it was handed over, for sources
    /// that capture images and find poses in them (RealSense); `None` for
    /// sources that read joints.
    fn stage_times(&self) -> Option<StageTimes> {
        None
    }
}

/// Per-frame time of an image source's stages before the runtime sees the
/// frame (the runtime's latency report shows them as `capture` and `pose`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Waiting for the camera's frameset, aligning and copying it, ns.
    pub capture_ns: u64,
    /// 2D landmark detection and lifting to 3D joints, ns.
    pub pose_ns: u64,
}

/// The `seq` a source sets on a frame that carries nothing because no data
/// arrived in time (see [`JointSource::next_frame`]).
pub const NO_FRAME: u64 = u64::MAX;

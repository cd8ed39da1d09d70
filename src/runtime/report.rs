//! What a run measured: frames, windows and events counted, every drop by
//! where it happened, and each stage's latency summary; printed as a table
//! at the end of `skelact run` or as one JSON object.

use std::fmt;

use serde::Serialize;

use super::latency::Summary;

/// Drops counted during a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Discarded by the source itself (malformed datagrams, corrupt records).
    pub source: u64,
    /// Frames pushed out of the full source → tracker queue.
    pub frames: u64,
    /// Windows pushed out of the full tracker → inference queue.
    pub windows: u64,
    /// Scores pushed out of the full inference → decision queue.
    pub scores: u64,
    /// Poses with too few valid joints.
    pub invalid_poses: u64,
    /// Poses beyond the most people tracked.
    pub over_capacity: u64,
}

impl Drops {
    /// Frames, windows or scores lost to backpressure.
    pub fn queue_total(&self) -> u64 {
        self.frames + self.windows + self.scores
    }
}

/// Latency of each stage and end to end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latencies {
    /// Frame entering the pipeline → tracker done with it.
    pub tracker: Summary,
    /// Window queued → its scores computed (queueing + batched forward).
    pub inference: Summary,
    /// Scores queued → decisions made and sinks called.
    pub decision: Summary,
    /// Newest frame of a window entering the pipeline → decision.
    pub end_to_end: Summary,
    /// Forward pass per batch.
    pub forward: Summary,
    /// Sources that capture images (RealSense): waiting for a frame,
    /// aligning and copying it, before it enters the pipeline (count 0 for
    /// joint sources).
    pub capture: Summary,
    /// Sources that capture images: 2D landmarks and lifting to 3D joints,
    /// before the frame enters the pipeline (count 0 for joint sources).
    pub pose: Summary,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The source.
    pub source: String,
    /// The model name.
    pub model: String,
    /// The board profile.
    pub board: String,
    /// Frames read.
    pub frames: u64,
    /// Tracks started.
    pub tracks: u64,
    /// Windows scored.
    pub windows: u64,
    /// Batches run.
    pub batches: u64,
    /// Events emitted (scores included when asked for).
    pub events: u64,
    /// Drops.
    pub drops: Drops,
    /// Latencies.
    pub latency: Latencies,
    /// Wall-clock duration of the run, s.
    pub wall_s: f64,
    /// Sensor time covered, s.
    pub stream_s: f64,
    /// Compute the model needs on the board, GMAC/s (when checked).
    pub needed_gmacs: Option<f64>,
    /// Whether the run was stopped by the stop flag.
    pub stopped: bool,
}

impl Report {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "source {} | model {} | board {}",
            self.source, self.model, self.board
        )?;
        writeln!(
            f,
            "frames {}  tracks {}  windows {}  batches {}  events {}  stream {:.1} s  wall {:.1} s",
            self.frames,
            self.tracks,
            self.windows,
            self.batches,
            self.events,
            self.stream_s,
            self.wall_s
        )?;
        let d = &self.drops;
        writeln!(
            f,
            "drops: frames {}  windows {}  scores {}  source {}  invalid poses {}  over capacity {}",
            d.frames, d.windows, d.scores, d.source, d.invalid_poses, d.over_capacity
        )?;
        writeln!(f, "latency (ms)      count      p50      p99      max")?;
        let l = &self.latency;
        for (name, s) in [("capture", &l.capture), ("pose", &l.pose)] {
            if s.count > 0 {
                writeln!(
                    f,
                    "{name:<16} {:>6} {:>8.2} {:>8.2} {:>8.2}",
                    s.count, s.p50_ms, s.p99_ms, s.max_ms
                )?;
            }
        }
        for (name, s) in [
            ("tracker", &l.tracker),
            ("inference", &l.inference),
            ("  forward/batch", &l.forward),
            ("decision", &l.decision),
            ("end-to-end", &l.end_to_end),
        ] {
            writeln!(
                f,
                "{name:<16} {:>6} {:>8.2} {:>8.2} {:>8.2}",
                s.count, s.p50_ms, s.p99_ms, s.max_ms
            )?;
        }
        Ok(())
    }
}

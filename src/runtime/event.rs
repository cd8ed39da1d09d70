//! What the runtime reports: [`Event`]s, one JSON object each in the JSON
//! Lines sink.

use serde::Serialize;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An action became the track's current action (smoothed score above
    /// the enter threshold).
    ActionStart,
    /// The track's current action ended (score below the exit threshold, or
    /// the track ended).
    ActionEnd,
    /// A gesture class was recognized (at most once per refractory period).
    Gesture,
    /// The fall rule fired: a fall, then the person stayed low.
    Fall,
    /// Scores of one window (only when asked for).
    Scores,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The person's track id.
    pub track: u64,
    /// Class name (the model card's), or the rule's name.
    pub label: String,
    /// Class index into the card's classes (`None` for rules without one).
    pub class: Option<usize>,
    /// Smoothed score of the class at the time of the event.
    pub confidence: f32,
    /// Capture time the action started (first frame of the window that
    /// started it).
    pub start_ns: u64,
    /// Capture time of the newest frame behind the event.
    pub end_ns: u64,
    /// From the newest frame entering the pipeline to this event, ms.
    pub latency_ms: f64,
    /// Per-class probabilities of the window ([`EventKind::Scores`] only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<f32>>,
}

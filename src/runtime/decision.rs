//! Decisions: from per-window class scores to events a user acts on.
//!
//! - **Smoothing**: per track, an exponential moving average of the class
//!   probabilities (`ema = alpha * p + (1 - alpha) * ema`).
//! - **Hysteresis**: a class becomes the track's action when its smoothed
//!   score reaches `enter`, and stops being it when the score falls below
//!   `exit` (< `enter`), so a score hovering at a threshold does not
//!   flicker. Start and end are events.
//! - **Gestures**: classes listed in `gestures` also raise a `gesture` event
//!   when they start, at most once per `refractory_s` per track.
//! - **Fall**: a fall-like class (any name in `fall_classes`, compared
//!   case-insensitively, e.g. NTU-60's "falling down") reaching
//!   `fall_enter`, and then the person's hip staying within `low_hip_m`
//!   of the floor (see [`super::tracker`]) for `fall_low_s` seconds.
//!   Bending down or sitting keeps the hip well above the floor and raises
//!   nothing. For a model without a fall-like class, `pose_only_fall`
//!   replaces the class with a fast descent: the hip went from upright
//!   (above `high_hip_m`) to low within `fall_descent_s`. One fall event
//!   per episode: the person must be upright again before another.

use std::collections::HashMap;

use super::event::{Event, EventKind};
use super::tracker::TrackWindow;

/// Decision settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionConfig {
    /// EMA weight of the newest window, in (0, 1].
    pub alpha: f32,
    /// Smoothed score at which a class starts.
    pub enter: f32,
    /// Smoothed score below which it ends.
    pub exit: f32,
    /// Classes that are gestures.
    pub gestures: Vec<String>,
    /// Seconds between two gesture events of one track.
    pub refractory_s: f32,
    /// Names of fall-like classes.
    pub fall_classes: Vec<String>,
    /// Smoothed score of a fall-like class that counts as evidence.
    pub fall_enter: f32,
    /// Seconds the person must stay low after the fall.
    pub fall_low_s: f32,
    /// Seconds after the fall-like evidence within which the person must
    /// be found low.
    pub fall_window_s: f32,
    /// Use a fast descent as evidence when the model has no fall-like
    /// class.
    pub pose_only_fall: bool,
    /// Longest upright-to-low descent (s) that counts as a fall.
    pub fall_descent_s: f32,
    /// Also emit every window's scores.
    pub emit_scores: bool,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            enter: 0.6,
            exit: 0.4,
            gestures: vec!["wave".into(), "hand waving".into(), "clapping".into()],
            refractory_s: 2.0,
            fall_classes: vec!["falling down".into(), "falling".into(), "fall".into()],
            fall_enter: 0.5,
            fall_low_s: 2.0,
            fall_window_s: 10.0,
            pose_only_fall: true,
            fall_descent_s: 1.5,
            emit_scores: false,
        }
    }
}

#[derive(Debug, Clone)]
struct TrackState {
    ema: Vec<f32>,
    active: Option<(usize, u64)>,
    last_gesture_ns: Option<u64>,
    fall_evidence_ns: Option<u64>,
    fall_raised: bool,
    last_ns: u64,
}

/// The decision stage's state.
#[derive(Debug)]
pub struct Decisions {
    cfg: DecisionConfig,
    classes: Vec<String>,
    gesture: Vec<bool>,
    fall_like: Vec<bool>,
    tracks: HashMap<u64, TrackState>,
}

impl Decisions {
    /// Decisions for a model with `classes`.
    pub fn new(cfg: DecisionConfig, classes: &[String]) -> Self {
        let has = |list: &[String], c: &str| list.iter().any(|g| g.eq_ignore_ascii_case(c));
        Self {
            gesture: classes.iter().map(|c| has(&cfg.gestures, c)).collect(),
            fall_like: classes.iter().map(|c| has(&cfg.fall_classes, c)).collect(),
            classes: classes.to_vec(),
            cfg,
            tracks: HashMap::new(),
        }
    }

    /// Whether the model has a fall-like class.
    pub fn has_fall_class(&self) -> bool {
        self.fall_like.iter().any(|&f| f)
    }

    /// Takes the probabilities `probs` of window `w`; pushes events into
    /// `out`. `latency_ms` is stamped on the events.
    pub fn update(
        &mut self,
        w: &TrackWindow,
        probs: &[f32],
        latency_ms: f64,
        out: &mut Vec<Event>,
    ) {
        if w.frames == 0 {
            // end marker: the track is gone
            if let Some(st) = self.tracks.remove(&w.track) {
                if let Some((a, start)) = st.active {
                    out.push(Event {
                        kind: EventKind::ActionEnd,
                        track: w.track,
                        label: self.classes[a].clone(),
                        class: Some(a),
                        confidence: st.ema[a],
                        start_ns: start,
                        end_ns: st.last_ns.max(start),
                        latency_ms,
                        scores: None,
                    });
                }
            }
            return;
        }
        let k = self.classes.len().min(probs.len());
        let cfg = &self.cfg;
        let st = self.tracks.entry(w.track).or_insert_with(|| TrackState {
            ema: probs[..k].to_vec(),
            active: None,
            last_gesture_ns: None,
            fall_evidence_ns: None,
            fall_raised: false,
            last_ns: 0,
        });
        st.last_ns = w.captured_at_ns;
        for (e, &p) in st.ema.iter_mut().zip(probs) {
            *e = cfg.alpha * p + (1.0 - cfg.alpha) * *e;
        }
        let event = |kind, class: Option<usize>, label: &str, conf: f32, start_ns| Event {
            kind,
            track: w.track,
            label: label.to_string(),
            class,
            confidence: conf,
            start_ns,
            end_ns: w.captured_at_ns,
            latency_ms,
            scores: None,
        };
        if cfg.emit_scores {
            let mut e = event(
                EventKind::Scores,
                None,
                "scores",
                0.0,
                w.first_captured_at_ns,
            );
            e.scores = Some(probs[..k].to_vec());
            out.push(e);
        }
        // hysteresis
        if let Some((a, start)) = st.active {
            if st.ema[a] < cfg.exit || w.last {
                out.push(event(
                    EventKind::ActionEnd,
                    Some(a),
                    &self.classes[a],
                    st.ema[a],
                    start,
                ));
                st.active = None;
            }
        }
        if st.active.is_none() && !w.last {
            let (top, score) = argmax(&st.ema);
            if score >= cfg.enter && k > 0 {
                st.active = Some((top, w.first_captured_at_ns));
                out.push(event(
                    EventKind::ActionStart,
                    Some(top),
                    &self.classes[top],
                    score,
                    w.first_captured_at_ns,
                ));
                if self.gesture[top] {
                    let ok = st.last_gesture_ns.is_none_or(|t| {
                        w.captured_at_ns.saturating_sub(t) as f64 >= cfg.refractory_s as f64 * 1e9
                    });
                    if ok {
                        st.last_gesture_ns = Some(w.captured_at_ns);
                        out.push(event(
                            EventKind::Gesture,
                            Some(top),
                            &self.classes[top],
                            score,
                            w.first_captured_at_ns,
                        ));
                    }
                }
            }
        } else if w.last {
            // a short final window still gets a verdict
            let (top, score) = argmax(&st.ema);
            if score >= cfg.enter && k > 0 && st.active.is_none() {
                out.push(event(
                    EventKind::ActionStart,
                    Some(top),
                    &self.classes[top],
                    score,
                    w.first_captured_at_ns,
                ));
                out.push(event(
                    EventKind::ActionEnd,
                    Some(top),
                    &self.classes[top],
                    score,
                    w.first_captured_at_ns,
                ));
            }
        }
        // fall rule
        let has_fall_class = self.fall_like.iter().any(|&f| f);
        let class_evidence = self
            .fall_like
            .iter()
            .zip(&st.ema)
            .any(|(&f, &s)| f && s >= cfg.fall_enter);
        if class_evidence {
            st.fall_evidence_ns = Some(w.captured_at_ns);
        }
        if !has_fall_class && cfg.pose_only_fall {
            if let (Some(low), Some(high)) = (w.low_since_ns, w.last_high_ns) {
                if low >= high && ((low - high) as f64) <= cfg.fall_descent_s as f64 * 1e9 {
                    st.fall_evidence_ns.get_or_insert(low);
                }
            }
        }
        match w.low_since_ns {
            None => {
                st.fall_raised = false;
                if w.hip_height_m.is_finite() && !class_evidence {
                    st.fall_evidence_ns = None;
                }
            }
            Some(low) => {
                let low_for = w.captured_at_ns.saturating_sub(low) as f64 / 1e9;
                let recent = st.fall_evidence_ns.is_some_and(|t| {
                    w.captured_at_ns.saturating_sub(t) as f64 <= cfg.fall_window_s as f64 * 1e9
                });
                if recent && low_for >= cfg.fall_low_s as f64 && !st.fall_raised {
                    st.fall_raised = true;
                    let conf = self
                        .fall_like
                        .iter()
                        .zip(&st.ema)
                        .filter(|(&f, _)| f)
                        .map(|(_, &s)| s)
                        .fold(if has_fall_class { 0.0 } else { 1.0 }, f32::max);
                    let start = st.fall_evidence_ns.unwrap_or(low).min(low);
                    out.push(event(EventKind::Fall, None, "fall", conf, start));
                }
            }
        }
        if w.last {
            self.tracks.remove(&w.track);
        }
    }

    /// Ends every open action (end of stream).
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let mut ids: Vec<u64> = self.tracks.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(st) = self.tracks.remove(&id) {
                if let Some((a, start)) = st.active {
                    out.push(Event {
                        kind: EventKind::ActionEnd,
                        track: id,
                        label: self.classes[a].clone(),
                        class: Some(a),
                        confidence: st.ema[a],
                        start_ns: start,
                        end_ns: st.last_ns.max(start),
                        latency_ms: 0.0,
                        scores: None,
                    });
                }
            }
        }
    }
}

/// Index and value of the largest score (the first on ties; `(0, f32::MIN)`
/// for an empty slice).
fn argmax(scores: &[f32]) -> (usize, f32) {
    scores
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &s)| if s > b.1 { (i, s) } else { b })
}

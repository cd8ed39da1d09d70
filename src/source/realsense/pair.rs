//! Colour frames paired with the depth frame nearest in time.
//!
//! The pose stage runs on colour, so a recording gives one frameset per
//! colour frame: each colour frame waits for the first depth frame at or
//! after its timestamp and takes whichever of that one and the depth frame
//! before it is nearer (the earlier on a tie). A pair further apart than
//! `max_gap_ms` (one colour frame period) is not made: the colour frame is
//! counted as unpaired. The result depends only on the file's frames and
//! their order, never on thread timing — unlike the SDK pipeline's
//! aggregator, which keeps the latest frame of each stream and, with an
//! output queue of one, drops whichever frameset was not read in time.

use std::collections::VecDeque;

use crate::Result;

/// A frame handle that can give out another reference to the same frame.
pub(crate) trait Share: Sized {
    /// Another reference to the same frame.
    fn share(&self) -> Result<Self>;
}

/// Pairs colour frames with depth frames as they are read (see the module
/// docs); frames are pushed in file order, pairs popped as `(depth,
/// colour)`.
pub(crate) struct Pairer<F> {
    /// The depth frame before `last_depth`.
    prev_depth: Option<(F, f64)>,
    last_depth: Option<(F, f64)>,
    /// Colour frames newer than every depth frame so far, oldest first.
    waiting: VecDeque<(F, f64)>,
    ready: VecDeque<(F, F)>,
    max_gap_ms: f64,
    unpaired: u64,
}

impl<F: Share> Pairer<F> {
    /// A pairer that makes no pair further apart than `max_gap_ms`.
    pub(crate) fn new(max_gap_ms: f64) -> Self {
        Self {
            prev_depth: None,
            last_depth: None,
            waiting: VecDeque::new(),
            ready: VecDeque::new(),
            max_gap_ms,
            unpaired: 0,
        }
    }

    /// A depth frame with its timestamp, ms.
    pub(crate) fn depth(&mut self, frame: F, t_ms: f64) -> Result<()> {
        while let Some((c, tc)) = self.waiting.pop_front() {
            let prev_nearer = self
                .last_depth
                .as_ref()
                .is_some_and(|(_, tp)| (tc - tp).abs() <= (t_ms - tc).abs());
            if prev_nearer {
                self.with_last(c, tc)?;
            } else {
                self.make(frame.share()?, t_ms, c, tc);
            }
        }
        self.prev_depth = self.last_depth.replace((frame, t_ms));
        Ok(())
    }

    /// A colour frame with its timestamp, ms.
    pub(crate) fn color(&mut self, frame: F, t_ms: f64) -> Result<()> {
        // A colour frame waiting for more than the gap before this one can
        // only pair with a depth frame already read (frames come in about
        // time order): pair it now instead of holding it.
        while self
            .waiting
            .front()
            .is_some_and(|(_, tw)| t_ms - tw > self.max_gap_ms)
        {
            if let Some((c, tc)) = self.waiting.pop_front() {
                self.with_last(c, tc)?;
            }
        }
        let Some((_, tl)) = &self.last_depth else {
            self.waiting.push_back((frame, t_ms));
            return Ok(());
        };
        if *tl < t_ms {
            self.waiting.push_back((frame, t_ms));
            return Ok(());
        }
        // Read after a depth frame past it: the nearer of the last two.
        let prev = match &self.prev_depth {
            Some((d, tp)) if (t_ms - tp).abs() <= (tl - t_ms).abs() => Some((d.share()?, *tp)),
            _ => None,
        };
        match prev {
            Some((d, tp)) => self.make(d, tp, frame, t_ms),
            None => self.with_last(frame, t_ms)?,
        }
        Ok(())
    }

    /// The end of the stream: colour frames still waiting pair with the
    /// last depth frame.
    pub(crate) fn finish(&mut self) -> Result<()> {
        while let Some((c, tc)) = self.waiting.pop_front() {
            self.with_last(c, tc)?;
        }
        Ok(())
    }

    /// Starts over for a stream whose timestamps start again (a looped
    /// file): frames held are released, the unpaired count is kept.
    pub(crate) fn restart(&mut self) {
        self.prev_depth = None;
        self.last_depth = None;
        self.waiting.clear();
        self.ready.clear();
    }

    /// The next pair, `(depth, colour)`.
    pub(crate) fn pop(&mut self) -> Option<(F, F)> {
        self.ready.pop_front()
    }

    /// Colour frames that got no depth frame within the gap (over every
    /// restart).
    pub(crate) fn unpaired(&self) -> u64 {
        self.unpaired
    }

    fn with_last(&mut self, c: F, tc: f64) -> Result<()> {
        match &self.last_depth {
            Some((d, td)) => {
                let (d, td) = (d.share()?, *td);
                self.make(d, td, c, tc);
            }
            None => self.unpaired += 1,
        }
        Ok(())
    }

    fn make(&mut self, d: F, td: f64, c: F, tc: f64) {
        if (td - tc).abs() <= self.max_gap_ms {
            self.ready.push_back((d, c));
        } else {
            self.unpaired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame named by its number.
    #[derive(Debug, PartialEq)]
    struct F(u32);

    impl Share for F {
        fn share(&self) -> Result<Self> {
            Ok(F(self.0))
        }
    }

    enum E {
        D(u32, f64),
        C(u32, f64),
    }

    fn run(events: &[E], gap: f64) -> (Vec<(u32, u32)>, u64) {
        let mut p = Pairer::new(gap);
        for e in events {
            match *e {
                E::D(n, t) => p.depth(F(n), t).unwrap(),
                E::C(n, t) => p.color(F(n), t).unwrap(),
            }
        }
        p.finish().unwrap();
        let mut out = Vec::new();
        while let Some((d, c)) = p.pop() {
            out.push((d.0, c.0));
        }
        (out, p.unpaired())
    }

    #[test]
    fn each_colour_frame_takes_the_nearer_depth_frame() {
        use E::*;
        // Colour at 40 ms: depth 30 is nearer than depth 60.
        let (pairs, lost) = run(&[D(1, 30.0), C(10, 40.0), D(2, 60.0)], 100.0);
        assert_eq!((pairs, lost), (vec![(1, 10)], 0));
        // Colour at 50 ms: depth 60 is nearer than depth 30.
        let (pairs, _) = run(&[D(1, 30.0), C(10, 50.0), D(2, 60.0)], 100.0);
        assert_eq!(pairs, vec![(2, 10)]);
        // A tie goes to the earlier depth frame.
        let (pairs, _) = run(&[D(1, 30.0), C(10, 45.0), D(2, 60.0)], 100.0);
        assert_eq!(pairs, vec![(1, 10)]);
    }

    #[test]
    fn depth_read_after_colour_still_counts_and_ends_flush() {
        use E::*;
        // The colour frame comes first in the file: it waits for depth.
        let (pairs, _) = run(&[C(10, 40.0), D(1, 45.0), C(11, 73.0), D(2, 78.0)], 50.0);
        assert_eq!(pairs, vec![(1, 10), (2, 11)]);
        // A depth frame already past the colour frame pairs at once.
        let (pairs, _) = run(&[D(1, 50.0), C(10, 40.0)], 50.0);
        assert_eq!(pairs, vec![(1, 10)]);
        // ... or with the depth frame before it, when that one is nearer.
        let (pairs, _) = run(&[D(1, 30.0), D(2, 60.0), C(10, 35.0)], 50.0);
        assert_eq!(pairs, vec![(1, 10)]);
        let (pairs, _) = run(&[D(1, 30.0), D(2, 60.0), C(10, 55.0)], 50.0);
        assert_eq!(pairs, vec![(2, 10)]);
        // The last colour frames of a file, with no depth after them.
        let (pairs, _) = run(&[D(1, 30.0), C(10, 40.0), C(11, 70.0)], 50.0);
        assert_eq!(pairs, vec![(1, 10), (1, 11)]);
        // Two colour frames before the next depth frame: each its nearest.
        let (pairs, _) = run(&[D(1, 10.0), C(10, 32.0), C(11, 64.0), D(2, 70.0)], 70.0);
        assert_eq!(pairs, vec![(1, 10), (2, 11)]);
    }

    #[test]
    fn frames_too_far_apart_or_without_depth_are_counted() {
        use E::*;
        let (pairs, lost) = run(&[C(10, 40.0)], 50.0);
        assert_eq!((pairs, lost), (vec![], 1));
        let (pairs, lost) = run(&[D(1, 0.0), C(10, 400.0), D(2, 900.0)], 50.0);
        assert_eq!((pairs, lost), (vec![], 1));
    }

    proptest::proptest! {
        /// Frames read in timestamp order: every colour frame is paired or
        /// counted, and each pair holds the depth frame nearest in time of
        /// the whole stream (the earlier on a tie).
        #[test]
        fn pairs_are_the_nearest_depth_frames(
            depth_steps in proptest::collection::vec(1u32..60, 0..30),
            color_steps in proptest::collection::vec(1u32..60, 0..30),
            gap in 5.0f64..80.0,
        ) {
            let stamps = |steps: &[u32]| {
                steps.iter().scan(0.0, |t, &d| { *t += f64::from(d); Some(*t) }).collect::<Vec<f64>>()
            };
            let (td, tc) = (stamps(&depth_steps), stamps(&color_steps));
            let mut events: Vec<(f64, bool, u32)> = td.iter().enumerate().map(|(i, &t)| (t, true, i as u32))
                .chain(tc.iter().enumerate().map(|(i, &t)| (t, false, i as u32)))
                .collect();
            // Depth first on equal timestamps.
            events.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
            let events: Vec<E> = events.into_iter()
                .map(|(t, is_depth, n)| if is_depth { E::D(n, t) } else { E::C(n, t) })
                .collect();
            let (pairs, lost) = run(&events, gap);
            proptest::prop_assert_eq!(pairs.len() as u64 + lost, tc.len() as u64);
            for (d, c) in &pairs {
                let t = tc[*c as usize];
                let best = td.iter().map(|&x| (x - t).abs()).fold(f64::INFINITY, f64::min);
                proptest::prop_assert!(((td[*d as usize] - t).abs() - best).abs() < 1e-9);
                proptest::prop_assert!((td[*d as usize] - t).abs() <= gap);
            }
            // A colour frame left out had no depth frame within the gap.
            let paired: Vec<u32> = pairs.iter().map(|p| p.1).collect();
            for (i, &t) in tc.iter().enumerate() {
                if !paired.contains(&(i as u32)) {
                    proptest::prop_assert!(td.iter().all(|&x| (x - t).abs() > gap));
                }
            }
        }
    }
}

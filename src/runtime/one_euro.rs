//! The One-Euro filter (Casiez, Roussel and Vogel, "1€ Filter: A Simple
//! Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI
//! 2012) for joint positions: an exponential low-pass whose cut-off rises
//! with the signal's speed, so a still person's jitter is smoothed away
//! while a fast movement is followed with little lag.
//!
//! Optional in the tracker ([`super::TrackerConfig::smoothing`]) and off by
//! default: the shipped models were trained on unsmoothed joints, and a
//! filter changes what the model sees. Turn it on for noisy sensors (depth
//! lifted from 2D landmarks), ideally for models trained the same way.

use serde::{Deserialize, Serialize};

/// Filter parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneEuro {
    /// Cut-off at rest, Hz: lower smooths more and lags more.
    pub min_cutoff_hz: f32,
    /// How fast the cut-off rises with speed, per (m/s): higher follows
    /// fast movement more closely.
    pub beta: f32,
    /// Cut-off of the speed estimate, Hz.
    pub d_cutoff_hz: f32,
}

impl Default for OneEuro {
    /// 1 Hz at rest, beta 1 s/m, 1 Hz on the speed: for joints in metres
    /// at 15–30 fps.
    fn default() -> Self {
        Self {
            min_cutoff_hz: 1.0,
            beta: 1.0,
            d_cutoff_hz: 1.0,
        }
    }
}

impl OneEuro {
    /// Checks the parameters are usable (positive cut-offs, beta >= 0).
    pub fn validate(&self) -> crate::Result<()> {
        let ok = |x: f32| x.is_finite() && x > 0.0;
        let beta_ok = self.beta.is_finite() && self.beta >= 0.0;
        if !ok(self.min_cutoff_hz) || !ok(self.d_cutoff_hz) || !beta_ok {
            return Err(crate::Error::config(
                "smoothing",
                format!("One-Euro needs positive cut-offs and beta >= 0, got {self:?}"),
            ));
        }
        Ok(())
    }
}

/// Smoothing factor of an exponential low-pass with cut-off `hz` sampled
/// every `dt` seconds.
fn alpha(hz: f32, dt: f32) -> f32 {
    let tau = 1.0 / (2.0 * std::f32::consts::PI * hz);
    1.0 / (1.0 + tau / dt)
}

/// Per-track filter state over `V` joints (sized once; filtering does not
/// allocate).
#[derive(Debug, Clone)]
pub struct OneEuroState {
    x: Vec<[f32; 3]>,
    dx: Vec<[f32; 3]>,
    last_ns: Option<u64>,
}

impl OneEuroState {
    /// State for poses of `v` joints.
    pub fn new(v: usize) -> Self {
        Self {
            x: vec![[0.0; 3]; v],
            dx: vec![[0.0; 3]; v],
            last_ns: None,
        }
    }

    /// Forgets the history (a new track).
    pub fn reset(&mut self) {
        self.last_ns = None;
    }

    /// Filters `pose` captured at `ts_ns` into `out` (same length).
    /// The first pose after a reset passes through unchanged; a timestamp
    /// that does not advance is treated as one frame at 30 fps.
    pub fn filter(&mut self, p: &OneEuro, pose: &[[f32; 3]], ts_ns: u64, out: &mut [[f32; 3]]) {
        let Some(last) = self.last_ns else {
            self.x.copy_from_slice(pose);
            self.dx.iter_mut().for_each(|d| *d = [0.0; 3]);
            self.last_ns = Some(ts_ns);
            out.copy_from_slice(pose);
            return;
        };
        let dt = if ts_ns > last {
            (ts_ns - last) as f32 * 1e-9
        } else {
            1.0 / 30.0
        };
        self.last_ns = Some(ts_ns.max(last));
        let ad = alpha(p.d_cutoff_hz, dt);
        for ((x, dx), (q, o)) in self
            .x
            .iter_mut()
            .zip(self.dx.iter_mut())
            .zip(pose.iter().zip(out.iter_mut()))
        {
            for ((xa, da), qa) in x.iter_mut().zip(dx.iter_mut()).zip(q) {
                let speed = (qa - *xa) / dt;
                *da += ad * (speed - *da);
                let cutoff = p.min_cutoff_hz + p.beta * da.abs();
                *xa += alpha(cutoff, dt) * (qa - *xa);
            }
            *o = *x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT_NS: u64 = 33_333_333;

    fn run(p: &OneEuro, signal: &[f32]) -> Vec<f32> {
        let mut s = OneEuroState::new(1);
        let mut out = [[0.0; 3]];
        signal
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                s.filter(p, &[[x, 0.0, 0.0]], i as u64 * DT_NS, &mut out);
                out[0][0]
            })
            .collect()
    }

    #[test]
    fn a_constant_passes_unchanged() {
        let y = run(&OneEuro::default(), &[0.7; 50]);
        assert!(y.iter().all(|&v| (v - 0.7).abs() < 1e-6));
    }

    #[test]
    fn jitter_at_rest_shrinks() {
        // +-1 cm alternating noise around 1 m
        let x: Vec<f32> = (0..300)
            .map(|i| 1.0 + if i % 2 == 0 { 0.01 } else { -0.01 })
            .collect();
        let y = run(&OneEuro::default(), &x);
        let dev = y[100..].iter().map(|v| (v - 1.0).abs()).fold(0.0, f32::max);
        assert!(dev < 0.004, "residual jitter {dev}");
    }

    #[test]
    fn speed_lowers_the_lag() {
        // 2 m/s ramp: with beta the filter trails it by less than without.
        let x: Vec<f32> = (0..60).map(|i| i as f32 * 2.0 / 30.0).collect();
        let lag = |beta: f32| {
            let p = OneEuro {
                beta,
                ..OneEuro::default()
            };
            let y = run(&p, &x);
            x[59] - y[59]
        };
        let (slow, fast) = (lag(0.0), lag(1.0));
        assert!(fast < slow * 0.5, "lag with beta {fast} vs without {slow}");
        assert!(fast > 0.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(OneEuro::default().validate().is_ok());
        for p in [
            OneEuro {
                min_cutoff_hz: 0.0,
                ..OneEuro::default()
            },
            OneEuro {
                beta: f32::NAN,
                ..OneEuro::default()
            },
            OneEuro {
                d_cutoff_hz: -1.0,
                ..OneEuro::default()
            },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }
}

//! Fixed-bucket latency histograms: recording a sample is an index
//! computation and an increment, never an allocation (the copper-rs habit).
//!
//! Buckets are logarithmic, [`BUCKETS_PER_DECADE`] per decade from 1 µs to
//! 100 s, so a quantile is known to within about 6 %; the maximum is kept
//! exactly.

use serde::Serialize;

/// Buckets per factor of ten.
pub const BUCKETS_PER_DECADE: usize = 40;
/// Decades covered, from 1 µs.
pub const DECADES: usize = 8;
const N: usize = BUCKETS_PER_DECADE * DECADES + 1;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; N]>,
    count: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Summary of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample (exact).
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; N]),
            count: 0,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    fn bucket(ns: u64) -> usize {
        let us = ns as f64 / 1e3;
        if us <= 1.0 {
            return 0;
        }
        let b = (us.log10() * BUCKETS_PER_DECADE as f64).ceil() as usize;
        b.min(N - 1)
    }

    /// Upper edge of bucket `b` in nanoseconds.
    fn upper_ns(b: usize) -> f64 {
        1e3 * 10f64.powf(b as f64 / BUCKETS_PER_DECADE as f64)
    }

    /// Records one sample.
    pub fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
        self.sum_ns += ns as u128;
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in nanoseconds: the upper edge of the
    /// bucket holding it, capped by the maximum.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (Self::upper_ns(b) as u64).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// p50, p99, max and mean in milliseconds.
    pub fn summary(&self) -> Summary {
        let ms = |ns: u64| ns as f64 / 1e6;
        Summary {
            count: self.count,
            p50_ms: ms(self.quantile_ns(0.5)),
            p99_ms: ms(self.quantile_ns(0.99)),
            max_ms: ms(self.max_ns),
            mean_ms: if self.count == 0 {
                0.0
            } else {
                self.sum_ns as f64 / self.count as f64 / 1e6
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_a_bucket() {
        let mut h = Histogram::new();
        for i in 1..=1000u64 {
            h.record(i * 1_000_000 / 100); // 0.01 .. 10 ms
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 5.0).abs() / 5.0 < 0.07, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() / 9.9 < 0.07, "{s:?}");
        assert_eq!(s.max_ms, 10.0);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Histogram::new().summary().p99_ms, 0.0);
    }
}

//! Forward traces: named intermediate tensors recorded during a forward pass.
//!
//! A parity test runs the same weights and input through skelact and through
//! the PyTorch reference (`tests/fixtures/gen_*.py`) and compares every traced
//! layer. Tracing is off by default and then costs one branch per layer.

use candle_core::Tensor;

/// Collects named intermediate tensors when enabled.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    entries: Vec<(String, Tensor)>,
}

impl Trace {
    /// A trace that records nothing (the fast path).
    pub fn off() -> Self {
        Self::default()
    }

    /// A trace that records every named tensor it is given.
    pub fn on() -> Self {
        Self {
            enabled: true,
            entries: Vec::new(),
        }
    }

    /// Whether this trace records.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Records `t` under `name` when enabled (the tensor is shared, not
    /// copied).
    pub fn record(&mut self, name: impl FnOnce() -> String, t: &Tensor) {
        if self.enabled {
            self.entries.push((name(), t.clone()));
        }
    }

    /// The recorded tensors in the order they were produced.
    pub fn entries(&self) -> &[(String, Tensor)] {
        &self.entries
    }

    /// The tensor recorded under `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

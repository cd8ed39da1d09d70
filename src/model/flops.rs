//! Counting multiply-accumulates of a forward pass.
//!
//! Layers report the MACs of each product they compute through [`add`]
//! while a [`measure`] call is active on the current thread; outside of it
//! [`add`] is one thread-local read. Published figures (CTR-GCN's "1.94 G"
//! per NTU sample) are MACs of convolutions and matrix products, which is
//! what is counted here; element-wise work (BN, activations) is not.

use std::cell::Cell;

thread_local! {
    static COUNTER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Adds `macs` multiply-accumulates to the active measurement, if any.
pub fn add(macs: u64) {
    COUNTER.with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + macs));
        }
    });
}

/// Runs `f` and returns its result with the MACs it reported.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let outer = COUNTER.with(|c| c.replace(Some(0)));
    let out = f();
    let macs = COUNTER.with(|c| c.replace(outer)).unwrap_or(0);
    if let Some(o) = outer {
        // A nested measurement also counts towards the outer one.
        COUNTER.with(|c| c.set(Some(o + macs)));
    }
    (out, macs)
}

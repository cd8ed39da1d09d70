//! The frame path allocates nothing at steady state: source → queue →
//! tracker → window buffers, counted by a global allocator that counts the
//! allocations of the calling thread.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use crossbeam_channel::bounded;
use skelact::runtime::{TrackWindow, Tracker, TrackerConfig};
use skelact::skeleton::Layout;
use skelact::source::synthetic::SyntheticSource;
use skelact::source::{Frame, JointSource};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn frame_path_allocates_nothing_at_steady_state() {
    let layout = Layout::kinect20_ucla();
    // four people coming and going for 60 s, the NTU layout as model layout
    // so that the mapping runs too
    let mut src = SyntheticSource::new(4, 60.0, 0);
    let mut cfg = TrackerConfig::new(52);
    cfg.stride = 4;
    let mut tracker = Tracker::new(cfg, layout, Layout::ntu25()).unwrap();
    let (tx, rx) = bounded::<Frame>(4);
    let (pool_tx, pool_rx) = bounded::<Frame>(8);
    let (wtx, wrx) = bounded::<TrackWindow>(16);
    let (wpool_tx, wpool_rx) = bounded::<TrackWindow>(32);
    for _ in 0..8 {
        pool_tx.send(Frame::new(layout, 8)).unwrap();
    }
    for _ in 0..32 {
        wpool_tx.send(TrackWindow::with_capacity(52, 25)).unwrap();
    }
    let mut windows = 0u64;
    let mut step = || -> bool {
        let mut f = pool_rx.try_recv().expect("frame pool");
        if !src.next_frame(&mut f).unwrap() {
            return false;
        }
        tx.try_send(f).unwrap();
        let f = rx.try_recv().unwrap();
        tracker.push(&f, 0);
        pool_tx.try_send(f).unwrap();
        loop {
            let mut w = wpool_rx.try_recv().expect("window pool");
            if !tracker.take_due(&mut w) {
                wpool_tx.try_send(w).unwrap();
                break;
            }
            windows += 1;
            wtx.try_send(w).unwrap();
            // the consumer hands it back
            let w = wrx.try_recv().unwrap();
            wpool_tx.try_send(w).unwrap();
        }
        true
    };
    // warm-up: every person has been seen, every buffer touched
    for _ in 0..900 {
        assert!(step());
    }
    let before = allocs();
    assert!(before > 0, "the counting allocator counts");
    let mut frames = 0;
    while step() {
        frames += 1;
    }
    let after = allocs();
    assert!(frames > 800);
    assert!(windows > 100, "{windows}");
    assert_eq!(
        after - before,
        0,
        "{} allocations in {frames} frames",
        after - before
    );
}

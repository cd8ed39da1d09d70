//! Live sources: the synthetic scene, dataset replay, recordings and UDP
//! input behave as documented, and bad input is counted or refused, never a
//! panic or a hang.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use skelact::skeleton::Layout;
use skelact::source::live::NO_FRAME;
use skelact::source::recording::{RecordingSource, RecordingWriter};
use skelact::source::replay::ReplaySource;
use skelact::source::synthetic::{Activity, SyntheticSource};
use skelact::source::udp::{self, UdpSource};
use skelact::source::{Clip, ClipMeta, Frame, JointSource};
use skelact::Error;

fn drain(src: &mut dyn JointSource, max: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut f = Frame::new(src.layout(), 4);
    let start = Instant::now();
    while out.len() < max && src.next_frame(&mut f).unwrap() {
        assert!(start.elapsed() < Duration::from_secs(20), "source hangs");
        if f.seq != NO_FRAME {
            out.push(f.clone());
        }
    }
    out
}

#[test]
fn synthetic_scene_is_deterministic_and_timed() {
    let a = drain(&mut SyntheticSource::new(3, 2.0, 7), usize::MAX);
    let b = drain(&mut SyntheticSource::new(3, 2.0, 7), usize::MAX);
    assert_eq!(a.len(), 60);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.people, y.people);
        assert_eq!(x.captured_at_ns, y.captured_at_ns);
    }
    assert_eq!(a[30].captured_at_ns, 1_000_000_000);
    assert_eq!(a[0].layout.name(), "kinect20-ucla");
    assert!(a.iter().all(|f| f.people.len() <= 3));
    assert!(a[0]
        .people
        .iter()
        .all(|p| p.joints.iter().flatten().all(|v| v.is_finite())));
}

#[test]
fn synthetic_fall_ends_low_and_bend_does_not() {
    // find a moment each activity is under way for person 0 and compare hip
    // heights above the floor (y = -1)
    let hip_at = |act: Activity| {
        let mut t = 0.0;
        while t < 60.0 {
            let (a, ph) = SyntheticSource::activity_at(0, t);
            if a == act && ph > 0.5 {
                let mut j = [[0.0f32; 3]; 20];
                assert!(SyntheticSource::pose_at(0, t, &mut j));
                return j[0][1] + 1.0;
            }
            t += 0.1;
        }
        panic!("no {act:?}");
    };
    assert!(hip_at(Activity::Fall) < 0.2);
    assert!(hip_at(Activity::Bend) > 0.6);
    assert!(hip_at(Activity::Sit) > 0.4);
    assert!(hip_at(Activity::Idle) > 0.9);
}

fn clip(name: &str, frames: usize, label: usize, x: f32) -> Clip {
    let v = 20;
    let mut joints = vec![0.0f32; frames * v * 3];
    for t in 0..frames {
        for j in 0..v {
            let i = (t * v + j) * 3;
            joints[i] = x + 0.01 * t as f32;
            joints[i + 1] = j as f32 * 0.05;
            joints[i + 2] = 3.0;
        }
    }
    Clip {
        name: name.into(),
        label,
        layout: "kinect20-ucla",
        fps: 30.0,
        num_frames: frames,
        num_persons: 1,
        num_joints: v,
        joints,
        meta: ClipMeta::default(),
    }
}

#[test]
fn replay_concatenates_clips_with_idle_gaps() {
    let mut r = ReplaySource::new(vec![clip("a", 10, 1, 0.0), clip("b", 5, 2, 1.0)], 0.5).unwrap();
    let seg = r.segments().to_vec();
    assert_eq!(r.total_frames(), 15 + 2 * 15);
    let frames = drain(&mut r, usize::MAX);
    assert_eq!(frames.len(), 45);
    // 15 empty frames, 10 of clip a, 15 empty, 5 of clip b
    assert!(frames[..15].iter().all(|f| f.people.is_empty()));
    assert!(frames[15..25].iter().all(|f| f.people.len() == 1));
    assert!(frames[25..40].iter().all(|f| f.people.is_empty()));
    assert_eq!(frames[40].people[0].joints[0][0], 1.0);
    assert_eq!(seg[0].start_ns, frames[15].captured_at_ns);
    assert_eq!(seg[1].end_ns, frames[44].captured_at_ns);
    assert_eq!((seg[0].label, seg[1].label), (1, 2));
    // timestamps at 30 fps
    assert_eq!(frames[30].captured_at_ns, 1_000_000_000);
    assert!(ReplaySource::new(vec![], 1.0).is_err());
}

fn record_synthetic(path: &std::path::Path, frames: u64) -> Vec<Frame> {
    let mut src = SyntheticSource::new(2, 60.0, 1);
    let mut w = RecordingWriter::create(path, src.layout(), src.fps()).unwrap();
    let mut f = Frame::new(src.layout(), 4);
    let mut out = Vec::new();
    for _ in 0..frames {
        assert!(src.next_frame(&mut f).unwrap());
        w.write(&f).unwrap();
        out.push(f.clone());
    }
    assert_eq!(w.finish().unwrap(), frames);
    out
}

#[test]
fn recording_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scene.skrec");
    let written = record_synthetic(&path, 90);
    let mut r = RecordingSource::open(&path).unwrap();
    assert_eq!(r.header().layout, "kinect20-ucla");
    assert_eq!(r.header().joints, 20);
    let read = drain(&mut r, usize::MAX);
    assert_eq!(read.len(), 90);
    for (a, b) in written.iter().zip(&read) {
        assert_eq!(a.seq, b.seq);
        assert_eq!(a.captured_at_ns, b.captured_at_ns);
        assert_eq!(a.people, b.people);
    }
    assert_eq!(r.dropped(), 0);
}

#[test]
fn truncated_recording_ends_at_last_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.skrec");
    record_synthetic(&path, 30);
    let bytes = std::fs::read(&path).unwrap();
    // cut in the middle of the last record
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let mut r = RecordingSource::open(&path).unwrap();
    let read = drain(&mut r, usize::MAX);
    assert_eq!(read.len(), 29);
    assert_eq!(r.dropped(), 1);
    // cut inside the header: a clear error
    std::fs::write(&path, &bytes[..20]).unwrap();
    assert!(matches!(
        RecordingSource::open(&path),
        Err(Error::Format { .. })
    ));
}

#[test]
fn corrupt_record_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.skrec");
    record_synthetic(&path, 10);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0xFF; // a coordinate of the last frame
    std::fs::write(&path, &bytes).unwrap();
    let mut r = RecordingSource::open(&path).unwrap();
    assert_eq!(drain(&mut r, usize::MAX).len(), 9);
    assert_eq!(r.dropped(), 1);
    // wrong magic, wrong version
    let mut b2 = std::fs::read(&path).unwrap();
    b2[0] = b'X';
    std::fs::write(&path, &b2).unwrap();
    assert!(matches!(
        RecordingSource::open(&path),
        Err(Error::Format { .. })
    ));
    b2[0] = b'S';
    b2[8] = 99;
    std::fs::write(&path, &b2).unwrap();
    let e = RecordingSource::open(&path).err().unwrap();
    assert!(e.to_string().contains("version"), "{e}");
}

#[test]
fn udp_counts_malformed_and_oversized_datagrams() {
    let layout = Layout::kinect20_ucla();
    let mut src = UdpSource::bind("127.0.0.1:0".parse().unwrap(), layout, 30.0).unwrap();
    let to = src.local_addr().unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut f = Frame::new(layout, 2);
    f.seq = 5;
    f.captured_at_ns = 123;
    let p = f.push_pose();
    p.joints[3] = [1.0, 2.0, f32::NAN];
    p.confidence[4] = 0.0;
    let mut good = Vec::new();
    udp::encode(&f, false, &mut good);
    tx.send_to(&good, to).unwrap();
    tx.send_to(b"hello", to).unwrap(); // too short
    let mut wrong_v = good.clone();
    wrong_v[6] = 25; // joints per person
    tx.send_to(&wrong_v, to).unwrap();
    let mut short = good.clone();
    short.truncate(good.len() - 4); // length disagrees with counts
    tx.send_to(&short, to).unwrap();
    let mut big = good.clone();
    big.resize(udp::MAX_DATAGRAM_BYTES + 500, 0);
    tx.send_to(&big, to).unwrap();
    tx.send_to(&good, to).unwrap();
    let mut end = Vec::new();
    udp::encode(&f, true, &mut end);
    tx.send_to(&end, to).unwrap();

    let mut frames = Vec::new();
    let mut g = Frame::new(layout, 2);
    let start = Instant::now();
    while src.next_frame(&mut g).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "udp source hangs"
        );
        if g.seq != NO_FRAME {
            frames.push(g.clone());
        }
    }
    assert_eq!(frames.len(), 2);
    assert_eq!(src.dropped(), 4);
    let q = &frames[0];
    assert_eq!((q.seq, q.captured_at_ns), (5, 123));
    assert!(q.people[0].joints[3][2].is_nan());
    assert!(!q.people[0].joint_valid(3));
    assert!(!q.people[0].joint_valid(4));
    assert!(q.people[0].joint_valid(0));
}

#[test]
fn udp_source_without_data_returns_promptly() {
    let layout = Layout::kinect20_ucla();
    let mut src = UdpSource::bind("127.0.0.1:0".parse().unwrap(), layout, 30.0).unwrap();
    let mut f = Frame::new(layout, 1);
    let t = Instant::now();
    assert!(src.next_frame(&mut f).unwrap());
    assert_eq!(f.seq, NO_FRAME);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn ntu_skeleton_files_replay_as_one_stream() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ntu");
    let mut r = ReplaySource::ntu(&dir, 10, 0.5).unwrap();
    assert_eq!(r.layout().name(), "ntu25");
    assert_eq!(r.segments().len(), 3);
    let total = r.total_frames() as usize;
    let frames = drain(&mut r, usize::MAX);
    assert_eq!(frames.len(), total);
    assert!(frames.iter().any(|f| !f.people.is_empty()));
    assert!(frames
        .iter()
        .flat_map(|f| &f.people)
        .all(|p| p.joints.len() == 25));
}

#[test]
fn utd_replay_takes_the_subjects_asked_for() {
    let Some(dir) = common::shared_data("utd-mhad/skeleton") else {
        return;
    };
    let test = skelact::source::replay::utd_clips(&dir, Some(&[2, 4, 6, 8]), 10_000).unwrap();
    assert_eq!(test.len(), 430, "the cross-subject test split");
    assert!(test
        .iter()
        .all(|c| matches!(c.meta.subject, Some(2 | 4 | 6 | 8))));
    let few = skelact::source::replay::utd_clips(&dir, Some(&[1]), 5).unwrap();
    assert_eq!(few.len(), 5);
    assert!(few.iter().all(|c| c.meta.subject == Some(1)));
    let src = ReplaySource::utd(&dir, Some(&[1]), 5, 0.5).unwrap();
    assert_eq!(src.segments().len(), 5);
}

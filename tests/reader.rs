//! Dataset readers (`skelact::source`): the real NW-UCLA and UTD-MHAD files
//! when `../shared/data` is there, the hand-made NTU fixtures
//! (`tests/fixtures/ntu/`, written by `make_fixtures.py` beside them), the
//! official splits, synthetic MAT-files that pin down byte order and
//! column-major layout, and corrupt input: truncated and byte-flipped files
//! must give `Ok` or `Err`, never a panic.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use skelact::source::mat5::{self, Class, MatFile};
use skelact::source::ntu::{self, Benchmark};
use skelact::source::{nwucla, utd, Clip, ClipMeta};
use skelact::Error;

// ---------------------------------------------------------------- helpers

/// A reproducible property runner that writes no regression files.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5ce1_ac70),
        ..Config::default()
    })
}

/// A corruption of a `len`-byte file: keep the first `cut` bytes, then xor
/// each `(offset, mask)` (offsets past the cut are ignored). Half of the
/// flips land in the first `head` bytes, where the structure is.
fn corruption(len: usize, head: usize) -> impl Strategy<Value = (usize, Vec<(usize, u8)>)> {
    let head = head.clamp(1, len.max(1));
    let offset = prop_oneof![0..head, 0..len.max(1)];
    let flips = prop::collection::vec((offset, 1u8..=255), 0..6);
    prop_oneof![
        (0..=len).prop_map(|cut| (cut, Vec::new())),
        flips.clone().prop_map(move |f| (len, f)),
        (0..=len, flips),
    ]
}

fn corrupt(bytes: &[u8], cut: usize, flips: &[(usize, u8)]) -> Vec<u8> {
    let mut b = bytes[..cut.min(bytes.len())].to_vec();
    for &(at, mask) in flips {
        if let Some(x) = b.get_mut(at) {
            *x ^= mask;
        }
    }
    b
}

/// Characters that keep a text file looking like numbers and lines, so that
/// text corruptions get past the tokenizer more often than random bytes.
const TEXT_BYTES: &[u8] = b"0123456789 -.\n\re+,[]NaIinf";

/// Like [`never_panics`], but the flips write characters of `TEXT_BYTES`
/// instead of xoring random masks.
fn never_panics_text(what: &str, bytes: &[u8], cases: u32, parse: impl Fn(&[u8]) -> Option<Clip>) {
    let t0 = Instant::now();
    let ok = std::cell::Cell::new(0usize);
    let len = bytes.len().max(1);
    let edits = prop::collection::vec((0..len, 0..TEXT_BYTES.len(), any::<bool>()), 1..6);
    runner(cases)
        .run(&edits, |edits| {
            let mut b = bytes.to_vec();
            for (at, c, insert) in edits {
                let at = at.min(b.len());
                if insert {
                    b.insert(at, TEXT_BYTES[c]);
                } else if at < b.len() {
                    b[at] = TEXT_BYTES[c];
                }
            }
            if let Some(clip) = parse(&b) {
                ok.set(ok.get() + 1);
                clip.validate()
                    .map_err(|e| TestCaseError::fail(format!("invalid clip: {e}")))?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {cases} text edits, {} still parsed, {:.2} s",
        ok.get(),
        t0.elapsed().as_secs_f64()
    );
}

/// Runs `parse` on `cases` corruptions of `bytes`; a panic fails the test
/// (proptest catches it and shrinks), and a clip that parses must be valid.
fn never_panics(
    what: &str,
    bytes: &[u8],
    head: usize,
    cases: u32,
    parse: impl Fn(&[u8]) -> Option<Clip>,
) {
    let t0 = Instant::now();
    let ok = std::cell::Cell::new(0usize);
    runner(cases)
        .run(&corruption(bytes.len(), head), |(cut, flips)| {
            let input = corrupt(bytes, cut, &flips);
            if let Some(clip) = parse(&input) {
                ok.set(ok.get() + 1);
                clip.validate()
                    .map_err(|e| TestCaseError::fail(format!("invalid clip: {e}")))?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: {cases} corruptions, {} still parsed, {:.2} s",
        ok.get(),
        t0.elapsed().as_secs_f64()
    );
}

fn assert_format_error<T: std::fmt::Debug>(r: skelact::Result<T>, needles: &[&str]) {
    match r {
        Err(e @ Error::Format { .. }) => {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "error `{msg}` does not mention `{n}`");
            }
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

fn ntu_fixture(name: &str) -> PathBuf {
    common::fixtures()
        .join("ntu")
        .join(format!("{name}.skeleton"))
}

// ------------------------------------------------------ a tiny MAT writer

/// How a synthetic array's real part is stored.
#[derive(Clone, Copy)]
enum Store {
    F64,
    U16,
}

fn put_u32(out: &mut Vec<u8>, x: u32, big: bool) {
    out.extend_from_slice(&if big {
        x.to_be_bytes()
    } else {
        x.to_le_bytes()
    });
}

/// A data element (small form when it fits in 4 bytes), padded to 8.
fn element(out: &mut Vec<u8>, ty: u32, data: &[u8], big: bool) {
    if data.len() <= 4 && !data.is_empty() {
        put_u32(out, ((data.len() as u32) << 16) | ty, big);
        out.extend_from_slice(data);
        out.resize(out.len() + 4 - data.len(), 0);
    } else {
        put_u32(out, ty, big);
        put_u32(out, data.len() as u32, big);
        out.extend_from_slice(data);
        while out.len() % 8 != 0 {
            out.push(0);
        }
    }
}

/// An `miMATRIX` element of MATLAB class `double` (values column-major).
fn matrix(name: &str, dims: &[i32], store: Store, values: &[f64], big: bool) -> Vec<u8> {
    let mut body = Vec::new();
    element(
        &mut body,
        6,
        &{
            let mut f = Vec::new();
            put_u32(&mut f, 6, big); // mxDOUBLE_CLASS
            put_u32(&mut f, 0, big);
            f
        },
        big,
    );
    let d: Vec<u8> = dims
        .iter()
        .flat_map(|&d| {
            if big {
                d.to_be_bytes()
            } else {
                d.to_le_bytes()
            }
        })
        .collect();
    element(&mut body, 5, &d, big);
    element(&mut body, 1, name.as_bytes(), big);
    let (ty, data): (u32, Vec<u8>) = match store {
        Store::F64 => (
            9,
            values
                .iter()
                .flat_map(|&v| {
                    if big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    }
                })
                .collect(),
        ),
        Store::U16 => (
            4,
            values
                .iter()
                .flat_map(|&v| {
                    let v = v as u16;
                    if big {
                        v.to_be_bytes()
                    } else {
                        v.to_le_bytes()
                    }
                })
                .collect(),
        ),
    };
    element(&mut body, ty, &data, big);
    let mut out = Vec::new();
    put_u32(&mut out, 14, big);
    put_u32(&mut out, body.len() as u32, big);
    out.extend_from_slice(&body);
    out
}

/// A whole MAT v5 file holding `matrices`, each optionally inside an
/// `miCOMPRESSED` element.
fn mat_file(matrices: &[Vec<u8>], big: bool, compressed: bool) -> Vec<u8> {
    let mut f = vec![b' '; 116];
    f[..27].copy_from_slice(b"MATLAB 5.0 MAT-file, test  ");
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&if big {
        0x0100u16.to_be_bytes()
    } else {
        0x0100u16.to_le_bytes()
    });
    f.extend_from_slice(if big { b"MI" } else { b"IM" });
    for m in matrices {
        if compressed {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut z, m).unwrap();
            let z = z.finish().unwrap();
            put_u32(&mut f, 15, big);
            put_u32(&mut f, z.len() as u32, big);
            f.extend_from_slice(&z);
        } else {
            f.extend_from_slice(m);
        }
    }
    f
}

/// The real file's header plus its compressed element, inflated: the same
/// content as an uncompressed MAT-file, so corruptions reach the matrix
/// parser instead of stopping at zlib's checksum.
fn inflated(bytes: &[u8]) -> Vec<u8> {
    let len = u32::from_le_bytes(bytes[132..136].try_into().unwrap()) as usize;
    let mut out = bytes[..128].to_vec();
    flate2::read::ZlibDecoder::new(&bytes[136..136 + len])
        .read_to_end(&mut out)
        .unwrap();
    out
}

// -------------------------------------------------------------- NW-UCLA

#[test]
fn nwucla_reads_every_clip_with_the_cross_view_split() {
    let Some(dir) = common::shared_data("nw-ucla/all_sqe") else {
        return;
    };
    let t0 = Instant::now();
    let files = nwucla::list(&dir).unwrap();
    assert_eq!(files.len(), 1484);
    let (mut train, mut test, mut single_frame, mut frames) = (0, 0, 0, 0);
    let mut per_label = [0usize; 10];
    for f in &files {
        let clip = nwucla::read_clip(f).unwrap();
        assert_eq!(clip.layout, "kinect20-ucla");
        assert_eq!((clip.num_persons, clip.num_joints), (1, 20));
        assert!(
            clip.num_frames >= 1 && clip.num_frames <= 300,
            "{}",
            clip.name
        );
        assert_eq!(clip.joints.len(), clip.num_frames * 20 * 3);
        assert!(clip.label < nwucla::CLASSES.len());
        assert_eq!(
            nwucla::label_of_action(clip.meta.action.unwrap()),
            Some(clip.label)
        );
        per_label[clip.label] += 1;
        single_frame += usize::from(clip.num_frames == 1);
        frames += clip.num_frames;
        if nwucla::is_train_cross_view(&clip.meta) {
            train += 1;
        } else {
            assert_eq!(clip.meta.camera, Some(3));
            test += 1;
        }
    }
    assert_eq!((train, test), (1020, 464));
    assert!(single_frame >= 1, "the README says some clips have T = 1");
    assert!(per_label.iter().all(|&n| n > 100), "{per_label:?}");
    eprintln!(
        "NW-UCLA: {} clips, {frames} frames in {:.2} s",
        files.len(),
        t0.elapsed().as_secs_f64()
    );

    // The first clip, against its JSON text: frame 0, joint 0 is
    // [-0.619699, 0.328046, 3.18186]; joint 3 (head) is above joint 0 (hip).
    let clip = nwucla::read_clip(&dir.join("a01_s01_e00_v01.json")).unwrap();
    assert_eq!(clip.name, "a01_s01_e00_v01");
    assert_eq!(
        clip.meta,
        ClipMeta {
            action: Some(1),
            subject: Some(1),
            repetition: Some(0),
            camera: Some(1),
            setup: None
        }
    );
    assert_eq!(clip.position(0, 0, 0), Some([-0.619699, 0.328046, 3.18186]));
    assert!(clip.position(0, 0, 3).unwrap()[1] > clip.position(0, 0, 0).unwrap()[1]);
    let x = clip.to_tensor(&Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[3, clip.num_frames, 20, 1]);
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let t = clip.num_frames;
    // (C, T, V, M): channel 2 (z), frame 0, joint 0.
    assert_eq!(v[2 * t * 20], 3.18186);
}

/// A small valid NW-UCLA clip, for when the real data are missing.
fn synthetic_nwucla() -> Vec<u8> {
    let frames: Vec<String> = (0..3)
        .map(|t| {
            let joints: Vec<String> = (0..20)
                .map(|j| format!("[{}, {}, 3.0]", 0.01 * j as f64, 0.1 * t as f64))
                .collect();
            format!("[{}]", joints.join(", "))
        })
        .collect();
    format!(
        r#"{{"file_name": "a08_s02_e01_v03", "skeletons": [{}], "label": 7}}"#,
        frames.join(", ")
    )
    .into_bytes()
}

#[test]
fn nwucla_refuses_bad_values_and_names_where() {
    let p = Path::new("a08_s02_e01_v03.json");
    let good = synthetic_nwucla();
    let clip = nwucla::parse_clip(&good, p).unwrap();
    assert_eq!((clip.label, clip.num_frames), (6, 3));
    assert_eq!(nwucla::CLASSES[clip.label], "donning");
    assert!(!nwucla::is_train_cross_view(&clip.meta));

    let text = String::from_utf8(good).unwrap();
    // Too large for f32: refused, naming frame and joint.
    let bad = text.replacen("3.0]", "3e39]", 1);
    assert_format_error(
        nwucla::parse_clip(bad.as_bytes(), p),
        &["frame 0", "joint 0"],
    );
    // A label that disagrees with the action id.
    let bad = text.replace(r#""label": 7"#, r#""label": 8"#);
    assert_format_error(nwucla::parse_clip(bad.as_bytes(), p), &["label 8"]);
    // A frame with 19 joints.
    let bad = text.replacen("[0, 0, 3.0], ", "", 1);
    assert_format_error(
        nwucla::parse_clip(bad.as_bytes(), p),
        &["frame 0", "19 joints"],
    );
    // No frames at all, and JSON's lack of NaN.
    let bad = r#"{"file_name": "a01_s01_e00_v01", "skeletons": [], "label": 1}"#;
    assert_format_error(nwucla::parse_clip(bad.as_bytes(), p), &["no frames"]);
    let bad = text.replacen("3.0]", "NaN]", 1);
    assert_format_error(nwucla::parse_clip(bad.as_bytes(), p), &["invalid JSON"]);
    assert!(nwucla::parse_name("a01_s01_e00").is_none());
    assert!(nwucla::parse_name("a01_s01_e00_v01_x").is_none());
    assert!(nwucla::parse_name("a1x_s01_e00_v01").is_none());
}

#[test]
fn nwucla_corrupt_input_never_panics() {
    let (bytes, path) = match common::shared_data("nw-ucla/all_sqe/a12_s10_e04_v03.json") {
        Some(p) => (std::fs::read(&p).unwrap(), p),
        None => (synthetic_nwucla(), PathBuf::from("synthetic.json")),
    };
    never_panics("NW-UCLA JSON", &bytes, 200, 1000, |b| {
        nwucla::parse_clip(b, &path).ok()
    });
    never_panics_text("NW-UCLA JSON", &bytes, 1000, |b| {
        nwucla::parse_clip(b, &path).ok()
    });
}

// ------------------------------------------------------------- UTD-MHAD

#[test]
fn utd_reads_skeletons_depth_and_inertial() {
    let Some(root) = common::shared_data("utd-mhad") else {
        return;
    };
    let t0 = Instant::now();
    let skeletons = utd::list(&root.join("skeleton"), utd::Modality::Skeleton).unwrap();
    // 27 actions x 8 subjects x 4 trials, less three trials that are not in
    // the data set (a8_s1_t4, a23_s6_t4, a27_s8_t4).
    assert_eq!(skeletons.len(), 861);
    assert!(!skeletons
        .iter()
        .any(|p| p.ends_with("a27_s8_t4_skeleton.mat")));
    assert_eq!(
        utd::list(&root.join("depth"), utd::Modality::Depth)
            .unwrap()
            .len(),
        861
    );
    assert_eq!(
        utd::list(&root.join("inertial"), utd::Modality::Inertial)
            .unwrap()
            .len(),
        861
    );

    // Every skeleton file parses; the cross-subject split covers them all.
    let (mut train, mut test) = (0, 0);
    for p in &skeletons {
        let clip = utd::read_skeleton(p).unwrap();
        assert_eq!(clip.layout, "kinect20-utd");
        assert_eq!((clip.num_persons, clip.num_joints), (1, 20));
        assert!(clip.label < 27 && clip.num_frames > 0);
        if utd::is_train_cross_subject(&clip.meta) {
            assert_eq!(clip.meta.subject.unwrap() % 2, 1);
            train += 1;
        } else {
            test += 1;
        }
    }
    assert_eq!(train + test, 861);
    assert!(train > 400 && test > 400, "{train} / {test}");
    let t_skel = t0.elapsed().as_secs_f64();

    // a1_s1_t1: d_skel is 20 x 3 x 48; head (joint 0) above hip centre (3).
    let trial = utd::Trial {
        action: 1,
        subject: 1,
        trial: 1,
    };
    let clip = utd::read_skeleton(&utd::path_of(&root, trial, utd::Modality::Skeleton)).unwrap();
    assert_eq!(clip.name, "a1_s1_t1_skeleton");
    assert_eq!((clip.num_frames, clip.label), (48, 0));
    assert_eq!(utd::CLASSES[0], "right arm swipe to the left");
    for t in 0..clip.num_frames {
        assert!(clip.position(t, 0, 0).unwrap()[1] > clip.position(t, 0, 3).unwrap()[1]);
    }

    // Skeleton and depth of the same trial have the same T (a handful of
    // trials spread over the data set: each depth video inflates to ~7 MB).
    let t1 = Instant::now();
    for p in skeletons.iter().step_by(173) {
        let name = p.file_name().unwrap().to_str().unwrap();
        let (trial, _) = utd::Trial::parse(name).unwrap();
        let clip = utd::read_skeleton(p).unwrap();
        let depth = utd::read_depth(&utd::path_of(&root, trial, utd::Modality::Depth)).unwrap();
        assert_eq!((depth.height, depth.width), (240, 320));
        assert_eq!(depth.frames, clip.num_frames, "{name}");
        assert_eq!(depth.depth_mm.len(), 240 * 320 * depth.frames);
        let valid = depth.frame(0).unwrap().iter().filter(|&&d| d > 0).count();
        assert!(valid > 1000, "{name}: only {valid} pixels with depth");
        assert!(
            depth.depth_mm.iter().all(|&d| d < 10_000),
            "{name}: depth past 10 m"
        );
    }
    let t_depth = t1.elapsed().as_secs_f64();

    // All 861 trials, from the array headers only (each depth file's
    // compressed element is inflated just far enough to read its dims).
    let t2 = Instant::now();
    for p in &skeletons {
        let name = p.file_name().unwrap().to_str().unwrap();
        let (trial, _) = utd::Trial::parse(name).unwrap();
        let skel = mat5::variables(&std::fs::read(p).unwrap(), p).unwrap();
        let depth_path = utd::path_of(&root, trial, utd::Modality::Depth);
        let depth = mat5::variables(&std::fs::read(&depth_path).unwrap(), &depth_path).unwrap();
        assert_eq!((skel.len(), depth.len()), (1, 1), "{name}");
        assert_eq!((skel[0].name.as_str(), skel[0].class), ("d_skel", "double"));
        assert_eq!(depth[0].name, "d_depth");
        let t_skel = skel[0].dims.get(2).copied().unwrap_or(1);
        let t_depth = depth[0].dims.get(2).copied().unwrap_or(1);
        assert_eq!(&depth[0].dims[..2], &[240, 320], "{name}");
        assert_eq!(
            t_skel, t_depth,
            "{name}: skeleton and depth frame counts differ"
        );
    }
    let t_headers = t2.elapsed().as_secs_f64();

    let iner = utd::read_inertial(&utd::path_of(&root, trial, utd::Modality::Inertial)).unwrap();
    assert_eq!(iner.len(), 160, "d_iner of a1_s1_t1 is 160 x 6");
    assert_eq!(iner.rate_hz, 50.0);
    // At rest the accelerometer reads about 1 g.
    let g = iner.accel_g[0].iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!((0.5..1.5).contains(&g), "|a| = {g} g");
    eprintln!(
        "UTD-MHAD: 861 skeletons in {t_skel:.2} s, 5 depth videos in {t_depth:.2} s, \
         861 skeleton + depth headers in {t_headers:.2} s"
    );
}

#[test]
fn mat5_byte_order_compression_and_column_major() {
    // d_skel (20, 3, 2): value = j + 20 * (k + 3 * f), i.e. column-major.
    let values: Vec<f64> = (0..120).map(f64::from).collect();
    let want = |f: usize, j: usize, k: usize| (j + 20 * (k + 3 * f)) as f32;
    let p = Path::new("a5_s2_t3_skeleton.mat");
    let trial = utd::Trial {
        action: 5,
        subject: 2,
        trial: 3,
    };
    for big in [false, true] {
        for compressed in [false, true] {
            let m = matrix("d_skel", &[20, 3, 2], Store::F64, &values, big);
            let bytes = mat_file(&[m], big, compressed);
            let mut mat = MatFile::parse(&bytes, p).unwrap();
            let a = mat.get("d_skel").unwrap();
            assert_eq!(
                (a.class, a.dims.as_slice()),
                (Class::Double, &[20, 3, 2][..])
            );
            let clip = utd::skeleton_from_mat(&mut mat, trial, p).unwrap();
            assert_eq!((clip.num_frames, clip.label), (2, 4));
            assert!(!utd::is_train_cross_subject(&clip.meta));
            for f in 0..2 {
                for j in 0..20 {
                    let got = clip.position(f, 0, j).unwrap();
                    assert_eq!(got, [want(f, j, 0), want(f, j, 1), want(f, j, 2)]);
                }
            }
        }
    }
    // T = 1: MATLAB stores 20 x 3 x 1 as 20 x 3.
    let m = matrix("d_skel", &[20, 3], Store::F64, &values[..60], false);
    let mut mat = MatFile::parse(&mat_file(&[m], false, true), p).unwrap();
    assert_eq!(
        utd::skeleton_from_mat(&mut mat, trial, p)
            .unwrap()
            .num_frames,
        1
    );

    // A NaN is refused, naming frame and joint.
    let mut bad = values.clone();
    bad[7 + 20 * (1 + 3)] = f64::NAN; // frame 1, joint 7, axis 1
    let m = matrix("d_skel", &[20, 3, 2], Store::F64, &bad, false);
    let mut mat = MatFile::parse(&mat_file(&[m], false, false), p).unwrap();
    assert_format_error(
        utd::skeleton_from_mat(&mut mat, trial, p),
        &["frame 1, joint 7, axis 1"],
    );

    // Depth: a double array stored as uint16 (as MATLAB writes UTD-MHAD's),
    // (H=2, W=3, T=2) column-major.
    let depth: Vec<f64> = (0..12).map(|i| f64::from(1000 + i)).collect();
    let m = matrix("d_depth", &[2, 3, 2], Store::U16, &depth, false);
    let mut mat = MatFile::parse(&mat_file(&[m], false, true), p).unwrap();
    let v = utd::depth_from_mat(&mut mat, p).unwrap();
    assert_eq!((v.height, v.width, v.frames), (2, 3, 2));
    for t in 0..2 {
        for y in 0..2 {
            for x in 0..3 {
                assert_eq!(
                    v.depth_mm_at(t, y, x),
                    Some((1000 + y + 2 * (x + 3 * t)) as u16)
                );
            }
        }
    }
    assert_eq!(v.depth_mm_at(2, 0, 0), None);

    // Inertial (N=4, 6) column-major; two variables in one file.
    let iner: Vec<f64> = (0..24).map(f64::from).collect();
    let bytes = mat_file(
        &[
            matrix("other", &[1, 1], Store::F64, &[1.0], false),
            matrix("d_iner", &[4, 6], Store::F64, &iner, false),
        ],
        false,
        true,
    );
    let mut mat = MatFile::parse(&bytes, p).unwrap();
    assert_eq!(mat.arrays.len(), 2);
    let s = utd::inertial_from_mat(&mut mat, p).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.accel_g[1], [1.0, 5.0, 9.0]);
    assert_eq!(s.gyro_deg_s[3], [15.0, 19.0, 23.0]);

    // Headers only.
    let vars = mat5::variables(&bytes, p).unwrap();
    let names: Vec<(&str, &str, &[usize])> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.class, v.dims.as_slice()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("other", "double", &[1, 1][..]),
            ("d_iner", "double", &[4, 6][..])
        ]
    );

    // A missing variable lists what is there.
    let mut mat = MatFile::parse(&bytes, p).unwrap();
    assert_format_error(utd::depth_from_mat(&mut mat, p), &["d_depth", "other"]);
}

#[test]
fn mat5_refuses_lying_lengths_without_allocating() {
    let p = Path::new("x.mat");
    let values: Vec<f64> = (0..60).map(f64::from).collect();
    let good = mat_file(
        &[matrix("d_skel", &[20, 3], Store::F64, &values, false)],
        false,
        true,
    );
    assert!(MatFile::parse(&good, p).is_ok());

    // Compressed element claiming 4 GiB.
    let mut bad = good.clone();
    bad[132..136].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_format_error(MatFile::parse(&bad, p), &["byte 128", "claims"]);

    // Dimensions whose product overflows, and ones that disagree with the data.
    for dims in [
        &[i32::MAX, i32::MAX, i32::MAX, 4][..],
        &[1 << 30, 1 << 30],
        &[20, 4],
    ] {
        let m = matrix("d_skel", dims, Store::F64, &values, false);
        assert!(
            MatFile::parse(&mat_file(&[m], false, false), p).is_err(),
            "{dims:?}"
        );
    }

    // A "zip bomb": 8 MiB of zeros that deflate to a few KiB, refused at a
    // 1 MiB limit, accepted at the default one.
    let zeros = vec![0.0; 1 << 20];
    let bomb = mat_file(
        &[matrix("z", &[1024, 1024], Store::F64, &zeros, false)],
        false,
        true,
    );
    assert!(bomb.len() < 64 << 10);
    assert_format_error(MatFile::parse_with_limit(&bomb, p, 1 << 20), &["limit"]);
    assert_eq!(MatFile::parse(&bomb, p).unwrap().arrays[0].len(), 1 << 20);

    // Not MAT v5 at all.
    assert_format_error(MatFile::parse(b"MATLAB", p), &["header"]);
    let mut v73 = good.clone();
    v73[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
    assert_format_error(MatFile::parse(&v73, p), &["0x0200"]);
    assert_eq!(mat5::FORMAT, "MATLAB v5");
}

#[test]
fn utd_corrupt_input_never_panics() {
    let (skel, skel_path) = match common::shared_data("utd-mhad/skeleton/a27_s8_t3_skeleton.mat") {
        Some(p) => (std::fs::read(&p).unwrap(), p),
        None => {
            let values: Vec<f64> = (0..600).map(|i| f64::from(i) * 1e-3).collect();
            let m = matrix("d_skel", &[20, 3, 10], Store::F64, &values, false);
            (
                mat_file(&[m], false, true),
                PathBuf::from("synthetic_skeleton.mat"),
            )
        }
    };
    let trial = utd::Trial {
        action: 27,
        subject: 8,
        trial: 3,
    };
    let parse = |b: &[u8]| {
        let _ = mat5::variables(b, &skel_path);
        let mut mat = MatFile::parse(b, &skel_path).ok()?;
        utd::skeleton_from_mat(&mut mat, trial, &skel_path).ok()
    };
    // As stored (zlib's checksum catches most flips) ...
    never_panics("UTD skeleton (compressed)", &skel, 160, 600, parse);
    // ... and inflated, so that flips reach the matrix parser.
    never_panics(
        "UTD skeleton (inflated)",
        &inflated(&skel),
        200,
        2000,
        parse,
    );

    if let Some(p) = common::shared_data("utd-mhad/inertial/a1_s1_t1_inertial.mat") {
        let bytes = inflated(&std::fs::read(&p).unwrap());
        let t0 = Instant::now();
        runner(200)
            .run(&corruption(bytes.len(), 200), |(cut, flips)| {
                let b = corrupt(&bytes, cut, &flips);
                if let Ok(mut mat) = MatFile::parse(&b, &p) {
                    if let Ok(s) = utd::inertial_from_mat(&mut mat, &p) {
                        prop_assert_eq!(s.accel_g.len(), s.gyro_deg_s.len());
                    }
                }
                Ok(())
            })
            .unwrap();
        eprintln!(
            "UTD inertial: 200 corruptions, {:.2} s",
            t0.elapsed().as_secs_f64()
        );
    }
    if let Some(p) = common::shared_data("utd-mhad/depth/a1_s1_t1_depth.mat") {
        // Few cases: each intact one inflates 7 MB.
        let bytes = std::fs::read(&p).unwrap();
        let t0 = Instant::now();
        runner(12)
            .run(&corruption(bytes.len(), 200), |(cut, flips)| {
                let b = corrupt(&bytes, cut, &flips);
                if let Ok(mut mat) = MatFile::parse(&b, &p) {
                    if let Ok(v) = utd::depth_from_mat(&mut mat, &p) {
                        prop_assert_eq!(v.depth_mm.len(), v.width * v.height * v.frames);
                    }
                }
                Ok(())
            })
            .unwrap();
        eprintln!(
            "UTD depth: 12 corruptions, {:.2} s",
            t0.elapsed().as_secs_f64()
        );
    }
}

// ------------------------------------------------------------------ NTU

#[test]
fn ntu_two_bodies_are_ordered_by_motion_energy() {
    let path = ntu_fixture("S001C002P001R001A050");
    let seq = ntu::read_sequence(&path).unwrap();
    assert_eq!(seq.frames.len(), 4);
    assert!(seq.frames.iter().all(|f| f.len() == 2));
    let b = &seq.frames[0][1];
    assert_eq!(b.id, 72057594037931102);
    assert_eq!(b.joints.len(), 25);
    assert_eq!(b.joints[3].depth_xy_px, [253.0, 197.0]);
    assert_eq!(b.joints[3].color_xy_px, [1006.0, 494.0]);
    assert_eq!(b.joints[3].orientation_wxyz, [0.5, -0.5, 0.5, 0.5]);
    assert_eq!((b.joints[3].tracking_state, b.tracking_state), (2, 2));
    assert_eq!(b.lean_xy, [0.01, -0.02]);
    // Body 2 moves 0.1 m per frame, body 1 1 mm: body 2 comes first.
    assert_eq!(ntu::select_bodies(&seq, 2), vec![1, 0]);

    let clip = ntu::read_clip(&path).unwrap();
    assert_eq!(clip.name, "S001C002P001R001A050");
    assert_eq!((clip.label, clip.layout, clip.fps), (49, "ntu25", 30.0));
    assert_eq!(clip.shape(), [4, 2, 25, 3]);
    let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
    for t in 0..4 {
        let tf = t as f32;
        // joint 2 of body 2: (-0.6 + 0.02 + 0.1 t, -0.5 + 0.08, 3.2 + 0.002)
        assert!(close(
            clip.position(t, 0, 2).unwrap(),
            [-0.58 + 0.1 * tf, -0.42, 3.202]
        ));
        assert!(close(
            clip.position(t, 1, 0).unwrap(),
            [0.1 + 0.001 * tf, -0.5, 3.0]
        ));
    }
    clip.validate().unwrap();
    let x = clip.to_tensor(&Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[3, 4, 25, 2]);
    // (C, T, V, M) -> x of frame 3, joint 2, person 0
    let v = x
        .get(0)
        .unwrap()
        .get(3)
        .unwrap()
        .get(2)
        .unwrap()
        .get(0)
        .unwrap();
    assert!((v.to_scalar::<f32>().unwrap() + 0.28).abs() < 1e-6);
}

#[test]
fn ntu_frames_without_bodies_stay_as_zeros() {
    let path = ntu_fixture("S002C001P003R002A043");
    let clip = ntu::read_clip(&path).unwrap();
    assert_eq!(clip.shape(), [4, 1, 25, 3]);
    assert_eq!(clip.label, 42, "A043 = falling down, label 42");
    assert_eq!(
        clip.meta,
        ClipMeta {
            action: Some(43),
            subject: Some(3),
            camera: Some(1),
            repetition: Some(2),
            setup: Some(2)
        }
    );
    assert!((0..25).all(|v| clip.position(1, 0, v) == Some([0.0; 3])));
    assert!(clip.position(2, 0, 0).unwrap()[1] < -0.4);
    // Padded to the two persons the reference scripts always emit.
    let two = clip.with_persons(2);
    assert_eq!(two.shape(), [4, 2, 25, 3]);
    assert_eq!(two.position(3, 0, 5), clip.position(3, 0, 5));
    assert_eq!(two.position(3, 1, 5), Some([0.0; 3]));
    assert_eq!(two.with_persons(1), clip);
}

#[test]
fn ntu_three_bodies_crlf_keep_the_two_most_energetic() {
    let path = ntu_fixture("S018C003P045R001A100");
    let seq = ntu::read_sequence(&path).unwrap();
    assert_eq!(ntu::select_bodies(&seq, 3), vec![2, 1, 0]);
    let clip = ntu::read_clip(&path).unwrap();
    assert_eq!((clip.num_persons, clip.label), (2, 99));
    assert!((clip.position(2, 0, 0).unwrap()[2] - 3.4).abs() < 1e-6);
    assert!((clip.position(2, 1, 0).unwrap()[1] + 0.46).abs() < 1e-6);
    assert!(Benchmark::CrossSetup120.is_train(&clip.meta));
    assert!(Benchmark::CrossSubject120.is_train(&clip.meta));
}

#[test]
fn ntu_refuses_bad_values_and_names_where() {
    let path = ntu_fixture("S002C001P003R002A043");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = Path::new("S002C001P003R002A043.skeleton");
    assert!(ntu::parse_sequence(text.as_bytes(), p).is_ok());
    // Line 4 is the first joint of the first body.
    let lines: Vec<&str> = text.lines().collect();
    let with_line = |i: usize, new: &str| {
        let mut l = lines.clone();
        l[i] = new;
        l.join("\n")
    };
    let nan = with_line(4, "0.2 NaN 2.5 250 200 1000 500 0.5 -0.5 0.5 0.5 2");
    assert_format_error(
        ntu::parse_sequence(nan.as_bytes(), p),
        &["line 5", "y of frame 0, body 0, joint 0"],
    );
    let inf = with_line(5, "0.2 -0.4 inf 250 200 1000 500 0.5 -0.5 0.5 0.5 2");
    assert_format_error(
        ntu::parse_sequence(inf.as_bytes(), p),
        &["non-finite", "joint 1"],
    );
    let short = with_line(4, "0.2 -0.4 2.5");
    assert_format_error(
        ntu::parse_sequence(short.as_bytes(), p),
        &["line 5", "12 values"],
    );
    let joints = with_line(3, "24");
    assert_format_error(ntu::parse_sequence(joints.as_bytes(), p), &["24 joints"]);
    let frames = with_line(0, "5");
    assert_format_error(ntu::parse_sequence(frames.as_bytes(), p), &["file ends"]);
    let frames = with_line(0, "3");
    assert_format_error(
        ntu::parse_sequence(frames.as_bytes(), p),
        &["after the 3 frames"],
    );
    let huge = with_line(0, "18446744073709551615");
    assert!(ntu::parse_sequence(huge.as_bytes(), p).is_err());
    let no_bodies = "2\n0\n0\n";
    let seq = ntu::parse_sequence(no_bodies.as_bytes(), p).unwrap();
    assert_format_error(
        ntu::clip_from_sequence(&seq, "S002C001P003R002A043", 2, p),
        &["no bodies"],
    );
    assert_format_error(
        ntu::read_clip(&common::fixtures().join("ntu/make_fixtures.py")),
        &["file name"],
    );
}

#[test]
fn ntu_names_and_official_splits() {
    let m = ntu::parse_name("S017C003P020R002A060.skeleton").unwrap();
    assert_eq!(
        (m.setup, m.camera, m.subject, m.repetition, m.action),
        (Some(17), Some(3), Some(20), Some(2), Some(60))
    );
    for bad in [
        "S017C003P020R002A000",
        "S017C003P020R002A121",
        "S017C003P020R002A06",
        "S017C003P020R002A0600",
        "X017C003P020R002A060",
        "S017C003P0x0R002A060",
        "S017C003P020R002A06é",
    ] {
        assert!(ntu::parse_name(bad).is_none(), "{bad}");
    }
    assert_eq!(ntu::TRAIN_SUBJECTS_120.len(), 53);
    assert!(ntu::TRAIN_SUBJECTS_120.windows(2).all(|w| w[0] < w[1]));
    assert!(ntu::TRAIN_SUBJECTS_60
        .iter()
        .all(|s| ntu::TRAIN_SUBJECTS_120.contains(s)));
    assert!(ntu::TRAIN_SUBJECTS_120
        .iter()
        .all(|&s| (1..=106).contains(&s)));

    let meta = |setup, camera, subject| ClipMeta {
        action: Some(1),
        subject: Some(subject),
        camera: Some(camera),
        repetition: Some(1),
        setup: Some(setup),
    };
    // NTU-60 cross-subject: 20 of the 40 performers train.
    let xsub60 = (1..=40).filter(|&s| Benchmark::CrossSubject60.is_train(&meta(1, 1, s)));
    assert_eq!(xsub60.count(), 20);
    assert!(Benchmark::CrossSubject60.is_train(&meta(1, 1, 38)));
    assert!(!Benchmark::CrossSubject60.is_train(&meta(1, 1, 3)));
    // Cross-view: cameras 2 and 3.
    assert!(!Benchmark::CrossView60.is_train(&meta(1, 1, 1)));
    assert!(Benchmark::CrossView60.is_train(&meta(1, 2, 3)));
    assert!(Benchmark::CrossView60.is_train(&meta(1, 3, 3)));
    // NTU-120 cross-subject: 53 of 106; cross-setup: even setups.
    let xsub120 = (1..=106).filter(|&s| Benchmark::CrossSubject120.is_train(&meta(1, 1, s)));
    assert_eq!(xsub120.count(), 53);
    assert!(Benchmark::CrossSubject120.is_train(&meta(1, 1, 103)));
    assert!(!Benchmark::CrossSubject120.is_train(&meta(1, 1, 104)));
    let xset = (1..=32).filter(|&s| Benchmark::CrossSetup120.is_train(&meta(s, 1, 1)));
    assert_eq!(xset.count(), 16);
    assert!(Benchmark::CrossSetup120.is_train(&meta(32, 1, 1)));
    assert!(!Benchmark::CrossSetup120.is_train(&meta(31, 1, 1)));
    assert!(!Benchmark::CrossSetup120.is_train(&ClipMeta::default()));
    assert_eq!(Benchmark::CrossSubject120.name(), "xsub120");
    assert!(Benchmark::CrossView60.is_ntu60() && !Benchmark::CrossSetup120.is_ntu60());
}

#[test]
fn ntu_corrupt_input_never_panics() {
    let name = "S002C001P003R002A043";
    let path = ntu_fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    let parse = |b: &[u8]| {
        let seq = ntu::parse_sequence(b, &path).ok()?;
        ntu::clip_from_sequence(&seq, name, ntu::MAX_PERSONS, &path).ok()
    };
    // Every truncation of the small fixture.
    let t0 = Instant::now();
    for cut in 0..=bytes.len() {
        let _ = parse(&bytes[..cut]);
    }
    eprintln!(
        "NTU: {} truncations in {:.2} s",
        bytes.len() + 1,
        t0.elapsed().as_secs_f64()
    );
    never_panics("NTU .skeleton", &bytes, 400, 1000, parse);
    never_panics_text("NTU .skeleton", &bytes, 1000, parse);
    let name = "S018C003P045R001A100";
    let path = ntu_fixture(name);
    let bytes = std::fs::read(&path).unwrap();
    never_panics("NTU .skeleton (3 bodies, CRLF)", &bytes, 400, 200, |b| {
        let seq = ntu::parse_sequence(b, &path).ok()?;
        ntu::clip_from_sequence(&seq, name, ntu::MAX_PERSONS, &path).ok()
    });
}

#[test]
fn clip_invariants_and_tensor_layout() {
    // (T=2, M=2, V=3, 3): value = 1000 t + 100 m + 10 v + c.
    let joints: Vec<f32> = (0..2)
        .flat_map(|t| {
            (0..2).flat_map(move |m| {
                (0..3).flat_map(move |v| {
                    (0..3).map(move |c| (1000 * t + 100 * m + 10 * v + c) as f32)
                })
            })
        })
        .collect();
    let clip = Clip {
        name: "synthetic".into(),
        label: 0,
        layout: "ntu25",
        fps: 30.0,
        num_frames: 2,
        num_persons: 2,
        num_joints: 3,
        joints,
        meta: ClipMeta::default(),
    };
    clip.validate().unwrap();
    let x = clip.to_tensor(&Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[3, 2, 3, 2]);
    let v: Vec<Vec<Vec<Vec<f32>>>> = (0..3)
        .map(|c| x.get(c).unwrap().to_vec3::<f32>().unwrap())
        .collect();
    for (c, v) in v.iter().enumerate() {
        for (t, v) in v.iter().enumerate() {
            for (j, v) in v.iter().enumerate() {
                for (m, &x) in v.iter().enumerate() {
                    assert_eq!(x, (1000 * t + 100 * m + 10 * j + c) as f32);
                }
            }
        }
    }
    let mut bad = clip.clone();
    bad.joints[5] = f32::NAN;
    assert!(matches!(
        bad.validate(),
        Err(Error::NonFinite { count: 1, .. })
    ));
    bad.joints.pop();
    assert!(matches!(bad.validate(), Err(Error::Shape { .. })));
    assert_eq!(clip.position(2, 0, 0), None);
}

//! The `skelact` binary as a command-line tool in a shell pipeline.

/// A reader that stops early (`skelact run | head -1`) ends the binary the
/// way it ends other command-line tools, by SIGPIPE: no panic and no error
/// message about a broken pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_binary_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    // about 90 kB of JSON Lines: more than a pipe buffers
    let mut child = Command::new(env!("CARGO_BIN_EXE_skelact"))
        .args(["run", "--fast", "--scores", "--seconds", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("skelact starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("a first line");
    assert!(line.starts_with('{'), "{line}");
    drop(out);
    let o = child.wait_with_output().expect("skelact ends");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        o.status.signal(),
        Some(libc_sigpipe()),
        "{:?}: {err}",
        o.status
    );
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux and the BSDs
}

/// `skelact plot A B` draws both runs' curves on one pair of axes, one
/// palette colour each, and a wrong number of legend names is an error
/// message, not a panic or a picture with missing names.
#[cfg(feature = "train")]
#[test]
fn plot_compares_two_runs_in_their_palette_colours() {
    use skelact::train::plot::PALETTE;
    use std::process::Command;

    let out = tempfile::tempdir().expect("tempdir");
    let runs = [
        "models/ctrgcn-edge-nwucla",
        "models/ctrgcn-edge-nwucla-bone",
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_skelact"))
        .args(["plot", runs[0], runs[1], "--names", "joint,bone"])
        .args(["--from-epoch", "20", "--out"])
        .arg(out.path())
        .output()
        .expect("skelact starts");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let png = out.path().join("compare.png");
    let img = skelact::pose::image::read_png(&png).expect("a PNG");
    assert_eq!((img.width, img.height), (1200, 500));
    for (i, c) in PALETTE[..2].iter().enumerate() {
        let rgb = [c.0, c.1, c.2];
        let n = img.rgb.chunks(3).filter(|p| *p == rgb).count();
        // Two panels of 46 epochs, two pixels wide: hundreds of pixels.
        assert!(n > 200, "run {i}: {n} pixels of {rgb:?}");
    }

    let o = Command::new(env!("CARGO_BIN_EXE_skelact"))
        .args(["plot", runs[0], runs[1], "--names", "joint", "--out"])
        .arg(out.path())
        .output()
        .expect("skelact starts");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("1 names for 2 directories"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

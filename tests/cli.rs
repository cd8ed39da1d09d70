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

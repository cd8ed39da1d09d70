//! Where poses come from: readers for the public skeleton data sets that
//! skelact trains and tests on, all producing one in-memory [`Clip`].
//!
//! Each reader follows the format its authors published and refuses
//! malformed input with [`crate::Error::Format`] (naming the
//! file and the byte offset, line, frame or joint), never with a panic:
//!
//! - [`nwucla`]: Northwestern-UCLA Multiview Action 3D, one JSON file per clip
//!   (Wang et al., CVPR 2014), in the form the CTR-GCN authors redistribute.
//! - [`utd`]: UTD-MHAD (Chen, Jafari and Kehtarnavaz, ICIP 2015), MATLAB v5
//!   files of skeletons, depth video and inertial data, read by [`mat5`].
//! - [`ntu`]: NTU RGB+D 60 / 120 `.skeleton` text files (Shahroudy et al.,
//!   CVPR 2016; Liu et al., TPAMI 2019), with the standard two-body
//!   selection by motion energy and the official splits.
//!
//! Live streams for the runtime implement [`JointSource`] (see [`live`]):
//! [`synthetic`] (the built-in demo scene), [`replay`] (data set clips as one
//! stream), [`recording`] (skelact's own format), [`udp`] and, with feature
//! `realsense`, `realsense` (an Intel RealSense camera or recording, lifted
//! to 3D joints by [`crate::lift`]).
//!
//! Readers hold a whole file in memory; every length read from a file is
//! checked against the bytes that are actually there (or a stated limit)
//! before anything is allocated from it.

pub mod clip;
pub mod live;
pub mod mat5;
pub mod ntu;
pub mod nwucla;
#[cfg(feature = "realsense")]
pub mod realsense;
pub mod recording;
pub mod replay;
pub mod synthetic;
pub mod udp;
pub mod utd;

pub use clip::{Clip, ClipMeta};
pub use live::{Frame, JointSource, Pose, StageTimes};

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The largest file a dataset reader loads into memory (1 GiB): far above
/// any real clip, low enough that a wrong path (a disk image, a device)
/// fails with a clear error instead of exhausting memory.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// An [`Error::Format`] for `path`.
pub(crate) fn malformed(format: &'static str, path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        format,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a whole file, refusing one larger than `max_bytes`.
pub(crate) fn read_capped(path: &Path, format: &'static str, max_bytes: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > max_bytes {
        return Err(malformed(
            format,
            path,
            format!("file is {len} bytes, more than the {max_bytes}-byte limit"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path, e))?;
    if buf.len() as u64 > max_bytes {
        return Err(malformed(
            format,
            path,
            format!("file grew past the {max_bytes}-byte limit while being read"),
        ));
    }
    Ok(buf)
}

/// The files directly inside `dir` for which `keep(file_name)` holds,
/// sorted by path.
pub(crate) fn list_files(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_file = entry
            .file_type()
            .map_err(|e| Error::io(&path, e))?
            .is_file()
            || std::fs::metadata(&path)
                .map(|m| m.is_file())
                .unwrap_or(false);
        if !is_file {
            continue;
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if keep(name) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

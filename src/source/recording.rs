//! skelact's own recording format: a live stream of frames written to a file
//! and replayed exactly.
//!
//! ```text
//! file    = magic "SKELREC\0" (8 bytes)
//!           version u32 LE (= 1)
//!           header_len u32 LE, header: header_len bytes of JSON
//!             {"layout": "kinect20-ucla", "joints": 20, "fps": 30.0,
//!              "created_by": "skelact 0.1.0"}
//!           record*
//! record  = payload_len u32 LE, crc32 u32 LE (of the payload), payload
//! payload = captured_at_ns u64 LE, seq u64 LE, people u16 LE,
//!           people x joints x (x, y, z, confidence) f32 LE
//! ```
//!
//! The header makes a file self-describing (layout, joints, rate); the
//! checksum per record catches corruption. Reading refuses a wrong magic,
//! an unknown version or a header that contradicts itself with
//! [`crate::Error::Format`]; a record whose checksum or length is wrong is
//! skipped and counted ([`JointSource::dropped`]); a file cut off in the
//! middle of a record ends the stream at the last whole record, counting
//! the partial one as a drop.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::live::{Frame, JointSource};
use crate::skeleton::Layout;
use crate::{Error, Result};

/// First bytes of a recording.
pub const MAGIC: [u8; 8] = *b"SKELREC\0";
/// The version this code writes and reads.
pub const VERSION: u32 = 1;
/// Largest header accepted.
pub const MAX_HEADER_BYTES: u32 = 64 << 10;
/// Most people in one recorded frame.
pub const MAX_PEOPLE: usize = 64;
/// Format name in errors.
pub const FORMAT: &str = "skelact recording";

/// The JSON header of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Layout name.
    pub layout: String,
    /// Joints per pose (must match the layout).
    pub joints: usize,
    /// Nominal frame rate.
    pub fps: f32,
    /// The program that wrote the file.
    pub created_by: String,
}

/// Writes frames to a recording.
pub struct RecordingWriter {
    out: BufWriter<File>,
    path: PathBuf,
    joints: usize,
    buf: Vec<u8>,
    frames: u64,
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

impl RecordingWriter {
    /// Creates `path` for frames of `layout` at `fps`.
    pub fn create(path: impl AsRef<Path>, layout: &'static Layout, fps: f32) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut out = BufWriter::new(file);
        let header = Header {
            layout: layout.name().to_string(),
            joints: layout.num_joints(),
            fps,
            created_by: format!("skelact {}", env!("CARGO_PKG_VERSION")),
        };
        let json = serde_json::to_vec(&header)
            .map_err(|e| Error::config("recording header", e.to_string()))?;
        let io = |e| Error::io(&path, e);
        out.write_all(&MAGIC).map_err(io)?;
        out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&(json.len() as u32).to_le_bytes())
            .map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(Self {
            out,
            joints: layout.num_joints(),
            path,
            buf: Vec::new(),
            frames: 0,
        })
    }

    /// Appends one frame.
    pub fn write(&mut self, frame: &Frame) -> Result<()> {
        if frame.layout.num_joints() != self.joints {
            return Err(Error::mismatch(
                "recorded frame joints",
                self.joints,
                frame.layout.num_joints(),
            ));
        }
        let people = frame.people.len().min(MAX_PEOPLE);
        self.buf.clear();
        self.buf
            .extend_from_slice(&frame.captured_at_ns.to_le_bytes());
        self.buf.extend_from_slice(&frame.seq.to_le_bytes());
        self.buf.extend_from_slice(&(people as u16).to_le_bytes());
        for p in &frame.people[..people] {
            for (xyz, c) in p.joints.iter().zip(&p.confidence) {
                for a in xyz {
                    self.buf.extend_from_slice(&a.to_le_bytes());
                }
                self.buf.extend_from_slice(&c.to_le_bytes());
            }
        }
        let io = |e| Error::io(&self.path, e);
        self.out
            .write_all(&(self.buf.len() as u32).to_le_bytes())
            .map_err(io)?;
        self.out
            .write_all(&crc32(&self.buf).to_le_bytes())
            .map_err(io)?;
        self.out.write_all(&self.buf).map_err(io)?;
        self.frames += 1;
        Ok(())
    }

    /// Flushes and closes the file; returns the number of frames written.
    pub fn finish(mut self) -> Result<u64> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.frames)
    }
}

/// Replays a recording.
pub struct RecordingSource {
    input: BufReader<File>,
    path: PathBuf,
    header: Header,
    layout: &'static Layout,
    buf: Vec<u8>,
    dropped: u64,
    ended: bool,
}

/// Reads as many bytes as there are up to `buf.len()`; returns the count.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl RecordingSource {
    /// Opens a recording, checking its magic, version and header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut input = BufReader::new(file);
        let bad = |reason: String| super::malformed(FORMAT, &path, reason);
        let mut head = [0u8; 16];
        let n = read_full(&mut input, &mut head).map_err(|e| Error::io(&path, e))?;
        if n < 16 || head[..8] != MAGIC {
            return Err(bad("not a skelact recording (magic `SKELREC`)".into()));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err(bad(format!(
                "version {version}, this build reads {VERSION}"
            )));
        }
        let len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if len > MAX_HEADER_BYTES {
            return Err(bad(format!("header of {len} bytes is over the limit")));
        }
        let mut json = vec![0u8; len as usize];
        let n = read_full(&mut input, &mut json).map_err(|e| Error::io(&path, e))?;
        if n < json.len() {
            return Err(bad("file ends inside the header".into()));
        }
        let header: Header =
            serde_json::from_slice(&json).map_err(|e| bad(format!("header: {e}")))?;
        let layout = Layout::by_name(&header.layout)?;
        if layout.num_joints() != header.joints {
            return Err(bad(format!(
                "header says {} joints, layout {} has {}",
                header.joints,
                layout.name(),
                layout.num_joints()
            )));
        }
        if !(header.fps > 0.0 && header.fps.is_finite()) {
            return Err(bad(format!("fps {} is not positive", header.fps)));
        }
        Ok(Self {
            input,
            path,
            header,
            layout,
            buf: Vec::new(),
            dropped: 0,
            ended: false,
        })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn max_payload(&self) -> usize {
        18 + MAX_PEOPLE * self.header.joints * 16
    }
}

impl JointSource for RecordingSource {
    fn layout(&self) -> &'static Layout {
        self.layout
    }

    fn fps(&self) -> f32 {
        self.header.fps
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool> {
        loop {
            if self.ended {
                return Ok(false);
            }
            let mut rec = [0u8; 8];
            let n = read_full(&mut self.input, &mut rec).map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                self.ended = true;
                return Ok(false);
            }
            if n < 8 {
                log::warn!(
                    "{}: truncated record header at end of file",
                    self.path.display()
                );
                self.dropped += 1;
                self.ended = true;
                return Ok(false);
            }
            let len = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as usize;
            let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
            if len > self.max_payload() || len < 18 {
                // A length we cannot trust: nothing after it can be framed.
                log::warn!("{}: record length {len} out of range", self.path.display());
                self.dropped += 1;
                self.ended = true;
                return Ok(false);
            }
            self.buf.resize(len, 0);
            let n =
                read_full(&mut self.input, &mut self.buf).map_err(|e| Error::io(&self.path, e))?;
            if n < len {
                log::warn!("{}: truncated record at end of file", self.path.display());
                self.dropped += 1;
                self.ended = true;
                return Ok(false);
            }
            if crc32(&self.buf) != crc {
                self.dropped += 1;
                continue;
            }
            let b = &self.buf;
            let u64_at = |i: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[i..i + 8]);
                u64::from_le_bytes(a)
            };
            let people = u16::from_le_bytes([b[16], b[17]]) as usize;
            let v = self.header.joints;
            if people > MAX_PEOPLE || len != 18 + people * v * 16 {
                self.dropped += 1;
                continue;
            }
            if frame.layout.name() != self.layout.name() {
                frame.set_layout(self.layout);
            }
            frame.clear();
            frame.captured_at_ns = u64_at(0);
            frame.seq = u64_at(8);
            let f32_at = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            for p in 0..people {
                let pose = frame.push_pose();
                for j in 0..v {
                    let i = 18 + (p * v + j) * 16;
                    pose.joints[j] = [f32_at(i), f32_at(i + 4), f32_at(i + 8)];
                    pose.confidence[j] = f32_at(i + 12);
                }
            }
            return Ok(true);
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn describe(&self) -> String {
        format!(
            "recording {} ({}, {} fps)",
            self.path.display(),
            self.header.layout,
            self.header.fps
        )
    }
}

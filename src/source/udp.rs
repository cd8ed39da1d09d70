//! Joints from an external body tracker over UDP, one frame per datagram.
//!
//! ## Datagram format (version 1, all little-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SKJ1"
//!      4     1  version (= 1)
//!      5     1  flags: bit 0 = end of stream (no people follow)
//!      6     2  joints per person V (must equal the source's layout)
//!      8     2  people P (at most MAX_PEOPLE)
//!     10     8  captured_at_ns (sender's clock)
//!     18     8  seq
//!     26  P*V*16  per person, per joint: x, y, z (metres), confidence (f32)
//! ```
//!
//! A datagram is at most [`MAX_DATAGRAM_BYTES`]. Anything else — wrong
//! magic or version, a joint count that is not the layout's, a length that
//! disagrees with the counts, a datagram over the size limit — is dropped
//! and counted ([`JointSource::dropped`]), never an error: on a network,
//! garbage is a normal event. NaN coordinates or confidence 0 mark missing
//! joints, which the tracker fills.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use super::live::{Frame, JointSource, NO_FRAME};
use crate::skeleton::Layout;
use crate::{Error, Result};

/// First bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"SKJ1";
/// The version of the format.
pub const VERSION: u8 = 1;
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 26;
/// Largest datagram accepted.
pub const MAX_DATAGRAM_BYTES: usize = 16 * 1024;
/// Most people in one datagram.
pub const MAX_PEOPLE: usize = 16;
/// Flag: the sender's stream has ended.
pub const FLAG_END: u8 = 1;

/// Encodes `frame` into `out` (cleared first). Poses past [`MAX_PEOPLE`]
/// are left out.
pub fn encode(frame: &Frame, end: bool, out: &mut Vec<u8>) {
    let v = frame.layout.num_joints();
    let people = if end {
        0
    } else {
        frame.people.len().min(MAX_PEOPLE)
    };
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(if end { FLAG_END } else { 0 });
    out.extend_from_slice(&(v as u16).to_le_bytes());
    out.extend_from_slice(&(people as u16).to_le_bytes());
    out.extend_from_slice(&frame.captured_at_ns.to_le_bytes());
    out.extend_from_slice(&frame.seq.to_le_bytes());
    for p in &frame.people[..people] {
        for (xyz, c) in p.joints.iter().zip(&p.confidence) {
            for a in xyz {
                out.extend_from_slice(&a.to_le_bytes());
            }
            out.extend_from_slice(&c.to_le_bytes());
        }
    }
}

/// What [`decode`] found in a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A frame, written into the caller's [`Frame`].
    Frame,
    /// The sender's end-of-stream marker.
    End,
    /// Not a valid datagram; nothing was written.
    Malformed,
}

/// Decodes one datagram into `frame` (whose layout gives V).
pub fn decode(bytes: &[u8], frame: &mut Frame) -> Decoded {
    if bytes.len() < HEADER_BYTES || bytes.len() > MAX_DATAGRAM_BYTES || bytes[..4] != MAGIC {
        return Decoded::Malformed;
    }
    if bytes[4] != VERSION {
        return Decoded::Malformed;
    }
    let flags = bytes[5];
    let v = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let people = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    if v != frame.layout.num_joints() || people > MAX_PEOPLE {
        return Decoded::Malformed;
    }
    if bytes.len() != HEADER_BYTES + people * v * 16 {
        return Decoded::Malformed;
    }
    if flags & FLAG_END != 0 {
        return Decoded::End;
    }
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let f32_at =
        |i: usize| f32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    frame.clear();
    frame.captured_at_ns = u64_at(10);
    frame.seq = u64_at(18);
    for p in 0..people {
        let pose = frame.push_pose();
        for j in 0..v {
            let i = HEADER_BYTES + (p * v + j) * 16;
            pose.joints[j] = [f32_at(i), f32_at(i + 4), f32_at(i + 8)];
            pose.confidence[j] = f32_at(i + 12);
        }
    }
    Decoded::Frame
}

/// A UDP socket receiving datagrams of one layout.
pub struct UdpSource {
    socket: UdpSocket,
    layout: &'static Layout,
    fps: f32,
    buf: Vec<u8>,
    dropped: u64,
    ended: bool,
}

impl UdpSource {
    /// Binds `addr` for poses of `layout` arriving at about `fps`.
    pub fn bind(addr: SocketAddr, layout: &'static Layout, fps: f32) -> Result<Self> {
        let io = |e| Error::io(format!("udp://{addr}"), e);
        let socket = UdpSocket::bind(addr).map_err(io)?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io)?;
        Ok(Self {
            socket,
            layout,
            fps,
            // one byte more than allowed, so that an oversized datagram is
            // seen as such rather than silently truncated
            buf: vec![0u8; MAX_DATAGRAM_BYTES + 1],
            dropped: 0,
            ended: false,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.socket
            .local_addr()
            .map_err(|e| Error::io("udp socket", e))
    }
}

impl JointSource for UdpSource {
    fn layout(&self) -> &'static Layout {
        self.layout
    }

    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        if frame.layout.name() != self.layout.name() {
            frame.set_layout(self.layout);
        }
        match self.socket.recv(&mut self.buf) {
            Ok(n) => match decode(&self.buf[..n], frame) {
                Decoded::Frame => Ok(true),
                Decoded::End => {
                    self.ended = true;
                    Ok(false)
                }
                Decoded::Malformed => {
                    self.dropped += 1;
                    frame.clear();
                    frame.seq = NO_FRAME;
                    Ok(true)
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                frame.clear();
                frame.seq = NO_FRAME;
                Ok(true)
            }
            // e.g. ICMP port unreachable on some platforms: a dropped datagram
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.dropped += 1;
                frame.clear();
                frame.seq = NO_FRAME;
                Ok(true)
            }
            Err(e) => Err(Error::io("udp socket", e)),
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn describe(&self) -> String {
        match self.socket.local_addr() {
            Ok(a) => format!("udp {a} ({})", self.layout.name()),
            Err(_) => format!("udp ({})", self.layout.name()),
        }
    }
}

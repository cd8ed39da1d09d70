//! Where events go: JSON Lines (stdout or a file), UDP datagrams (one JSON
//! object each), or a callback in the library API.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};

use super::event::Event;
use crate::{Error, Result};

/// A consumer of events, run on the decision thread: it should be quick.
pub trait Sink: Send {
    /// Handles one event.
    fn emit(&mut self, event: &Event) -> Result<()>;
    /// Called once at shutdown.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One JSON object per line to any writer.
pub struct JsonLines<W: Write + Send> {
    out: W,
    what: String,
    line: Vec<u8>,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`; `what` names it in errors.
    pub fn new(out: W, what: impl Into<String>) -> Self {
        Self {
            out,
            what: what.into(),
            line: Vec::with_capacity(512),
        }
    }
}

impl JsonLines<std::io::Stdout> {
    /// Events to standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout(), "stdout")
    }
}

impl JsonLines<std::io::BufWriter<std::fs::File>> {
    /// Events to a new file at `path`.
    pub fn file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::new(
            std::io::BufWriter::new(f),
            path.display().to_string(),
        ))
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn emit(&mut self, event: &Event) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event)
            .map_err(|e| Error::config("event", e.to_string()))?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|e| Error::io(&self.what, e))
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.what, e))
    }
}

/// One JSON object per datagram to a fixed address.
pub struct UdpJson {
    socket: UdpSocket,
    to: SocketAddr,
    buf: Vec<u8>,
}

impl UdpJson {
    /// Sends events to `to` from an ephemeral local port.
    pub fn new(to: SocketAddr) -> Result<Self> {
        let any: SocketAddr = if to.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(any).map_err(|e| Error::io(format!("udp://{to}"), e))?;
        Ok(Self {
            socket,
            to,
            buf: Vec::with_capacity(512),
        })
    }
}

impl Sink for UdpJson {
    fn emit(&mut self, event: &Event) -> Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, event)
            .map_err(|e| Error::config("event", e.to_string()))?;
        // A lost datagram is the network's normal behaviour, not an error
        // worth stopping for.
        if let Err(e) = self.socket.send_to(&self.buf, self.to) {
            log::debug!("udp sink: {e}");
        }
        Ok(())
    }
}

/// A closure called with every event.
pub struct Callback<F: FnMut(&Event) + Send>(pub F);

impl<F: FnMut(&Event) + Send> Sink for Callback<F> {
    fn emit(&mut self, event: &Event) -> Result<()> {
        (self.0)(event);
        Ok(())
    }
}

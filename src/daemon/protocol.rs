//! The daemon protocol's frames: `[kind: u8][len: u32 LE][payload]`, described in
//! docs/daemon-protocol.md. Pure encode/decode, no I/O (that is `wire.rs`).
//!
//! Numbers are little-endian; a string is a u32 length and its bytes.

use crate::core::head::ResponseHead;

/// Protocol version carried by both sides' HELLO; bump on any incompatible change.
pub const VERSION: u8 = 3;

/// First bytes of every HELLO payload: a peer that is not oxwsgi fails here.
pub const MAGIC: &[u8; 6] = b"OXWSGI";

/// Bytes of a frame header: kind, then the payload length.
pub const HEADER_LEN: usize = 5;

/// Largest payload of a body frame (BODY, DATA): bounds each side's buffer.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Largest payload of REQUEST and HEAD (all request or response headers in one frame).
pub const MAX_META_PAYLOAD: usize = 1024 * 1024;

/// What a frame is. Values 0x01-0x0f go from the server (client) to the daemon,
/// 0x10-0x1f from the daemon to the client; HELLO goes both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Both ways, first: magic, version, build; the client's also a queue deadline.
    Hello = 0x01,
    /// Client: the request metadata (`RequestMeta::encode`).
    Request = 0x02,
    /// Client: body bytes answering a READ; empty = end of the body.
    Body = 0x03,
    /// Client: reading the request body failed (message).
    BodyError = 0x04,
    /// Daemon: u32, at most this many body bytes wanted.
    Read = 0x10,
    /// Daemon: status, headers, content length.
    Head = 0x11,
    /// Daemon: flags u8, then body bytes.
    Data = 0x12,
    /// Daemon: offset u64, len u64, flags u8; the descriptor rides as SCM_RIGHTS.
    File = 0x13,
    /// Daemon: the response is complete.
    End = 0x14,
    /// Daemon: the response cannot be completed after its head.
    Abort = 0x15,
    /// Daemon: status u16 and a message, before any head; the client answers the status.
    Fail = 0x16,
    /// Daemon, before any READ or HEAD: this process is restarting (its script changed)
    /// and will not run the request; the client sends it again on a new connection.
    Retry = 0x17,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0x01 => Kind::Hello,
            0x02 => Kind::Request,
            0x03 => Kind::Body,
            0x04 => Kind::BodyError,
            0x10 => Kind::Read,
            0x11 => Kind::Head,
            0x12 => Kind::Data,
            0x13 => Kind::File,
            0x14 => Kind::End,
            0x15 => Kind::Abort,
            0x16 => Kind::Fail,
            0x17 => Kind::Retry,
            _ => return None,
        })
    }

    /// The largest payload a frame of this kind may have.
    pub fn max_payload(self) -> usize {
        match self {
            Kind::Request | Kind::Head => MAX_META_PAYLOAD,
            Kind::Data => MAX_PAYLOAD + 1,
            Kind::File => 17,
            Kind::End | Kind::Abort | Kind::Retry => 0,
            Kind::Read => 4,
            Kind::Hello | Kind::BodyError | Kind::Fail => 4096,
            Kind::Body => MAX_PAYLOAD,
        }
    }
}

/// A frame or payload that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "daemon protocol error: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// The header of a frame of `kind` with a `len`-byte payload.
pub fn header(kind: Kind, len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= kind.max_payload(), "{kind:?} payload of {len} bytes");
    let l = (len as u32).to_le_bytes();
    [kind as u8, l[0], l[1], l[2], l[3]]
}

/// Read a frame header: its kind and payload length, checked against the kind's maximum.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(Kind, usize), ProtocolError> {
    let Some(kind) = Kind::from_u8(h[0]) else {
        return err(format!("unknown frame kind 0x{:02x}", h[0]));
    };
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > kind.max_payload() {
        return err(format!("{kind:?} frame of {len} bytes (at most {})", kind.max_payload()));
    }
    Ok((kind, len))
}

/// Append a whole frame to `out`.
pub fn frame(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    out.extend_from_slice(&header(kind, payload.len()));
    out.extend_from_slice(payload);
}

/// A frame's kind and payload, and the bytes after it.
pub type Split<'b> = (Kind, &'b [u8], &'b [u8]);

/// Split a buffer into its first complete frame and the rest; `Ok(None)` if the buffer
/// holds only part of a frame.
pub fn split_frame(buf: &[u8]) -> Result<Option<Split<'_>>, ProtocolError> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else { return Ok(None) };
    let (kind, len) = parse_header(h)?;
    let rest = &buf[HEADER_LEN..];
    if rest.len() < len {
        return Ok(None);
    }
    Ok(Some((kind, &rest[..len], &rest[len..])))
}

/// A HELLO payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u8,
    /// Client only: the request must be refused with 503 if a daemon thread picks it up
    /// after this time (microseconds since the UNIX epoch; 0 = no queue timeout).
    pub queue_deadline_us: u64,
    /// The sender's build, for messages ("oxwsgi 0.1.0").
    pub build: String,
}

impl Hello {
    /// This build's hello.
    pub fn ours(queue_deadline_us: u64) -> Hello {
        Hello { version: VERSION, queue_deadline_us, build: concat!("oxwsgi ", env!("CARGO_PKG_VERSION")).into() }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(MAGIC);
        out.push(self.version);
        out.extend_from_slice(&self.queue_deadline_us.to_le_bytes());
        out.extend_from_slice(&self.build.as_bytes()[..self.build.len().min(256)]);
        out
    }

    /// [`Hello::decode`] for the per-request check: the peer's queue deadline, without
    /// allocating when the hello is good.
    pub fn check(p: &[u8]) -> Result<u64, ProtocolError> {
        if p.len() >= MAGIC.len() + 9 && &p[..MAGIC.len()] == MAGIC && p[6] == VERSION {
            return Ok(u64::from_le_bytes(p[7..15].try_into().expect("8 bytes")));
        }
        Hello::decode(p).map(|h| h.queue_deadline_us)
    }

    /// Decode and check a peer's hello: a peer that is not oxwsgi, or speaks another
    /// version of the protocol, fails here with a message naming both builds.
    pub fn decode(p: &[u8]) -> Result<Hello, ProtocolError> {
        if p.len() < MAGIC.len() + 9 || &p[..MAGIC.len()] != MAGIC {
            return err("the peer is not an oxwsgi daemon or server (no HELLO)");
        }
        let version = p[6];
        let queue_deadline_us = u64::from_le_bytes(p[7..15].try_into().expect("8 bytes"));
        let build = String::from_utf8_lossy(&p[15..]).into_owned();
        if version != VERSION {
            return err(format!(
                "protocol version {version} ({build}) where this build ({}) speaks {VERSION}: \
                 the server and its daemons must come from the same build (restart both)",
                Hello::ours(0).build
            ));
        }
        Ok(Hello { version, queue_deadline_us, build })
    }
}

/// DATA and FILE flag bits.
pub const FLAG_FLUSH: u8 = 1;
pub const FLAG_LAST: u8 = 2;

pub fn flags_byte(f: crate::core::WriteFlags) -> u8 {
    (f.flush as u8 * FLAG_FLUSH) | (f.last as u8 * FLAG_LAST)
}

pub fn write_flags(b: u8) -> crate::core::WriteFlags {
    crate::core::WriteFlags { flush: b & FLAG_FLUSH != 0, last: b & FLAG_LAST != 0 }
}

/// The first bytes of a DATA frame carrying `len` body bytes (they follow, uncopied).
pub fn data_prefix(len: usize, flags: crate::core::WriteFlags) -> [u8; HEADER_LEN + 1] {
    let h = header(Kind::Data, len + 1);
    [h[0], h[1], h[2], h[3], h[4], flags_byte(flags)]
}

/// A FILE payload.
pub fn encode_file(offset: u64, len: u64, flags: crate::core::WriteFlags) -> [u8; 17] {
    let mut p = [0u8; 17];
    p[..8].copy_from_slice(&offset.to_le_bytes());
    p[8..16].copy_from_slice(&len.to_le_bytes());
    p[16] = flags_byte(flags);
    p
}

pub fn decode_file(p: &[u8]) -> Result<(u64, u64, crate::core::WriteFlags), ProtocolError> {
    if p.len() != 17 {
        return err(format!("FILE payload of {} bytes (17 expected)", p.len()));
    }
    let offset = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    Ok((offset, len, write_flags(p[16])))
}

pub fn decode_read(p: &[u8]) -> Result<usize, ProtocolError> {
    let Ok(b) = <[u8; 4]>::try_from(p) else { return err("READ payload is not 4 bytes") };
    let n = u32::from_le_bytes(b) as usize;
    if n == 0 || n > MAX_PAYLOAD {
        return err(format!("READ of {n} bytes (1..={MAX_PAYLOAD})"));
    }
    Ok(n)
}

/// A FAIL payload: the status the client answers, and a message for its log.
pub fn encode_fail(status: u16, msg: &str) -> Vec<u8> {
    let mut p = status.to_le_bytes().to_vec();
    p.extend_from_slice(&msg.as_bytes()[..msg.len().min(4000)]);
    p
}

pub fn decode_fail(p: &[u8]) -> Result<(u16, String), ProtocolError> {
    if p.len() < 2 {
        return err("FAIL payload without a status");
    }
    let status = u16::from_le_bytes([p[0], p[1]]);
    if !(100..=999).contains(&status) {
        return err(format!("FAIL with status {status}"));
    }
    Ok((status, String::from_utf8_lossy(&p[2..]).into_owned()))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A HEAD payload: status u16, content length u64 (u64::MAX: none), the status line,
/// the header count u32, then each name and value.
pub fn encode_head(h: &ResponseHead, out: &mut Vec<u8>) {
    out.extend_from_slice(&h.status.to_le_bytes());
    out.extend_from_slice(&h.content_length.unwrap_or(u64::MAX).to_le_bytes());
    put_str(out, &h.status_line);
    out.extend_from_slice(&(h.headers.len() as u32).to_le_bytes());
    for (n, v) in &h.headers {
        put_str(out, n);
        put_str(out, v);
    }
}

/// Reads [`encode_head`]'s fields in order.
struct Fields<'b>(&'b [u8]);

impl<'b> Fields<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], ProtocolError> {
        if self.0.len() < n {
            return err("truncated HEAD");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn string(&mut self) -> Result<String, ProtocolError> {
        let n = self.u32()? as usize;
        match std::str::from_utf8(self.take(n)?) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => err("HEAD string is not UTF-8"),
        }
    }
}

pub fn decode_head(p: &[u8]) -> Result<ResponseHead, ProtocolError> {
    let mut f = Fields(p);
    let status = u16::from_le_bytes(f.take(2)?.try_into().expect("2 bytes"));
    let content_length = match u64::from_le_bytes(f.take(8)?.try_into().expect("8 bytes")) {
        u64::MAX => None,
        n => Some(n),
    };
    let status_line = f.string()?;
    let count = f.u32()? as usize;
    // Each header takes at least 8 bytes: a larger count is a lie, not an allocation.
    if count > f.0.len() / 8 {
        return err("HEAD header count exceeds the data");
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        headers.push((f.string()?, f.string()?));
    }
    if !f.0.is_empty() {
        return err("trailing bytes after HEAD");
    }
    // The daemon validated the head; check again what the server would pass on blindly.
    if crate::core::head::parse_status(&status_line).ok() != Some(status) {
        return err(format!("HEAD status line {status_line:?} does not match status {status}"));
    }
    for (n, v) in &headers {
        crate::core::head::check_header(n, v).map_err(|e| ProtocolError(format!("HEAD: {e}")))?;
    }
    Ok(ResponseHead { status, status_line, headers, content_length })
}

#[cfg(test)]
mod tests;

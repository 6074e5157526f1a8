//! The client's side of the daemon protocol without I/O ("sans-IO"): bytes and passed
//! descriptors go in as they arrive, protocol events come out, and the frames to send are
//! returned as bytes. An event loop (nginx's worker, docs/nginx-daemon.md) drives it with
//! a non-blocking socket; `client::proxy` remains the blocking driver Apache's threads
//! use. The rules are those of docs/daemon-protocol.md and of `client::proxy`: the same
//! order checks, the same mapping of `FAIL` statuses to outcomes and errors.
//!
//! Memory: the codec buffers what the caller gave it and not yet taken as events. A caller
//! that reads at most one buffer's worth before draining [`ClientCodec::next_event`] holds at
//! most one frame (≤ 1 MiB for a head, 256 KiB of data) plus that buffer.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use super::client::ProxyError;
use super::protocol::{self, Hello, Kind, MAX_META_PAYLOAD};
use crate::core::WriteFlags;
use crate::core::head::ResponseHead;
use crate::core::request::RequestMeta;

/// What the daemon said, in order.
#[derive(Debug)]
pub enum Event {
    /// A daemon thread took the connection: the queue wait is over (a queue timer stops;
    /// the socket timeout applies from here).
    Accepted,
    /// The application wants at most this many request body bytes: answer with one
    /// [`ClientCodec::body`] (empty: end of the body) or [`ClientCodec::body_error`].
    Read(usize),
    /// The response head.
    Head(ResponseHead),
    /// Response body bytes.
    Data(Vec<u8>, WriteFlags),
    /// A range of a file the daemon opened: the server sends it itself.
    File { fd: OwnedFd, offset: u64, len: u64, flags: WriteFlags },
    /// The response is complete.
    End,
    /// The response cannot be completed after its head: make the truncation visible.
    Abort,
    /// The application failed before its head (traceback in the daemon's log): answer 500
    /// as embedded mode does.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the daemon's HELLO (queued).
    Hello,
    /// Between HELLO and END/ABORT/FAIL.
    Running,
    /// Over: anything more is a protocol error.
    Done,
}

/// One request's conversation with a daemon.
pub struct ClientCodec {
    input: Vec<u8>,
    /// Where the unparsed bytes of `input` start.
    start: usize,
    fds: VecDeque<OwnedFd>,
    phase: Phase,
    head_sent: bool,
    /// The daemon asked for body bytes: the request can no longer be sent again.
    body_asked: bool,
    /// A READ is waiting for its answer.
    read_pending: bool,
    body_done: bool,
}

fn protocol_error(e: protocol::ProtocolError) -> ProxyError {
    ProxyError::Protocol(e.0)
}

impl ClientCodec {
    /// A codec for `meta`, and the first bytes to write: HELLO and REQUEST together (no
    /// round trip before the daemon can start). `queue_deadline_us`: microseconds since the
    /// epoch after which a daemon must refuse the request (0: none).
    pub fn start(meta: &RequestMeta<'_>, queue_deadline_us: u64) -> Result<(ClientCodec, Vec<u8>), ProxyError> {
        let hello = Hello::ours(queue_deadline_us).encode();
        let mut req = Vec::with_capacity(1024);
        meta.encode(&mut req);
        if req.len() > MAX_META_PAYLOAD {
            return Err(ProxyError::Protocol(format!(
                "request metadata of {} bytes exceeds {MAX_META_PAYLOAD}",
                req.len()
            )));
        }
        let mut out = Vec::with_capacity(2 * protocol::HEADER_LEN + hello.len() + req.len());
        protocol::frame(&mut out, Kind::Hello, &hello);
        protocol::frame(&mut out, Kind::Request, &req);
        let codec = ClientCodec {
            input: Vec::new(),
            start: 0,
            fds: VecDeque::new(),
            phase: Phase::Hello,
            head_sent: false,
            body_asked: false,
            read_pending: false,
            body_done: false,
        };
        Ok((codec, out))
    }

    /// A fresh codec for the same request on a new connection (after `RETRY`; the caller
    /// sends the same first bytes again).
    pub fn again(&self) -> ClientCodec {
        ClientCodec {
            input: Vec::new(),
            start: 0,
            fds: VecDeque::new(),
            phase: Phase::Hello,
            head_sent: false,
            body_asked: false,
            read_pending: false,
            body_done: false,
        }
    }

    /// Bytes read from the daemon.
    pub fn received(&mut self, bytes: &[u8]) {
        // Drop what was taken: only the unparsed rest (at most one partial frame) moves,
        // so the buffer never grows with the stream.
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.input.capacity()
    }

    /// Descriptors that came with those bytes (`SCM_RIGHTS`), in arrival order.
    pub fn received_fds(&mut self, fds: &mut VecDeque<OwnedFd>) {
        self.fds.append(fds);
    }

    /// Bytes received and not yet taken as events.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.start
    }

    /// Whether the head went to the server's client (an error now means an abort, not a
    /// status).
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Whether the response is over (END, ABORT or FAIL taken).
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The daemon closed the connection: what that means now.
    pub fn eof(&self) -> ProxyError {
        ProxyError::DaemonGone("the daemon closed the connection".into())
    }

    /// The next event, `Ok(None)` when more bytes are needed. Errors: the protocol was
    /// broken ([`ProxyError::Protocol`]), the daemon refused (`Queue`, `Timeout`,
    /// `Status`), or it is restarting (`Restarting`: send the request again).
    pub fn next_event(&mut self) -> Result<Option<Event>, ProxyError> {
        let Some((kind, payload, _)) = protocol::split_frame(&self.input[self.start..]).map_err(protocol_error)? else {
            return Ok(None);
        };
        let from = self.start + protocol::HEADER_LEN;
        let to = from + payload.len();
        self.start = to;
        // The payload is read in place: `event` copies only what an event keeps.
        let input = std::mem::take(&mut self.input);
        let r = self.event(kind, &input[from..to]);
        self.input = input;
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
        r.map(Some)
    }

    fn event(&mut self, kind: Kind, p: &[u8]) -> Result<Event, ProxyError> {
        let unexpected = |s: &Self| {
            Err(ProxyError::Protocol(format!(
                "unexpected {kind:?} frame from the daemon ({})",
                match s.phase {
                    Phase::Hello => "before its HELLO",
                    Phase::Done => "after the end of the response",
                    Phase::Running if s.head_sent => "after the head",
                    Phase::Running => "before the head",
                }
            )))
        };
        match (self.phase, kind) {
            (Phase::Hello, Kind::Hello) => {
                Hello::decode(p).map_err(protocol_error)?;
                self.phase = Phase::Running;
                Ok(Event::Accepted)
            }
            (Phase::Running, Kind::Read) => {
                if self.read_pending {
                    return Err(ProxyError::Protocol("a second READ before the first was answered".into()));
                }
                let n = protocol::decode_read(p).map_err(protocol_error)?;
                self.body_asked = true;
                self.read_pending = true;
                Ok(Event::Read(n))
            }
            (Phase::Running, Kind::Head) if !self.head_sent => {
                let head = protocol::decode_head(p).map_err(protocol_error)?;
                self.head_sent = true;
                Ok(Event::Head(head))
            }
            (Phase::Running, Kind::Data) if self.head_sent => {
                let Some((&flags, data)) = p.split_first() else {
                    return Err(ProxyError::Protocol("DATA frame without flags".into()));
                };
                Ok(Event::Data(data.to_vec(), protocol::write_flags(flags)))
            }
            (Phase::Running, Kind::File) if self.head_sent => {
                let (offset, len, flags) = protocol::decode_file(p).map_err(protocol_error)?;
                let fd = self
                    .fds
                    .pop_front()
                    .ok_or(ProxyError::Protocol("FILE frame without a passed descriptor".into()))?;
                Ok(Event::File { fd, offset, len, flags })
            }
            (Phase::Running, Kind::End) if self.head_sent => {
                self.phase = Phase::Done;
                Ok(Event::End)
            }
            (Phase::Running, Kind::Abort) if self.head_sent => {
                self.phase = Phase::Done;
                Ok(Event::Abort)
            }
            (Phase::Running, Kind::Retry) if !self.head_sent && !self.body_asked => {
                self.phase = Phase::Done;
                Err(ProxyError::Restarting)
            }
            (Phase::Running, Kind::Fail) if !self.head_sent => {
                self.phase = Phase::Done;
                let (status, _msg) = protocol::decode_fail(p).map_err(protocol_error)?;
                match status {
                    500 => Ok(Event::Failed),
                    503 => Err(ProxyError::Queue),
                    504 => Err(ProxyError::Timeout),
                    s => Err(ProxyError::Status(s)),
                }
            }
            _ => unexpected(self),
        }
    }

    /// The answer to a READ: `chunk` (at most the bytes asked for; empty: the body ended).
    pub fn body(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.read_pending = false;
        let chunk = if self.body_done { &[][..] } else { chunk };
        self.body_done |= chunk.is_empty();
        let mut out = Vec::with_capacity(protocol::HEADER_LEN + chunk.len());
        protocol::frame(&mut out, Kind::Body, chunk);
        out
    }

    /// The answer to a READ built in place (no copy of the chunk): `frame` is
    /// [`protocol::HEADER_LEN`] bytes of room followed by the chunk (at most the bytes
    /// asked for; none: the body ended). Writes the header into the room and returns the
    /// frame's length (the header's alone once the body ended).
    pub fn body_in_place(&mut self, frame: &mut [u8]) -> usize {
        self.read_pending = false;
        let len = if self.body_done { 0 } else { frame.len().saturating_sub(protocol::HEADER_LEN) };
        self.body_done |= len == 0;
        frame[..protocol::HEADER_LEN].copy_from_slice(&protocol::header(Kind::Body, len));
        protocol::HEADER_LEN + len
    }

    /// The answer to a READ when reading the client's body failed (the application's
    /// `wsgi.input` raises `OSError` with `msg`).
    pub fn body_error(&mut self, msg: &str) -> Vec<u8> {
        self.read_pending = false;
        self.body_done = true;
        let msg = &msg.as_bytes()[..msg.len().min(Kind::BodyError.max_payload())];
        let mut out = Vec::new();
        protocol::frame(&mut out, Kind::BodyError, msg);
        out
    }
}

#[cfg(test)]
mod tests;

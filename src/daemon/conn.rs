//! The daemon side of one connection (one request after another): the `RequestBody` that
//! pulls the body with READ frames, and the `ResponseSink` that writes HEAD/DATA/FILE/ABORT
//! frames.

use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};

/// The reading half of a connection: the request body borrows it for one request, the
/// connection keeps it (and its buffer) for the next.
pub type SharedReader = Arc<Mutex<FrameReader>>;

use super::protocol::{self, Kind, MAX_PAYLOAD};
use super::wire::{FrameReader, FrameWriter, WireError, is_gone};
use crate::core::head::ResponseHead;
use crate::core::{RequestBody, ResponseSink, SinkError, WriteFlags};

/// Small writes are gathered up to this many bytes and sent together (the head with a
/// small body, END with it: one `sendmsg` for a whole small response).
const GATHER_LIMIT: usize = 64 * 1024;
/// Writes up to this size are copied into the gather buffer; larger ones go out uncopied.
const COPY_LIMIT: usize = 16 * 1024;

/// The response half of a connection, shared by the body (READ), the sink, and the
/// request-timeout monitor (which may answer 504 from another thread).
pub struct Out {
    w: FrameWriter,
    /// Framed bytes not sent yet.
    pending: Vec<u8>,
    /// A HEAD frame reached the socket: a timeout can only abort now.
    head_on_wire: bool,
    head_queued: bool,
    /// END, ABORT or FAIL went out (or the client is gone): nothing more is sent.
    pub done: bool,
    /// Bytes at the start of `pending` that are this request's HELLO (kept when a FAIL
    /// replaces a queued head: the client expects the hello first).
    hello_pending: usize,
    /// END went out: the connection is at a frame boundary and may carry the next request.
    pub reusable: bool,
}

pub type SharedOut = Arc<Mutex<Out>>;

pub fn lock(o: &SharedOut) -> MutexGuard<'_, Out> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

impl Out {
    pub fn new(w: FrameWriter) -> Out {
        Out {
            w,
            pending: Vec::new(),
            head_on_wire: false,
            head_queued: false,
            done: false,
            hello_pending: 0,
            reusable: false,
        }
    }

    /// Start the next request of the connection: our HELLO (already framed) goes out
    /// first, at once if `now` (the client waits for it: queue-timeout), else with the
    /// first frames of the response (one write for a whole small response).
    pub fn begin(&mut self, hello: &[u8], now: bool) -> Result<(), SinkError> {
        self.head_on_wire = false;
        self.head_queued = false;
        self.done = false;
        self.reusable = false;
        self.pending.clear();
        self.pending.extend_from_slice(hello);
        self.hello_pending = hello.len();
        if now { self.send(&[], None) } else { Ok(()) }
    }

    /// Send what is pending followed by `parts`, with `pass` attached.
    fn send(&mut self, parts: &[&[u8]], pass: Option<BorrowedFd<'_>>) -> Result<(), SinkError> {
        let pending = std::mem::take(&mut self.pending);
        // Pending bytes and at most 3 parts (every send here) without allocating.
        let r = if let [a, b, c] = *parts {
            self.w.send(&[&pending, a, b, c], pass)
        } else if let [a, b] = *parts {
            self.w.send(&[&pending, a, b], pass)
        } else if let [a] = *parts {
            self.w.send(&[&pending, a], pass)
        } else {
            let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
            all.push(&pending);
            all.extend_from_slice(parts);
            self.w.send(&all, pass)
        };
        self.pending = pending;
        self.pending.clear();
        match r {
            Ok(()) => {
                self.head_on_wire |= self.head_queued;
                self.hello_pending = 0;
                Ok(())
            }
            Err(e) => {
                self.done = true;
                Err(sink_error(&e))
            }
        }
    }

    /// End the exchange with `kind` (END or ABORT) unless it already ended.
    pub fn finish(&mut self, kind: Kind) {
        if !self.done {
            let sent = self.send(&[&protocol::header(kind, 0)], None).is_ok();
            self.reusable = sent && kind == Kind::End;
            self.done = true;
        }
    }

    /// Fail the request: FAIL `status` if no head reached the client yet (a queued one is
    /// dropped), else ABORT.
    pub fn fail(&mut self, status: u16, msg: &str) {
        if self.done {
            return;
        }
        if self.head_on_wire {
            self.finish(Kind::Abort);
            return;
        }
        self.pending.truncate(self.hello_pending);
        let p = protocol::encode_fail(status, msg);
        let _ = self.send(&[&protocol::header(Kind::Fail, p.len()), &p], None);
        self.done = true;
    }

    /// request-timeout: FAIL 504 if the head is not out yet; otherwise only mark the
    /// exchange over (the watcher shuts the socket down, which the client sees as an
    /// aborted response) rather than risk blocking on a client that does not read.
    pub fn time_out(&mut self) {
        self.reusable = false;
        if self.head_on_wire {
            self.done = true;
        } else {
            self.fail(504, "request-timeout");
        }
    }

    fn check(&self) -> Result<(), SinkError> {
        if self.done { Err(SinkError::ClientGone) } else { Ok(()) }
    }

    fn gathers(&self, len: usize, flags: WriteFlags) -> bool {
        !flags.flush && len <= COPY_LIMIT && self.pending.len() + len + 6 <= GATHER_LIMIT
    }
}

fn sink_error(e: &WireError) -> SinkError {
    if is_gone(e) { SinkError::ClientGone } else { SinkError::Failed(e.to_string()) }
}

/// The response sink of a daemon request.
pub struct DaemonSink {
    pub out: SharedOut,
}

impl ResponseSink for DaemonSink {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        let mut o = lock(&self.out);
        o.check()?;
        let mut p = Vec::with_capacity(256);
        protocol::encode_head(head, &mut p);
        o.pending.extend_from_slice(&protocol::header(Kind::Head, p.len()));
        o.pending.extend_from_slice(&p);
        o.head_queued = true;
        Ok(())
    }

    fn may_block(&self, len: usize, flags: WriteFlags) -> bool {
        !lock(&self.out).gathers(len, flags)
    }

    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        let mut o = lock(&self.out);
        o.check()?;
        if o.gathers(data.len(), flags) {
            o.pending.extend_from_slice(&protocol::data_prefix(data.len(), flags));
            o.pending.extend_from_slice(data);
            return Ok(());
        }
        // Larger data goes out in frames of at most MAX_PAYLOAD, uncopied.
        let mut chunks = data.chunks(MAX_PAYLOAD).peekable();
        if chunks.peek().is_none() {
            return o.send(&[&protocol::data_prefix(0, flags)], None);
        }
        while let Some(c) = chunks.next() {
            let f = if chunks.peek().is_none() { flags } else { WriteFlags::default() };
            o.send(&[&protocol::data_prefix(c.len(), f), c], None)?;
        }
        Ok(())
    }

    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        let mut o = lock(&self.out);
        o.check()?;
        // Reopen through /proc rather than borrow the raw number: no unsafe, and the
        // passed descriptor is ours to close; offsets are explicit, so sharing the file
        // (not the open file description) is what the server needs.
        let file = std::fs::File::open(format!("/proc/self/fd/{fd}"));
        let Ok(file) = file else { return Ok(false) };
        let p = protocol::encode_file(offset, len, flags);
        use std::os::fd::AsFd;
        o.send(&[&protocol::header(Kind::File, p.len()), &p], Some(file.as_fd()))?;
        Ok(true)
    }

    fn abort(&mut self) {
        lock(&self.out).finish(Kind::Abort);
    }
}

/// The request body of a daemon request, pulled from the client with READ frames.
pub struct DaemonBody {
    pub reader: SharedReader,
    pub out: SharedOut,
    /// Bytes of the last BODY frame the caller's buffer could not take.
    leftover: Vec<u8>,
    pos: usize,
    eof: bool,
}

/// Ask for at least this much per READ (fewer round trips for small reads).
const READ_AHEAD: usize = 64 * 1024;

impl DaemonBody {
    pub fn new(reader: SharedReader, out: SharedOut) -> DaemonBody {
        DaemonBody { reader, out, leftover: Vec::new(), pos: 0, eof: false }
    }
}

impl RequestBody for DaemonBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        if self.pos < self.leftover.len() {
            let n = buf.len().min(self.leftover.len() - self.pos);
            buf[..n].copy_from_slice(&self.leftover[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        if self.eof || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().clamp(READ_AHEAD, MAX_PAYLOAD) as u32;
        {
            let mut o = lock(&self.out);
            if o.done {
                return Err("the request is over (timed out or the client went away)".into());
            }
            o.send(&[&protocol::header(Kind::Read, 4), &want.to_le_bytes()], None)
                .map_err(|_| "client went away".to_string())?;
        }
        let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        match reader.next() {
            Ok((Kind::Body, [])) => {
                self.eof = true;
                Ok(0)
            }
            Ok((Kind::Body, p)) => {
                let n = buf.len().min(p.len());
                buf[..n].copy_from_slice(&p[..n]);
                self.leftover.clear();
                self.leftover.extend_from_slice(&p[n..]);
                self.pos = 0;
                Ok(n)
            }
            Ok((Kind::BodyError, p)) => Err(format!("reading the request body failed: {}", String::from_utf8_lossy(p))),
            Ok((kind, _)) => Err(format!("daemon protocol error: {kind:?} frame where BODY was due")),
            Err(e) => Err(format!("client went away: {e}")),
        }
    }
}

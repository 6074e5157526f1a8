//! The server side of daemon mode: connect to a group's socket, forward a request, relay
//! the response into the server's own sink. Each server thread keeps its connection to
//! each group open for its next request ([`forward`]). Runs on a server thread without the
//! GIL; nothing here touches Python.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::protocol::{self, Hello, Kind, MAX_META_PAYLOAD};
use super::wire::{FrameReader, FrameWriter, WireError};
use crate::core::request::RequestMeta;
use crate::core::response::Outcome;
use crate::core::{RequestBody, ResponseSink, SinkError, WriteFlags};
use crate::ffi::unix as sys;

/// How long the server side waits for the daemon.
#[derive(Clone, Debug)]
pub struct ClientTimeouts {
    /// connect-timeout: how long to keep trying to connect.
    pub connect: Duration,
    /// socket-timeout: per read/write on the daemon socket.
    pub socket: Duration,
    /// queue-timeout: how long a request may wait for a daemon thread.
    pub queue: Option<Duration>,
}

/// Why a request could not be proxied. When one comes back after the head went out
/// (the adapter's sink got `send_head`), the adapter aborts the response; before that it
/// answers [`ProxyError::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// No daemon could be reached within the connect timeout: answer 503.
    Connect(String),
    /// queue-timeout: answer 503.
    Queue,
    /// socket-timeout or request-timeout: answer 504.
    Timeout,
    /// The daemon crashed mid-request: 502/500, or abort once the head is out.
    DaemonGone(String),
    /// The peer broke the protocol (or is another build): 500.
    Protocol(String),
    /// The daemon answered this status before any head, other than 500 (which comes back
    /// as `Ok(Outcome::Failed)`), 503 (`Queue`) and 504 (`Timeout`).
    Status(u16),
    /// The daemon process is restarting (its script changed) and did not run the request:
    /// send it again on a new connection ([`forward`] does). 503 if that is not possible.
    Restarting,
}

impl ProxyError {
    /// The status to answer when nothing was sent yet.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::Connect(_) | ProxyError::Queue | ProxyError::Restarting => 503,
            ProxyError::Timeout => 504,
            ProxyError::DaemonGone(_) => 502,
            ProxyError::Protocol(_) => 500,
            ProxyError::Status(s) => *s,
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::Connect(m) => write!(f, "cannot connect to the daemon: {m}"),
            ProxyError::Queue => f.write_str("the request waited longer than queue-timeout for a daemon thread"),
            ProxyError::Timeout => f.write_str("timed out waiting for the daemon"),
            ProxyError::DaemonGone(m) => write!(f, "the daemon process went away mid-request: {m}"),
            ProxyError::Protocol(m) => write!(f, "daemon protocol error: {m}"),
            ProxyError::Status(s) => write!(f, "the daemon answered {s}"),
            ProxyError::Restarting => f.write_str("the daemon processes kept restarting (script reloading)"),
        }
    }
}

/// Connect to the group's socket (respecting timeouts.connect / queue). A socket that is
/// missing or refuses connections (a daemon being replaced) is retried with a short
/// back-off until the connect timeout; a full listen backlog waits at most as long.
pub fn connect(socket: &Path, t: &ClientTimeouts) -> Result<UnixStream, ProxyError> {
    let deadline = Instant::now() + t.connect;
    let mut pause = Duration::from_millis(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sys::connect_unix(socket, left) {
            Ok(s) => return Ok(s),
            Err(e) => {
                use std::io::ErrorKind::*;
                let retry = matches!(e.kind(), NotFound | ConnectionRefused | WouldBlock);
                if !retry || left.is_zero() {
                    return Err(ProxyError::Connect(format!("{}: {e}", socket.display())));
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// At most this many new connections for one request whose daemon restarts (each
/// restarting process stops accepting before it answers RETRY, so one or two are usual).
const MAX_RETRIES: u32 = 64;

/// A connection to a group's daemons, kept from one request to the next.
pub struct Connection {
    writer: FrameWriter,
    reader: FrameReader,
    /// The read timeout set on the socket (set again only when it changes).
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Encoded request metadata (kept: no allocation per request).
    req: Vec<u8>,
    /// For body reads and file copies.
    buf: Vec<u8>,
    /// The last request ended cleanly (END): the connection may carry another.
    reusable: bool,
    /// The last request failed because the daemon had closed the connection without
    /// reading it (see [`unread`]): it may be sent again on a new connection.
    stale: bool,
}

impl Connection {
    pub fn new(stream: UnixStream) -> std::io::Result<Connection> {
        Ok(Connection {
            writer: FrameWriter::new(stream.try_clone()?),
            reader: FrameReader::new(stream, true),
            read_timeout: None,
            write_timeout: None,
            req: Vec::new(),
            buf: Vec::new(),
            reusable: false,
            stale: false,
        })
    }

    fn set_read_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        if self.read_timeout != Some(t) {
            self.reader.stream().set_read_timeout(Some(t))?;
            self.read_timeout = Some(t);
        }
        Ok(())
    }

    fn set_write_timeout(&mut self, t: Duration) -> std::io::Result<()> {
        if self.write_timeout != Some(t) {
            self.reader.stream().set_write_timeout(Some(t))?;
            self.write_timeout = Some(t);
        }
        Ok(())
    }
}

/// Our HELLO payload (its queue deadline, bytes 7..15, is set per request).
static OUR_HELLO: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

thread_local! {
    /// This thread's open connections, one per group socket.
    static KEPT: RefCell<Vec<(PathBuf, Connection)>> = const { RefCell::new(Vec::new()) };
}

fn take_kept(socket: &Path) -> Option<(PathBuf, Connection)> {
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        let i = k.iter().position(|(p, _)| p == socket)?;
        Some(k.swap_remove(i))
    })
}

fn keep(socket: PathBuf, c: Connection) {
    KEPT.with(|k| k.borrow_mut().push((socket, c)));
}

/// Forward the request to the group: on this thread's open connection to it if it has
/// one, else on a new one ([`connect`]); relay the response ([`proxy`]); keep the
/// connection for the thread's next request if it ended cleanly.
///
/// A kept connection may have been closed by its daemon meanwhile (the process was
/// recycled or replaced): when that connection fails before the daemon read anything of
/// the request, the request is sent again on a new connection.
/// When the daemon that took it is restarting (script reloading: it answers RETRY before
/// reading the body or sending a head), it is sent again on a new connection too, which
/// the group's other processes or the replacement accept, until the connect timeout.
/// Never returns [`ProxyError::Restarting`] unless that time or its 64 attempts ran out.
pub fn forward(
    socket: &Path,
    meta: &RequestMeta<'_>,
    body: &mut dyn RequestBody,
    sink: &mut dyn ResponseSink,
    t: &ClientTimeouts,
) -> Result<Outcome, ProxyError> {
    let deadline = Instant::now() + t.connect;
    let mut tries = 0;
    let (mut path, mut kept) = match take_kept(socket) {
        Some((p, c)) => (Some(p), Some(c)),
        None => (None, None),
    };
    loop {
        let reused = kept.is_some();
        let mut conn = match kept.take() {
            Some(c) => c,
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                let stream = connect(socket, &ClientTimeouts { connect: left, ..t.clone() })?;
                Connection::new(stream).map_err(|e| ProxyError::DaemonGone(e.to_string()))?
            }
        };
        match exchange(&mut conn, meta, body, sink, t) {
            Err(ProxyError::DaemonGone(_)) if reused && conn.stale => {}
            Err(ProxyError::Restarting) if tries < MAX_RETRIES && Instant::now() < deadline => tries += 1,
            r => {
                if conn.reusable {
                    keep(path.take().unwrap_or_else(|| socket.to_path_buf()), conn);
                }
                return r;
            }
        }
    }
}

/// Microseconds since the UNIX epoch (the queue deadline crosses processes).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn wire_error(e: WireError) -> ProxyError {
    match e {
        WireError::Timeout => ProxyError::Timeout,
        WireError::Protocol(p) => ProxyError::Protocol(p.0),
        e => ProxyError::DaemonGone(e.to_string()),
    }
}

/// Forward one request over a new connection `stream` and relay the response into
/// `sink`, pulling the body from `body` when the daemon asks. Blocking; runs on a server
/// thread WITHOUT the GIL. Returns the outcome as the core defines it
/// (`Ok(Outcome::Aborted)`: the sink was aborted here, as the core does embedded), or an
/// error the adapter maps to a status (when no head was sent yet) or an abort (after the
/// head: `proxy` does not abort the sink on an error).
pub fn proxy(
    stream: UnixStream,
    meta: &RequestMeta<'_>,
    body: &mut dyn RequestBody,
    sink: &mut dyn ResponseSink,
    t: &ClientTimeouts,
) -> Result<Outcome, ProxyError> {
    let mut conn = Connection::new(stream).map_err(|e| ProxyError::DaemonGone(e.to_string()))?;
    exchange(&mut conn, meta, body, sink, t)
}

/// Whether an error before any frame of the answer means the daemon closed the
/// connection without reading the request: a write to a closed socket (EPIPE), or a
/// read of a socket closed with our request still unread (ECONNRESET). A daemon that
/// read the request and then died gives a plain end of stream instead.
fn unread(e: &WireError) -> bool {
    matches!(e, WireError::Io(e) if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset))
}

/// One request over `conn` (new or kept): [`proxy`]'s work. Afterwards `conn.reusable`
/// says whether it may carry another request, `conn.stale` whether a `DaemonGone` came
/// from a connection the daemon closed without reading the request.
pub fn exchange(
    conn: &mut Connection,
    meta: &RequestMeta<'_>,
    body: &mut dyn RequestBody,
    sink: &mut dyn ResponseSink,
    t: &ClientTimeouts,
) -> Result<Outcome, ProxyError> {
    conn.reusable = false;
    conn.stale = false;
    let io = |e: std::io::Error| ProxyError::DaemonGone(e.to_string());
    conn.set_read_timeout(t.queue.unwrap_or(t.socket)).map_err(io)?;
    conn.set_write_timeout(t.socket).map_err(io)?;

    // HELLO and REQUEST in one write: no round trip before the daemon can start.
    let ours = OUR_HELLO.get_or_init(|| Hello::ours(0).encode());
    let mut buf = [0u8; 300]; // a hello is at most 15 + 256 bytes
    let hello = &mut buf[..ours.len()];
    hello.copy_from_slice(ours);
    if let Some(q) = t.queue {
        hello[7..15].copy_from_slice(&(now_us() + q.as_micros() as u64).to_le_bytes());
    }
    let hello = &*hello;
    let mut req = std::mem::take(&mut conn.req);
    req.clear();
    meta.encode(&mut req);
    if req.len() > MAX_META_PAYLOAD {
        return Err(ProxyError::Protocol(format!(
            "request metadata of {} bytes exceeds {MAX_META_PAYLOAD}",
            req.len()
        )));
    }
    let parts: [&[u8]; 4] =
        [&protocol::header(Kind::Hello, hello.len()), hello, &protocol::header(Kind::Request, req.len()), &req];
    let sent = conn.writer.send(&parts, None);
    conn.req = req;
    match sent {
        Ok(()) => {}
        Err(e) => {
            conn.stale = unread(&e);
            return Err(wire_error(e));
        }
    }

    // The daemon says hello when a thread takes the request (at once if we have a
    // queue-timeout, else possibly together with the response): until then the request
    // is queued, and waiting longer than queue-timeout is a 503.
    match conn.reader.next() {
        Ok((Kind::Hello, p)) => {
            Hello::check(p).map_err(|e| ProxyError::Protocol(e.0))?;
        }
        Ok((kind, _)) => return Err(ProxyError::Protocol(format!("{kind:?} frame where the daemon's HELLO was due"))),
        Err(WireError::Timeout) if t.queue.is_some() => return Err(ProxyError::Queue),
        Err(e) => {
            conn.stale = unread(&e);
            return Err(wire_error(e));
        }
    }
    conn.set_read_timeout(t.socket).map_err(io)?;

    let buf = std::mem::take(&mut conn.buf);
    let mut relay = Relay { sink, head_sent: false, body_asked: false, body_done: false, buf };
    let r = relay_frames(conn, &mut relay, body);
    conn.buf = relay.buf;
    r
}

/// The frames after the daemon's HELLO, until the end of the response.
fn relay_frames(
    conn: &mut Connection,
    relay: &mut Relay<'_>,
    body: &mut dyn RequestBody,
) -> Result<Outcome, ProxyError> {
    let Connection { reader, writer, .. } = conn;
    loop {
        let (kind, p) = reader.next().map_err(wire_error)?;
        let step = match kind {
            Kind::Read => relay.read(protocol::decode_read(p).map_err(|e| ProxyError::Protocol(e.0))?, body),
            Kind::Head => relay.head(p),
            Kind::Data => relay.data(p),
            Kind::File => {
                let payload = p.to_vec();
                match reader.take_fd() {
                    Some(fd) => relay.file(&payload, File::from(fd)),
                    None => Err(ProxyError::Protocol("FILE frame without a passed descriptor".into())),
                }
            }
            Kind::End if relay.head_sent => {
                conn.reusable = reader.buffered() == 0;
                return Ok(Outcome::Complete);
            }
            Kind::Abort if relay.head_sent => {
                // As `Outcome::Aborted` means in embedded mode: the sink was aborted, so
                // the client sees the response truncated.
                relay.sink.abort();
                return Ok(Outcome::Aborted);
            }
            // Nothing of the request was consumed: the caller may send it again.
            Kind::Retry if !relay.head_sent && !relay.body_asked => return Err(ProxyError::Restarting),
            Kind::Fail if !relay.head_sent => {
                let (status, _msg) = protocol::decode_fail(p).map_err(|e| ProxyError::Protocol(e.0))?;
                return match status {
                    500 => Ok(Outcome::Failed),
                    503 => Err(ProxyError::Queue),
                    504 => Err(ProxyError::Timeout),
                    s => Err(ProxyError::Status(s)),
                };
            }
            kind => Err(ProxyError::Protocol(format!(
                "unexpected {kind:?} frame from the daemon ({} the head)",
                if relay.head_sent { "after" } else { "before" }
            ))),
        };
        match step? {
            Step::Continue(Some(frame)) => writer.send(&[&frame], None).map_err(wire_error)?,
            Step::Continue(None) => {}
            Step::Done(outcome) => return Ok(outcome),
        }
    }
}

enum Step {
    /// Go on; send this (framed) answer to the daemon first.
    Continue(Option<Vec<u8>>),
    /// The request is over on our side (the client went away).
    Done(Outcome),
}

/// The response being relayed into the server's sink.
struct Relay<'s> {
    sink: &'s mut dyn ResponseSink,
    head_sent: bool,
    /// The daemon asked for body bytes (the request can no longer be sent again).
    body_asked: bool,
    body_done: bool,
    /// Reused for body reads and file copies.
    buf: Vec<u8>,
}

impl Relay<'_> {
    /// The daemon wants at most `n` body bytes: answer with one read's worth.
    fn read(&mut self, n: usize, body: &mut dyn RequestBody) -> Result<Step, ProxyError> {
        self.body_asked = true;
        let mut frame = Vec::with_capacity(protocol::HEADER_LEN + n);
        if self.body_done {
            protocol::frame(&mut frame, Kind::Body, b"");
            return Ok(Step::Continue(Some(frame)));
        }
        frame.extend_from_slice(&protocol::header(Kind::Body, 0));
        frame.resize(protocol::HEADER_LEN + n, 0);
        match body.read(&mut frame[protocol::HEADER_LEN..]) {
            Ok(got) => {
                self.body_done = got == 0;
                frame.truncate(protocol::HEADER_LEN + got);
                frame[..protocol::HEADER_LEN].copy_from_slice(&protocol::header(Kind::Body, got));
            }
            Err(msg) => {
                self.body_done = true;
                frame.clear();
                let msg = &msg.as_bytes()[..msg.len().min(Kind::BodyError.max_payload())];
                protocol::frame(&mut frame, Kind::BodyError, msg);
            }
        }
        Ok(Step::Continue(Some(frame)))
    }

    fn head(&mut self, p: &[u8]) -> Result<Step, ProxyError> {
        if self.head_sent {
            return Err(ProxyError::Protocol("a second HEAD frame".into()));
        }
        let head = protocol::decode_head(p).map_err(|e| ProxyError::Protocol(e.0))?;
        self.head_sent = true;
        match self.sink.send_head(&head) {
            Ok(()) => Ok(Step::Continue(None)),
            Err(SinkError::ClientGone) => Ok(Step::Done(Outcome::ClientGone)),
            // The server refused the head (nothing reached the client): a 500.
            Err(SinkError::Failed(_)) => Ok(Step::Done(Outcome::Failed)),
        }
    }

    fn sunk(&mut self, r: Result<(), SinkError>) -> Result<Step, ProxyError> {
        match r {
            Ok(()) => Ok(Step::Continue(None)),
            Err(SinkError::ClientGone) => Ok(Step::Done(Outcome::ClientGone)),
            Err(SinkError::Failed(_)) => {
                self.sink.abort();
                Ok(Step::Done(Outcome::Aborted))
            }
        }
    }

    fn data(&mut self, p: &[u8]) -> Result<Step, ProxyError> {
        let Some((&flags, data)) = p.split_first() else {
            return Err(ProxyError::Protocol("DATA frame without flags".into()));
        };
        if !self.head_sent {
            return Err(ProxyError::Protocol("DATA before HEAD".into()));
        }
        let r = self.sink.write(data, protocol::write_flags(flags));
        self.sunk(r)
    }

    /// A file the daemon opened: the server sends it itself (sendfile) or, if its sink
    /// cannot, copies it in bounded pieces.
    fn file(&mut self, p: &[u8], file: File) -> Result<Step, ProxyError> {
        let (offset, len, flags) = protocol::decode_file(p).map_err(|e| ProxyError::Protocol(e.0))?;
        if !self.head_sent {
            return Err(ProxyError::Protocol("FILE before HEAD".into()));
        }
        match self.sink.send_file(file.as_raw_fd(), offset, len, flags) {
            Ok(true) => return Ok(Step::Continue(None)),
            Ok(false) => {}
            Err(e) => return self.sunk(Err(e)),
        }
        self.buf.resize(64 * 1024, 0);
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(self.buf.len() as u64) as usize;
            let n = match file.read_at(&mut self.buf[..want], offset + done) {
                Ok(0) | Err(_) => {
                    // The file shrank under us: the response cannot be completed.
                    self.sink.abort();
                    return Ok(Step::Done(Outcome::Aborted));
                }
                Ok(n) => n,
            };
            done += n as u64;
            let f = if done == len { flags } else { WriteFlags::default() };
            let buf = std::mem::take(&mut self.buf);
            let r = self.sink.write(&buf[..n], f);
            self.buf = buf;
            if let s @ Step::Done(_) = self.sunk(r)? {
                return Ok(s);
            }
        }
        Ok(Step::Continue(None))
    }
}

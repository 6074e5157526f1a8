//! The worker's side of daemon mode: one request's connection to its group's daemons,
//! on the event loop, without blocking and without a thread-pool task
//! (docs/nginx-daemon.md, "The workers' client").
//!
//! A [`DaemonConn`] owns the non-blocking socket (an nginx connection, so its events come
//! from the event loop like any upstream's), the protocol state ([`ClientCodec`]), the
//! bytes still to write to the daemon, and the request body nginx read. The request
//! (request.rs) asks it for the next protocol event with [`DaemonConn::pump`]; while the
//! client has not taken the response so far, the request pauses it, and the daemon's
//! writes block in the daemon (backpressure), never growing memory here.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::daemon_pool;
use super::io::NgxBody;
use super::ngx::{self, EventHandler, PeerConn};
use crate::core::RequestBody;
use crate::core::request::RequestMeta;
use crate::daemon::client::{ClientTimeouts, ProxyError, now_us};
use crate::daemon::codec::{ClientCodec, Event};
use crate::daemon::protocol::HEADER_LEN;
use crate::ffi::ngx::ngx_log_t;
use crate::ffi::unix::recv_msg;

/// Where a location's requests go: the group, its socket, how long to wait.
#[derive(Clone, Debug)]
pub struct Target {
    pub group: String,
    pub socket: PathBuf,
    pub timeouts: ClientTimeouts,
}

/// At most this many request body bytes per `BODY` frame (a short answer to a `READ` is
/// valid; the application's read asks again).
const BODY_CHUNK: usize = 64 * 1024;
/// At most this many new connections for a request whose daemon restarts (`RETRY`).
const MAX_RETRIES: u32 = 64;

/// What the request must do next.
pub enum Next {
    /// A protocol event for the request (head, data, file, end, abort, failure).
    Event(Event),
    /// Nothing now: an event or the timer (in this many ms) will call again.
    Wait(u64),
}

enum Phase {
    /// Not connected yet: try again at the time (the socket is missing, refuses, or its
    /// backlog is full: a daemon being replaced).
    Connecting { retry_at: Instant, pause: Duration },
    /// Connected: the conversation.
    Talking,
}

pub struct DaemonConn {
    target: Target,
    /// The first bytes (HELLO + REQUEST), kept to send again after a `RETRY`; written
    /// from here (one `send` for the whole head), `start_sent` of them so far.
    start: Vec<u8>,
    start_sent: usize,
    /// The connection came from the worker's kept ones (daemon_pool.rs).
    reused: bool,
    /// Something of the answer arrived on this connection: it can no longer be sent
    /// again on another one.
    heard: bool,
    /// Connect anew (a kept connection turned out closed): no kept one.
    fresh_only: bool,
    codec: ClientCodec,
    conn: Option<PeerConn>,
    /// Frames to send after the head (`BODY` answers), `out_sent` of them so far.
    out: Vec<u8>,
    out_sent: usize,
    body: NgxBody,
    phase: Phase,
    /// When the current wait fails, and what that means.
    deadline: Instant,
    waiting: Wait,
    connect_deadline: Instant,
    retries: u32,
    fds: VecDeque<OwnedFd>,
    buf: Vec<u8>,
    log: *mut ngx_log_t,
    data: *mut c_void,
    handler: EventHandler,
}

/// What the deadline stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// connect_timeout: 503.
    Connect,
    /// queue_timeout, before a daemon thread said hello: 503.
    Queue,
    /// socket_timeout, since the last byte from the daemon: 504.
    Socket,
}

impl Wait {
    fn error(self) -> ProxyError {
        match self {
            Wait::Connect => ProxyError::Connect("no daemon accepted the connection within connect_timeout".into()),
            Wait::Queue => ProxyError::Queue,
            Wait::Socket => ProxyError::Timeout,
        }
    }
}

impl DaemonConn {
    /// Prepare the conversation; nothing is connected yet ([`DaemonConn::pump`] does).
    ///
    /// # Safety
    /// `log` must outlive the connection and `data` stay valid for `handler` while it
    /// lives (the request's context; the request drops this first).
    pub unsafe fn new(
        target: Target,
        meta: &RequestMeta<'_>,
        body: NgxBody,
        log: *mut ngx_log_t,
        data: *mut c_void,
        handler: EventHandler,
    ) -> Result<DaemonConn, ProxyError> {
        let deadline_us = target.timeouts.queue.map_or(0, |q| now_us() + q.as_micros() as u64);
        let (codec, start) = ClientCodec::start(meta, deadline_us)?;
        let now = Instant::now();
        Ok(DaemonConn {
            connect_deadline: now + target.timeouts.connect,
            deadline: now + target.timeouts.connect,
            waiting: Wait::Connect,
            target,
            codec,
            out: Vec::new(),
            out_sent: 0,
            start,
            start_sent: 0,
            reused: false,
            heard: false,
            fresh_only: false,
            conn: None,
            body,
            phase: Phase::Connecting { retry_at: now, pause: Duration::from_millis(5) },
            retries: 0,
            fds: VecDeque::new(),
            buf: daemon_pool::buffer(),
            log,
            data,
            handler,
        })
    }

    pub fn group(&self) -> &str {
        &self.target.group
    }

    fn wait(&self) -> Next {
        Next::Wait(self.deadline.saturating_duration_since(Instant::now()).as_millis().max(1) as u64)
    }

    /// Try to connect; `Ok(false)`: not yet (the retry is timed).
    fn connect(&mut self) -> Result<bool, ProxyError> {
        let Phase::Connecting { retry_at, pause } = self.phase else { return Ok(true) };
        let now = Instant::now();
        if now < retry_at {
            return Ok(false);
        }
        if !self.fresh_only {
            // SAFETY: log and data outlive the connection (the invariant of `new`).
            if let Some(conn) = unsafe { daemon_pool::take(&self.target.socket, self.log, self.data, self.handler) } {
                self.talk(conn, true, now);
                return Ok(true);
            }
        }
        match ngx::unix_connect_nonblocking(&self.target.socket) {
            Ok(fd) => {
                // SAFETY: log and data outlive the connection (the invariant of `new`).
                let conn = unsafe { PeerConn::new(fd, self.log, self.data, self.handler) }
                    .ok_or_else(|| ProxyError::Connect("nginx has no free connection for the daemon socket".into()))?;
                self.talk(conn, false, now);
                Ok(true)
            }
            Err(e)
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::WouldBlock) =>
            {
                if now >= self.connect_deadline {
                    return Err(ProxyError::Connect(format!("{}: {e}", self.target.socket.display())));
                }
                self.phase =
                    Phase::Connecting { retry_at: now + pause, pause: (pause * 2).min(Duration::from_millis(100)) };
                self.deadline = (now + pause).min(self.connect_deadline);
                Ok(false)
            }
            Err(e) => Err(ProxyError::Connect(format!("{}: {e}", self.target.socket.display()))),
        }
    }

    /// Start the conversation on `conn` (new, or kept: `reused`).
    fn talk(&mut self, conn: PeerConn, reused: bool, now: Instant) {
        self.conn = Some(conn);
        self.reused = reused;
        self.heard = false;
        self.start_sent = 0;
        self.phase = Phase::Talking;
        // Until a daemon thread says hello the request is queued.
        let socket = self.target.timeouts.socket;
        (self.deadline, self.waiting) = match self.target.timeouts.queue {
            Some(q) => (now + q, Wait::Queue),
            None => (now + socket, Wait::Socket),
        };
    }

    /// A kept connection failed before anything of the answer arrived: the daemon had
    /// closed it (EPIPE on the write) or closed it with the request unread (ECONNRESET
    /// on the read); it ran nothing. Send the request again on a new connection.
    fn stale(&mut self, e: std::io::Error, doing: &str) -> Result<(), ProxyError> {
        let unread = matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset);
        if !(self.reused && !self.heard && unread) {
            return Err(ProxyError::DaemonGone(format!("{doing} the daemon: {e}")));
        }
        self.codec = self.codec.again();
        self.conn = None;
        self.reused = false;
        self.out.clear();
        self.out_sent = 0;
        self.fds.clear();
        self.fresh_only = true;
        self.phase = Phase::Connecting { retry_at: Instant::now(), pause: Duration::from_millis(5) };
        (self.deadline, self.waiting) = (self.connect_deadline, Wait::Connect);
        Ok(())
    }

    /// The response ended with `END`: give the connection to the worker's kept ones when
    /// nothing of it is left over (anything else closes it with this).
    pub fn keep(mut self) {
        let clean = self.codec.done()
            && self.codec.buffered() == 0
            && self.out_sent == self.out.len()
            && self.fds.is_empty()
            && self.start_sent == self.start.len();
        if let Some(conn) = self.conn.take().filter(|_| clean) {
            daemon_pool::give(&self.target.socket, conn);
        }
    }

    /// Start over on a new connection (the daemon answered `RETRY`: it is restarting and
    /// did not run the request). The same first bytes go again.
    fn restart(&mut self) -> Result<(), ProxyError> {
        self.retries += 1;
        if self.retries > MAX_RETRIES || Instant::now() >= self.connect_deadline {
            return Err(ProxyError::Restarting);
        }
        self.codec = self.codec.again();
        self.conn = None;
        self.reused = false;
        self.out.clear();
        self.out_sent = 0;
        self.fds.clear();
        self.phase = Phase::Connecting { retry_at: Instant::now(), pause: Duration::from_millis(5) };
        (self.deadline, self.waiting) = (self.connect_deadline, Wait::Connect);
        Ok(())
    }

    /// Write what is pending to the daemon; `Ok(true)` when all of it went.
    /// `Err` of `Ok`: a kept connection turned out closed; start over.
    fn flush(&mut self) -> Result<Result<bool, ()>, ProxyError> {
        let Some(conn) = &self.conn else { return Ok(Ok(false)) };
        loop {
            let a = if self.start_sent < self.start.len() {
                &self.start[self.start_sent..]
            } else if self.out_sent < self.out.len() {
                &self.out[self.out_sent..]
            } else {
                self.out.clear();
                self.out_sent = 0;
                return Ok(Ok(true));
            };
            match ngx::send_nonblocking(conn.fd(), a) {
                Ok(n) if self.start_sent < self.start.len() => self.start_sent += n,
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.write_full();
                    return Ok(Ok(false));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stale(e, "writing to")?;
                    return Ok(Err(()));
                }
            }
        }
    }

    /// The timer fired: has the current wait run out?
    pub fn expired(&self) -> Option<ProxyError> {
        (Instant::now() >= self.deadline && !matches!(self.phase, Phase::Connecting { .. }))
            .then(|| self.waiting.error())
    }

    /// Advance the conversation as far as it goes without blocking: connect, write,
    /// answer the daemon's `READ`s from the body, read, and return the next event for the
    /// request. `paused`: the client has not taken the response so far; nothing more is
    /// read from the daemon (pending writes still go).
    pub fn pump(&mut self, paused: bool) -> Result<Next, ProxyError> {
        loop {
            if matches!(self.phase, Phase::Connecting { .. }) && !self.connect()? {
                return Ok(self.wait());
            }
            if self.flush()?.is_err() {
                continue;
            }
            match self.codec.next_event() {
                Err(ProxyError::Restarting) => {
                    self.restart()?;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(Some(Event::Accepted)) => {
                    (self.deadline, self.waiting) = (Instant::now() + self.target.timeouts.socket, Wait::Socket);
                    continue;
                }
                Ok(Some(Event::Read(n))) => {
                    // The chunk is read straight into the frame after its header's room.
                    // At most BODY_CHUNK (the daemon asks up to 256 KiB): the frame fits
                    // the socket's send buffer, and a request holds at most that much.
                    let base = self.out.len();
                    self.out.resize(base + HEADER_LEN + n.min(BODY_CHUNK), 0);
                    match self.body.read(&mut self.out[base + HEADER_LEN..]) {
                        Ok(got) => {
                            let len = self.codec.body_in_place(&mut self.out[base..base + HEADER_LEN + got]);
                            self.out.truncate(base + len);
                        }
                        Err(msg) => {
                            self.out.truncate(base);
                            let frame = self.codec.body_error(&msg);
                            self.out.extend_from_slice(&frame);
                        }
                    }
                    continue;
                }
                Ok(Some(ev)) => return Ok(Next::Event(ev)),
                Ok(None) => {}
            }
            if paused {
                return Ok(Next::Wait(0));
            }
            let Some(conn) = &self.conn else { return Ok(self.wait()) };
            if !conn.read_ready() {
                // Nothing arrived since the last read found the socket empty (or since
                // the request was written): the next read event calls again.
                return Ok(self.wait());
            }
            match recv_msg(conn.fd(), &mut self.buf, &mut self.fds) {
                Ok(0) => return Err(self.codec.eof()),
                Ok(n) => {
                    self.heard = true;
                    self.codec.received(&self.buf[..n]);
                    self.codec.received_fds(&mut self.fds);
                    if self.waiting == Wait::Socket {
                        // Progress: the socket timeout counts from the last byte received.
                        self.deadline = Instant::now() + self.target.timeouts.socket;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.read_drained();
                    return Ok(self.wait());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.stale(e, "reading from")?,
            }
        }
    }
}

impl Drop for DaemonConn {
    fn drop(&mut self) {
        daemon_pool::give_buffer(std::mem::take(&mut self.buf));
    }
}

//! The daemon process's serving loop: `threads` threads take events from one epoll
//! instance -- a new connection on the group's socket, or the next request on an idle
//! persistent connection -- and serve one request each time; the calling thread watches
//! the recycling limits, request timeouts and the GIL, and returns why the process should
//! be replaced.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::conn::{DaemonBody, DaemonSink, Out, SharedOut, SharedReader, lock};
use super::protocol::{self, Hello, Kind};
use super::wire::{FrameReader, FrameWriter};
use super::{Exit, GroupSettings, sys};
use crate::core::request::RequestMeta;
use crate::core::script;
use crate::core::worker::{Channel, Worker};
use crate::core::{Level, LogSink};
use crate::ffi::epoll::Epoll;

pyo3::create_exception!(
    oxwsgi,
    RequestTimeout,
    pyo3::exceptions::PyBaseException,
    "Raised in a daemon-mode request that ran longer than request-timeout (a BaseException, so that `except Exception` does not swallow it)."
);

/// How long an interrupted request may take to stop before the process is recycled.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// How often the watcher and the accepting threads look at their flags.
const TICK: Duration = Duration::from_millis(50);

/// Asks [`serve_with`] to stop (tests; `serve` uses SIGTERM/SIGINT).
#[derive(Default)]
pub struct Control {
    stop: AtomicBool,
}

impl Control {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A request in flight, as the watcher sees it.
struct InFlight {
    started: Instant,
    /// CPython's id of the thread running it.
    thread: u64,
    out: SharedOut,
    /// To shut the connection down when the writer is blocked.
    sock: Arc<UnixStream>,
    what: String,
    timed_out: Option<Instant>,
}

struct State {
    settings: GroupSettings,
    log: Arc<dyn LogSink>,
    worker: &'static Worker,
    control: Arc<Control>,
    reason: Mutex<Option<Exit>>,
    stopping: AtomicBool,
    /// A script changed: every request this process still takes is answered RETRY.
    reloading: AtomicBool,
    /// Requests taken (maximum-requests).
    requests: AtomicU64,
    next_id: AtomicU64,
    /// The listener and every idle connection, one-shot: one thread per event.
    epoll: Epoll,
    /// Idle persistent connections by epoll key (a thread takes one out to serve it).
    idle: Mutex<HashMap<u64, Conn>>,
    next_conn: AtomicU64,
    /// Our HELLO, framed, sent before each response.
    hello: Vec<u8>,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    /// Threads accepting or serving (a thread counts from accept to the request's end).
    busy: AtomicUsize,
    /// Accepting threads still running.
    running: AtomicUsize,
    /// The end of the last request that counts as activity; `None` before the first:
    /// as in mod_wsgi, the inactivity countdown starts with the first activity, so a
    /// process nobody uses is not restarted over and over.
    last_activity: Mutex<Option<Instant>>,
    gil_beat: Mutex<Instant>,
    context_prefix: String,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// Stop accepting for `why` (the first reason wins), logged with group and pid.
    fn stop(&self, why: Exit, detail: &str) {
        let mut r = locked(&self.reason);
        if r.is_none() {
            self.log.log(Level::Notice, &format!("{}: {detail}; stopping ({why:?})", self.context_prefix));
            *r = Some(why);
        }
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Serve with a worker whose Python already runs (`serve` starts it; tests share one
/// interpreter between groups). Returns when a recycling limit, a stuck request, a
/// deadlock or a stop request says so, after in-flight requests finished (at most
/// `graceful_timeout`).
pub fn serve_with(
    settings: &GroupSettings,
    listener: UnixListener,
    log: Arc<dyn LogSink>,
    worker: &'static Worker,
    control: Arc<Control>,
) -> Exit {
    // Accepting threads poll, then accept without blocking: another process of the group
    // may take the connection first, and a blocked accept would not see a stop request.
    if let Err(e) = listener.set_nonblocking(true) {
        return Exit::Failed(format!("listener: {e}"));
    }
    let now = Instant::now();
    let epoll = match Epoll::new().and_then(|e| e.add(listener.as_fd(), LISTENER).map(|()| e)) {
        Ok(e) => e,
        Err(e) => return Exit::Failed(format!("epoll: {e}")),
    };
    let mut hello = Vec::new();
    protocol::frame(&mut hello, Kind::Hello, &Hello::ours(0).encode());
    let state = Arc::new(State {
        settings: settings.clone(),
        log: log.clone(),
        worker,
        control,
        reason: Mutex::new(None),
        stopping: AtomicBool::new(false),
        reloading: AtomicBool::new(false),
        requests: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        epoll,
        idle: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
        hello,
        in_flight: Mutex::new(HashMap::new()),
        busy: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        last_activity: Mutex::new(None),
        gil_beat: Mutex::new(now),
        context_prefix: format!("daemon group {} (pid {})", settings.name, std::process::id()),
    });
    let listener = Arc::new(listener);
    for i in 0..settings.threads.max(1) {
        let (s, l) = (state.clone(), listener.clone());
        s.running.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new().name(format!("oxwsgi-{}-{i}", settings.name)).spawn(move || {
            serve_loop(&s, &l);
            s.running.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            state.running.fetch_sub(1, Ordering::SeqCst);
            state.stop(Exit::Failed(format!("cannot start a thread: {e}")), "thread start failed");
        }
    }
    if let Some(dt) = settings.deadlock_timeout {
        let s = state.clone();
        let _ = thread::Builder::new().name("oxwsgi-gil-beat".into()).spawn(move || gil_beat(&s, dt));
    }
    watch(&state);
    // Idle connections are closed now: a client that sent a request on one sees the
    // connection reset (its request unread) and sends it again on a new connection.
    drop(std::mem::take(&mut *locked(&state.idle)));
    drain(&state);
    let reason = locked(&state.reason).clone();
    reason.unwrap_or(Exit::Signal)
}

/// Wait for in-flight requests to finish, at most graceful_timeout. Requests that timed
/// out and could not be interrupted are not waited for.
fn drain(state: &State) {
    let deadline = Instant::now() + state.settings.graceful_timeout;
    loop {
        let stuck = locked(&state.in_flight).values().filter(|f| f.timed_out.is_some()).count();
        if state.running.load(Ordering::SeqCst) <= stuck {
            return;
        }
        if Instant::now() >= deadline {
            let n = locked(&state.in_flight).len();
            state.log.log(
                Level::Warning,
                &format!(
                    "{}: {n} request(s) still running after graceful-timeout; exiting anyway",
                    state.context_prefix
                ),
            );
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The epoll key of the listening socket (connections get 1, 2, ...).
const LISTENER: u64 = 0;

/// A connection from the server: one request after another.
struct Conn {
    key: u64,
    sock: Arc<UnixStream>,
    reader: SharedReader,
    out: SharedOut,
    /// Added to the epoll instance (after its first request).
    watched: bool,
    /// The request metadata of the current request (kept: no allocation per request).
    meta_buf: Vec<u8>,
    /// The last request came from where `WSGIIgnoreActivity On` applies: it does not
    /// count as activity for `inactivity-timeout` (mod_wsgi's rule, e.g. for probes).
    ignore_activity: bool,
}

impl Conn {
    fn new(state: &State, stream: UnixStream) -> std::io::Result<Conn> {
        stream.set_nonblocking(false)?;
        let w = stream.try_clone()?;
        let r = stream.try_clone()?;
        Ok(Conn {
            key: state.next_conn.fetch_add(1, Ordering::Relaxed),
            sock: Arc::new(stream),
            reader: Arc::new(Mutex::new(FrameReader::new(r, false))),
            out: Arc::new(Mutex::new(Out::new(FrameWriter::new(w)))),
            watched: false,
            meta_buf: Vec::new(),
            ignore_activity: false,
        })
    }
}

fn serve_loop(state: &State, listener: &UnixListener) {
    crate::ffi::python::keep_thread_state();
    while !state.stopping() {
        let key = match state.epoll.wait_one(TICK) {
            Ok(Some(k)) => k,
            Ok(None) => continue,
            Err(e) => {
                state.log.log(Level::Error, &format!("{}: epoll_wait: {e}", state.context_prefix));
                thread::sleep(TICK);
                continue;
            }
        };
        state.busy.fetch_add(1, Ordering::SeqCst);
        let conn = if key == LISTENER {
            let accepted = listener.accept();
            // Another thread may take the next connection while this one serves.
            if let Err(e) = state.epoll.rearm(listener.as_fd(), LISTENER) {
                state.log.log(Level::Error, &format!("{}: epoll: {e}", state.context_prefix));
            }
            match accepted.and_then(|(s, _)| Conn::new(state, s)) {
                Ok(c) => Some(c),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => {
                    state.log.log(Level::Error, &format!("{}: accept: {e}", state.context_prefix));
                    thread::sleep(TICK);
                    None
                }
            }
        } else {
            // None: closed by a stop meanwhile.
            locked(&state.idle).remove(&key)
        };
        if let Some(mut conn) = conn {
            // While it runs the process is busy, which the idle check sees anyway; when
            // it ends, the request counts as activity unless it was to be ignored.
            let reusable = handle(state, &mut conn);
            if !conn.ignore_activity {
                *locked(&state.last_activity) = Some(Instant::now());
            }
            if reusable {
                park(state, conn);
            }
        }
        state.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Put a connection whose request ended cleanly back among the idle ones and watch it
/// for its next request; dropped (closed) instead if the process is stopping.
fn park(state: &State, mut conn: Conn) {
    let mut idle = locked(&state.idle);
    if state.stopping() {
        return;
    }
    let fd = conn.sock.as_fd();
    let r = if conn.watched { state.epoll.rearm(fd, conn.key) } else { state.epoll.add(fd, conn.key) };
    if let Err(e) = r {
        state.log.log(Level::Error, &format!("{}: epoll: {e}", state.context_prefix));
        state.epoll.remove(fd);
        return;
    }
    conn.watched = true;
    // Its event cannot be taken before it is in the map: takers lock the map first.
    idle.insert(conn.key, conn);
}

/// One request of a connection: hellos, the request, the application, the end frame.
/// Returns true if the connection may carry another request.
fn handle(state: &State, conn: &mut Conn) -> bool {
    let ctx = &state.context_prefix;
    let Conn { out, reader: shared_reader, sock, meta_buf, ignore_activity, .. } = conn;
    *ignore_activity = false;
    let out = &*out;
    let mut reader = shared_reader.lock().unwrap_or_else(|p| p.into_inner());
    // Our HELLO went into `out` (it precedes anything else we send for this request).
    let begun = std::cell::Cell::new(false);
    let refuse = |status: u16, msg: String| {
        state.log.log(Level::Error, &format!("{ctx}: {msg}"));
        let mut o = lock(out);
        if !begun.get() {
            let _ = o.begin(&state.hello, false);
        }
        o.fail(status, &msg);
        false
    };
    let deadline = match reader.next() {
        Ok((Kind::Hello, p)) => match Hello::check(p) {
            Ok(deadline) => deadline,
            Err(e) => return refuse(500, e.to_string()),
        },
        // The server closed an idle connection.
        Err(super::wire::WireError::Closed) => return false,
        Ok((kind, _)) => return refuse(500, format!("daemon protocol error: {kind:?} frame where HELLO was due")),
        Err(e) => return refuse(500, format!("reading the client's HELLO: {e}")),
    };
    if deadline != 0 && super::client::now_us() > deadline {
        let waited = "the request waited longer than queue-timeout for a daemon thread";
        return refuse(503, format!("{waited}; answering 503"));
    }
    // Our hello tells a client with a queue-timeout that a thread took its request: at
    // once then; otherwise it rides with the response.
    begun.set(true);
    if lock(out).begin(&state.hello, deadline != 0).is_err() {
        return false;
    }
    match reader.next() {
        Ok((Kind::Request, p)) => {
            meta_buf.clear();
            meta_buf.extend_from_slice(p);
        }
        Ok((kind, _)) => return refuse(500, format!("daemon protocol error: {kind:?} frame where REQUEST was due")),
        Err(e) => return refuse(500, format!("reading the request: {e}")),
    };
    drop(reader);
    let mut meta = match RequestMeta::decode(meta_buf) {
        Ok(m) => m,
        Err(e) => return refuse(500, e.to_string()),
    };
    *ignore_activity = meta.server_vars.iter().any(|(k, v)| &**k == b"mod_wsgi.ignore_activity" && &**v == b"1");
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(max) = state.settings.maximum_requests.filter(|&m| n >= m) {
        state.stop(Exit::MaximumRequests, &format!("maximum-requests ({max}) reached"));
    }
    // The group the request runs in is this daemon's, whatever the server thought.
    meta.app.process_group = Cow::Borrowed(state.settings.name.as_bytes());
    // As mod_wsgi: when a daemon thread took the request (microseconds).
    let taken = crate::core::environ::itoa(&mut [0; 20], super::client::now_us()).to_vec();
    meta.server_vars.push((Cow::Borrowed(b"mod_wsgi.daemon_start"), Cow::Owned(taken)));
    let what = format!("{} {}", String::from_utf8_lossy(&meta.method), String::from_utf8_lossy(&meta.request_uri));
    let context: Arc<str> = Arc::from(String::from_utf8_lossy(&meta.app.script).as_ref());
    // The application group's interpreter (docs/interpreters.md): the request runs in it.
    let Some(group) = state.worker.interpreter(&meta, &*state.log, &context) else {
        return refuse(500, "the application group's interpreter could not be made (see the daemon's log)".into());
    };
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    let thread = sys::python_thread_ident();
    locked(&state.in_flight).insert(
        id,
        InFlight { started: Instant::now(), thread, out: out.clone(), sock: sock.clone(), what, timed_out: None },
    );
    let ran = group.attach(|py| {
        if restarting(state, py, &meta) {
            // Nothing of the request was read: the client sends it to another process of
            // the group or to this one's replacement, which loads the new script.
            lock(out).finish(Kind::Retry);
            locked(&state.in_flight).remove(&id);
            return;
        }
        let outcome = if state.worker.ready(&*state.log, &context) {
            let ch = Channel {
                body: Box::new(DaemonBody::new(shared_reader.clone(), out.clone())),
                sink: Box::new(DaemonSink { out: out.clone() }),
                log: state.log.clone(),
                context: context.clone(),
            };
            // Never reload a script in place: a change restarts the process (above).
            let started = std::time::Instant::now();
            state.worker.begin_with(py, &meta, ch, false).map(|mut ex| {
                let outcome = loop {
                    if let Some(o) = ex.pump(py, None) {
                        break o;
                    }
                };
                let io = ex.counters(py);
                drop(ex);
                // mod_wsgi's request_finished event and metrics, as in embedded mode.
                crate::core::modwsgi_module::request_finished(py, started, &io);
                outcome
            })
        } else {
            None
        };
        use crate::core::response::Outcome;
        let mut o = lock(out);
        match outcome {
            Some(Outcome::Complete) => o.finish(Kind::End),
            None | Some(Outcome::Failed) => o.fail(500, "the application failed (see the daemon's log)"),
            Some(Outcome::Aborted) | Some(Outcome::ClientGone) => o.finish(Kind::Abort),
        }
        drop(o);
        // Unregister with the GIL held: the watcher interrupts only requests it finds
        // registered while holding the GIL, so an interrupt cannot leak into the next
        // request of this thread; one that arrived too late is cleared here.
        if let Some(f) = locked(&state.in_flight).remove(&id) {
            if f.timed_out.is_some() {
                sys::clear_interrupt(py, thread);
            }
        }
    });
    if let Err(e) = ran {
        locked(&state.in_flight).remove(&id);
        return refuse(500, e);
    }
    let o = lock(out);
    o.reusable && o.done
}

/// Script reloading, daemon mode's way (mod_wsgi's): when the request's script changed
/// since this process loaded it, the process stops accepting, finishes what it has and is
/// replaced; this request and any other it still takes go elsewhere (`true`: answer RETRY).
fn restarting(state: &State, py: Python<'_>, meta: &RequestMeta<'_>) -> bool {
    if state.reloading.load(Ordering::SeqCst) {
        return true;
    }
    let path = Path::new(OsStr::from_bytes(&meta.app.script));
    if !meta.app.script_reloading || !script::changed(py, path) {
        return false;
    }
    if !state.reloading.swap(true, Ordering::SeqCst) {
        let what = format!("WSGI script {} changed (script reloading)", path.display());
        state.stop(Exit::ScriptChanged, &format!("{what}; restarting the process"));
    }
    true
}

/// The watcher: recycling limits, request timeouts, deadlock, stop requests.
fn watch(state: &Arc<State>) {
    let s = &state.settings;
    let started = Instant::now();
    while !state.stopping() {
        thread::sleep(TICK);
        if state.control.stop.load(Ordering::SeqCst) || sys::stop_signalled() {
            state.stop(Exit::Signal, "asked to stop");
        }
        if let Some(t) = s.restart_interval.filter(|&t| started.elapsed() >= t) {
            state.stop(Exit::RestartInterval, &format!("restart-interval ({t:?}) reached"));
        }
        if let Some(t) = s.inactivity_timeout {
            let idle = state.busy.load(Ordering::SeqCst) == 0 && locked(&state.in_flight).is_empty();
            if idle && locked(&state.last_activity).is_some_and(|a| a.elapsed() >= t) {
                state.stop(Exit::InactivityTimeout, &format!("no request for inactivity-timeout ({t:?})"));
            }
        }
        if let Some(t) = s.deadlock_timeout {
            let since = locked(&state.gil_beat).elapsed();
            if since >= t {
                state
                    .stop(Exit::Deadlock, &format!("the GIL was not available for {since:?} (deadlock-timeout {t:?})"));
            }
        }
        if let Some(t) = s.request_timeout {
            check_timeouts(state, t);
        }
    }
    // Stuck requests also stop the process while draining.
    if let Some(t) = s.request_timeout {
        check_timeouts(state, t);
    }
}

fn check_timeouts(state: &Arc<State>, limit: Duration) {
    let mut interrupt = Vec::new();
    let mut stuck = None;
    for (id, f) in locked(&state.in_flight).iter_mut() {
        match f.timed_out {
            None if f.started.elapsed() >= limit => {
                f.timed_out = Some(Instant::now());
                state.log.log(
                    Level::Error,
                    &format!(
                        "{}: request-timeout: {} ran longer than {limit:?}; answering 504 (or aborting) and interrupting its thread",
                        state.context_prefix, f.what
                    ),
                );
                // The writer may be blocked on a client that does not read: then only
                // shutting the socket down frees it (the client sees the daemon go away).
                if let Ok(mut o) = f.out.try_lock() {
                    o.time_out();
                }
                let _ = f.sock.shutdown(std::net::Shutdown::Both);
                interrupt.push(*id);
            }
            Some(at) if at.elapsed() >= INTERRUPT_GRACE => stuck = Some(f.what.clone()),
            _ => {}
        }
    }
    if let Some(what) = stuck {
        let msg = format!("request-timeout: {what} did not stop within {INTERRUPT_GRACE:?} of being interrupted");
        state.stop(Exit::RequestTimeout, &msg);
    }
    if !interrupt.is_empty() {
        let s = state.clone();
        // Interrupting needs the GIL, which the watcher must never wait for.
        let _ = thread::Builder::new().name("oxwsgi-interrupt".into()).spawn(move || {
            Python::attach(|py| {
                let exc = py.get_type::<RequestTimeout>();
                let flights = locked(&s.in_flight);
                for id in interrupt {
                    if let Some(f) = flights.get(&id) {
                        // CPython finds a thread only among the current interpreter's.
                        crate::core::interp::in_each(py, |py| {
                            sys::interrupt_thread(py, f.thread, exc.as_any());
                        });
                    }
                }
            })
        });
    }
}

/// Take the GIL regularly; the watcher declares a deadlock when this stops happening.
fn gil_beat(state: &State, limit: Duration) {
    crate::ffi::python::keep_thread_state();
    let every = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    while !state.stopping() {
        Python::attach(|_| ());
        *locked(&state.gil_beat) = Instant::now();
        thread::sleep(every);
    }
}

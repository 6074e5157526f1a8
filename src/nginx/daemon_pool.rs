//! This worker's kept connections to its groups' daemons (protocol 3: a connection
//! carries requests one after another; docs/daemon-protocol.md "Idle connections",
//! docs/nginx-daemon.md "Kept connections").
//!
//! A request whose daemon answered `END` gives its connection back here; the next request
//! to the same group takes the most recently used one instead of connecting. While idle a
//! connection belongs to the pool: its events come to [`idle_event`], which closes it when
//! the daemon closed its end (the process was recycled, restarted or stopped) or nginx
//! closes idle connections (worker shutdown). A request on a kept connection that turns
//! out closed before anything of the answer was read is sent again on a new connection
//! (daemon_client.rs). Also kept: the read buffers, so no request allocates one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::ngx::{self, EventHandler, PeerConn};
use crate::ffi::ngx::{ngx_event_t, ngx_log_t};
use crate::ffi::unix::recv_msg;

/// At most this many idle connections per worker, over all its groups (the oldest goes).
const MAX_IDLE: usize = 64;
/// At most this many spare read buffers per worker.
const MAX_SPARE: usize = 64;
/// The size of a read buffer: at most this many bytes are read from a daemon before the
/// events are taken.
pub const READ_CHUNK: usize = 64 * 1024;

struct Idle {
    socket: PathBuf,
    conn: PeerConn,
}

thread_local! {
    // The event loop's thread only: connections are nginx's, used on the loop.
    static IDLE: RefCell<Vec<Idle>> = const { RefCell::new(Vec::new()) };
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The most recently kept connection to `socket`, bound to its new owner.
///
/// # Safety
/// As for [`PeerConn::new`]: `log` outlives the connection's use by the owner, `data`
/// stays valid for `handler` until the owner drops or gives back the connection.
pub unsafe fn take(socket: &Path, log: *mut ngx_log_t, data: *mut c_void, handler: EventHandler) -> Option<PeerConn> {
    let conn = IDLE.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().rposition(|e| e.socket == socket)?;
        Some(p.remove(i).conn)
    })?;
    // SAFETY: the caller's invariant.
    unsafe { conn.rebind(log, data, handler, false) };
    Some(conn)
}

/// Keep `conn` (its response ended with `END`, nothing unread) for the next request.
pub fn give(socket: &Path, conn: PeerConn) {
    // SAFETY: the worker's log lives as long as the worker; the pool's handler needs no
    // data (it finds the connection by its event).
    unsafe { conn.rebind(ngx::worker_log(), std::ptr::null_mut(), super::DAEMON_IDLE_EVENT, true) };
    // The last read event was the answer's: a close by the daemon from now on is a new one
    // (and a close already missed shows as EPIPE on the next request's write: retried).
    conn.forget_read_ready();
    let old = IDLE.with(|p| {
        let mut p = p.borrow_mut();
        let old = (p.len() >= MAX_IDLE).then(|| p.remove(0));
        p.push(Idle { socket: socket.to_path_buf(), conn });
        old
    });
    drop(old);
}

/// An event of an idle connection: close it unless it is a spurious wakeup (nothing is
/// due on an idle connection: bytes, end of stream and errors all end it).
///
/// # Safety
/// `ev` is an event of a connection given to the pool.
pub unsafe fn idle_event(ev: *mut ngx_event_t) {
    // SAFETY: the caller's invariant.
    let (write, close) = unsafe { ngx::peer_event_kind(ev) };
    if write && !close {
        return;
    }
    let gone = IDLE.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|e| e.conn.is_of(ev))?;
        if !close {
            let mut b = [0u8; 64];
            let mut fds = VecDeque::new();
            if matches!(recv_msg(p[i].conn.fd(), &mut b, &mut fds), Err(e) if e.kind() == ErrorKind::WouldBlock) {
                p[i].conn.read_drained();
                return None;
            }
        }
        Some(p.remove(i))
    });
    drop(gone);
}

/// Close every idle connection (the worker exits).
pub fn close_all() {
    let all = IDLE.with(|p| std::mem::take(&mut *p.borrow_mut()));
    drop(all);
}

/// A read buffer of [`READ_CHUNK`] bytes.
pub fn buffer() -> Vec<u8> {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| vec![0; READ_CHUNK])
}

/// Give back a read buffer.
pub fn give_buffer(b: Vec<u8>) {
    if b.len() == READ_CHUNK {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARE {
                s.push(b);
            }
        });
    }
}

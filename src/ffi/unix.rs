//! The operating-system and CPython calls daemon mode needs that std and pyo3 do not
//! wrap: descriptor passing (SCM_RIGHTS), a connect with a timeout, poll, stop signals, and
//! interrupting a Python thread. Each `unsafe` block is one operation with its invariant.
//! Everything in `src/daemon/` is safe code (`#![forbid(unsafe_code)]`) built on these.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

/// Room for the control message of one passed descriptor (CMSG_SPACE(4) is 24 on 64-bit
/// Linux), aligned as `cmsghdr` requires.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

const FD_SIZE: libc::c_uint = std::mem::size_of::<libc::c_int>() as libc::c_uint;

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a plain C struct of pointers and integers; all-zero is its
    // documented "no name, no iovec, no control data" value.
    unsafe { std::mem::zeroed() }
}

/// `sendmsg` of `bufs` in order, with `pass` attached as SCM_RIGHTS when given, and
/// MSG_NOSIGNAL: a peer that went away is EPIPE, never a SIGPIPE that kills the process.
/// Returns the bytes sent (possibly fewer than offered).
pub fn send_msg(sock: BorrowedFd<'_>, bufs: &[IoSlice<'_>], pass: Option<BorrowedFd<'_>>) -> io::Result<usize> {
    let mut msg = empty_msghdr();
    // IoSlice is ABI-compatible with iovec (std guarantees it on Unix); sendmsg only reads.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len() as _;
    let mut cbuf = CmsgBuf([0; 64]);
    if let Some(fd) = pass {
        // SAFETY: CMSG_SPACE is arithmetic on its argument.
        let space = unsafe { libc::CMSG_SPACE(FD_SIZE) };
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` (<= 64) bytes of cbuf, so the first header
        // exists and lies inside cbuf.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        // SAFETY: CMSG_LEN is arithmetic on its argument.
        let len = unsafe { libc::CMSG_LEN(FD_SIZE) };
        // SAFETY: cmsg points into cbuf (above), aligned for cmsghdr by CmsgBuf's repr.
        let hdr = unsafe { &mut *cmsg };
        hdr.cmsg_level = libc::SOL_SOCKET;
        hdr.cmsg_type = libc::SCM_RIGHTS;
        hdr.cmsg_len = len as _;
        // SAFETY: CMSG_DATA of a header inside cbuf points at its data, which has room
        // for one c_int (space was computed for it); the write may be unaligned.
        unsafe { std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd()) };
    }
    // SAFETY: msg points at live iovecs and control data for the duration of the call;
    // `sock` is an open descriptor borrowed for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// `recvmsg` into `buf`; descriptors the peer passed (SCM_RIGHTS) are appended to `fds`
/// (close-on-exec). Ok(0) is the end of the stream.
pub fn recv_msg(sock: BorrowedFd<'_>, buf: &mut [u8], fds: &mut VecDeque<OwnedFd>) -> io::Result<usize> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cbuf = CmsgBuf([0; 64]);
    let mut msg = empty_msghdr();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    // SAFETY: iov describes `buf`, writable for its length; the control buffer is cbuf;
    // both outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: msg's control fields describe cbuf as filled by recvmsg.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR/NXTHDR lies inside cbuf.
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN is arithmetic on its argument.
            let data_len = hdr.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            // SAFETY: the data of an SCM_RIGHTS header inside cbuf starts here.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<libc::c_int>();
            for i in 0..data_len / FD_SIZE as usize {
                // SAFETY: i < the number of descriptors the header holds; unaligned read.
                let raw = unsafe { std::ptr::read_unaligned(data.add(i)) };
                // SAFETY: the kernel installed `raw` in this process for us; nobody else
                // owns it, so the OwnedFd is its only owner and closes it.
                fds.push_back(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: msg and cmsg describe cbuf as above; NXTHDR returns null at its end.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("a passed file descriptor was truncated (MSG_CTRUNC)"));
    }
    Ok(n as usize)
}

/// Connect to a UNIX socket, waiting at most `timeout` when its listen backlog is full
/// (std's connect would wait forever: the kernel uses the socket's send timeout).
pub fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let bytes = path.as_os_str().as_bytes();
    let mut addr = {
        // SAFETY: sockaddr_un is a plain C struct; all-zero is a valid empty address.
        let a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a
    };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket() has no memory preconditions.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket() just returned this descriptor; nothing else owns it.
    let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(raw) });
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a sockaddr_un of which `len` bytes are initialised; the descriptor
    // is open (owned by `stream`).
    let r = unsafe { libc::connect(stream.as_raw_fd(), (&raw const addr).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

/// Wait until `fd` is readable (a listener: a connection is waiting), at most `timeout`.
/// A signal interrupting the wait is "not readable" so that the caller re-checks its flags.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: p is one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
    }
    Ok(r > 0)
}

static STOP_SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_SIGNALLED.store(true, Ordering::SeqCst);
}

/// Make SIGTERM and SIGINT set a flag ([`stop_signalled`]) instead of killing the process.
pub fn install_stop_signals() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        if unsafe { libc::signal(sig, handler) } == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether SIGTERM or SIGINT arrived since [`install_stop_signals`].
pub fn stop_signalled() -> bool {
    STOP_SIGNALLED.load(Ordering::SeqCst)
}

/// The calling thread's identifier as CPython knows it (what `threading.get_ident()` and
/// `PyThreadState_SetAsyncExc` use).
pub fn python_thread_ident() -> u64 {
    // SAFETY: PyThread_get_thread_ident only reads the calling thread's id (pthread_self).
    unsafe { pyo3::ffi::PyThread_get_thread_ident() as u64 }
}

/// Raise `exc` (an exception class) asynchronously in the Python thread `ident`, as
/// mod_wsgi does for request-timeout: it fires at the thread's next bytecode, not inside a
/// blocking C call. Returns whether a thread was found.
pub fn interrupt_thread(py: Python<'_>, ident: u64, exc: &Bound<'_, PyAny>) -> bool {
    let _ = py; // the GIL is held: SetAsyncExc requires it.
    // SAFETY: the GIL is held (we have `py`); exc is a live object; CPython takes its own
    // reference.
    let n = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as libc::c_long, exc.as_ptr()) };
    n > 0
}

/// Drop an asynchronous exception still pending for thread `ident` (an interrupt that
/// arrived after its request's last bytecode), so that it cannot hit the next request.
pub fn clear_interrupt(py: Python<'_>, ident: u64) {
    let _ = py; // the GIL is held: SetAsyncExc requires it.
    // SAFETY: the GIL is held; a NULL exception clears the pending one.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as libc::c_long, std::ptr::null_mut()) };
}

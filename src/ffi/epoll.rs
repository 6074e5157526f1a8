//! A minimal `epoll` for daemon mode: one instance per daemon process watches the group's
//! listening socket and every idle persistent connection, each registered one-shot, so
//! that exactly one of the process's threads takes each event and an idle connection
//! holds no thread. Each `unsafe` block is one system call on descriptors we own.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An epoll instance (close-on-exec), closed when dropped.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory preconditions.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: epoll_create1 just returned this descriptor; nothing else owns it.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(raw) } })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32, u64: key };
        // SAFETY: both descriptors are open for the call; ev is a valid epoll_event.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Watch `fd` for one readable event reported as `key` (one-shot: re-arm with
    /// [`Epoll::rearm`] after handling it).
    pub fn add(&self, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, key)
    }

    /// Watch `fd` (already added) for its next readable event.
    pub fn rearm(&self, fd: BorrowedFd<'_>, key: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, key)
    }

    /// Stop watching `fd`.
    pub fn remove(&self, fd: BorrowedFd<'_>) {
        // SAFETY: both descriptors are open; a null event is allowed for DEL since 2.6.9.
        unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut()) };
    }

    /// The key of one ready descriptor, waiting at most `timeout` (zero: do not wait).
    /// `None` on timeout or when a signal interrupted the wait.
    pub fn wait_one(&self, timeout: Duration) -> io::Result<Option<u64>> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: ev is room for the one event asked for; the instance is open.
        let n = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), &mut ev, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(e) };
        }
        let key = ev.u64;
        Ok((n == 1).then_some(key))
    }
}

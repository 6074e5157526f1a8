//! The process operations daemon mode needs (fork, privileges, limits, signals), as safe
//! functions over libc. Linux only, like the rest of the crate.
//!
//! Each wrapper states the invariant it relies on; the callers (the Apache adapter's
//! process manager) stay safe code.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

/// The result of [`fork`].
pub enum Fork {
    /// In the new process.
    Child,
    /// In the calling process: the child's pid.
    Parent(i32),
}

/// Number of threads of this process (from /proc/self/status).
fn thread_count() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// Fork this process. Refused (an error) unless the process has exactly one thread: in a
/// multi-threaded process the child could inherit a lock held by another thread.
pub fn fork() -> io::Result<Fork> {
    if thread_count() != Some(1) {
        return Err(io::Error::other("fork refused: the process has more than one thread"));
    }
    // SAFETY: the process is single-threaded (checked above), so the child starts with
    // consistent state (no lock held by a thread that does not exist in it).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Every signal back to its default action, none blocked (a forked child inherits its
/// parent's handlers, which belong to the parent's program).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; signals that cannot be changed
        // only make signal() fail, which is ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an all-zero sigset_t is a valid (empty) set for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, writable sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: set is an initialised empty set; the old mask is not wanted (NULL).
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Ask the kernel to send `sig` to this process when its parent exits; `false` when the
/// parent is already not `parent` (it exited before the request took effect).
pub fn die_with_parent(parent: i32, sig: i32) -> bool {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes nothing else.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    parent_pid() == parent
}

/// The pid of this process's parent.
pub fn parent_pid() -> i32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

/// The thread name (`/proc/self/comm`, 15 bytes at most) of the calling thread; the main
/// thread's is what `ps -o comm` shows for the process.
pub fn set_thread_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    bytes.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes, which bytes is.
    unsafe { libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Close every socket descriptor of this process except `keep` (a forked daemon must not
/// hold the server's listening sockets or another group's socket).
pub fn close_sockets_except(keep: RawFd) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<RawFd> =
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2 && fd != keep).collect();
    for fd in fds {
        let is_socket = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .map(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            })
            .unwrap_or(false);
        if is_socket {
            close(fd);
        }
    }
}

/// Close every socket descriptor of this process except those in `keep` (a supervisor
/// keeps the sockets of its groups only).
pub fn close_sockets_except_all(keep: &[RawFd]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(format!("/proc/self/fd/{fd}"));
        if meta.map(|m| m.file_type().is_socket()).unwrap_or(false) {
            close(fd);
        }
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    let r = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for the write end.
    let w = unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) };
    Ok((r, w))
}

/// Close a descriptor this process owns outside of any Rust object (kept in httpd's
/// retained memory, inherited through fork).
pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor number is memory-safe; the callers own fd (no Rust
    // object wraps it), so nothing else closes it again.
    unsafe { libc::close(fd) };
}

/// A `UnixListener` of its own (a duplicate) for the listening socket `fd`.
pub fn dup_listener(fd: RawFd) -> io::Result<UnixListener> {
    // SAFETY: F_GETFD only queries the descriptor; it fails for a closed one.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is open (checked above) and stays open during this call: the process is
    // single-threaded here and nothing else closes it.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(UnixListener::from(b.try_clone_to_owned()?))
}

/// Set the listen backlog of a listening socket.
pub fn listen(fd: RawFd, backlog: u32) -> io::Result<()> {
    // SAFETY: listen on a descriptor number is memory-safe (fails on a bad one).
    if unsafe { libc::listen(fd, backlog.min(i32::MAX as u32) as i32) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the file-creation mask; returns the previous one.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// Resource limits a daemon can be given.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// Data segment (heap) bytes.
    Data,
    /// Address space bytes.
    AddressSpace,
    /// CPU seconds.
    Cpu,
}

/// Set both the soft and the hard limit.
pub fn set_limit(which: Limit, value: u64) -> io::Result<()> {
    let res = match which {
        Limit::Data => libc::RLIMIT_DATA,
        Limit::AddressSpace => libc::RLIMIT_AS,
        Limit::Cpu => libc::RLIMIT_CPU,
    };
    let l = libc::rlimit { rlim_cur: value as libc::rlim_t, rlim_max: value as libc::rlim_t };
    // SAFETY: l is a valid rlimit for the call.
    if unsafe { libc::setrlimit(res, &l) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Become `uid`/`gid` with exactly the supplementary `groups` (root only), and check that
/// root cannot be regained.
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let list: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: list holds list.len() gids.
    if unsafe { libc::setgroups(list.len(), list.as_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setgid takes a number.
    if unsafe { libc::setgid(gid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setuid takes a number.
    if unsafe { libc::setuid(uid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setuid takes a number; it must fail now unless uid is root.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("setuid(0) succeeded after dropping privileges"));
    }
    Ok(())
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// This process's effective gid.
pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions.
    unsafe { libc::getegid() }
}

/// Send `sig` to `pid`; `false` if it does not exist.
pub fn kill(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false; // never a process group or every process
    }
    // SAFETY: kill with a positive pid signals that one process only.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Reap `pid` if it has exited: `Some(raw wait status)`, `None` while it runs (or when it
/// is not a child of this process any more: `Some(-1)`).
pub fn try_wait(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: status is writable; WNOHANG never blocks.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => None,
        -1 => Some(-1),
        _ => Some(status),
    }
}

/// Wait until every pid of `pids` has exited (reaping them) or `timeout` passed; returns
/// those still running.
pub fn wait_all(pids: &[i32], timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    let mut left: Vec<i32> = pids.to_vec();
    loop {
        left.retain(|&p| try_wait(p).is_none());
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How a process ended, from its raw wait status.
pub fn describe_status(status: i32) -> String {
    if status == -1 {
        "status unknown".into()
    } else if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else {
        format!("wait status {status}")
    }
}

/// How a process ended, from what httpd hands an APR "other child" callback: APR's wait
/// already split the wait status into a reason (exit or signal) and a number, and httpd
/// passes only the number. So 3 is `os._exit(3)` or SIGQUIT, and only what cannot be
/// ambiguous is said: 0 is a clean exit (there is no signal 0), above the last signal
/// number only an exit status fits.
pub fn describe_apr_exit_code(code: i32) -> String {
    if code == -1 {
        "status unknown".into()
    } else if code == 0 {
        "exit status 0".into()
    } else if (1..=libc::SIGRTMAX()).contains(&code) {
        format!("exit status {code} or signal {code} ({}): httpd does not say which", signal_name(code))
    } else {
        format!("exit status {code}")
    }
}

fn signal_name(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static (or thread-local) string.
    let name = unsafe { libc::strsignal(sig) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL strsignal results are NUL-terminated strings.
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

/// Whether the raw wait status is a normal exit with status 0.
pub fn exited_cleanly(status: i32) -> bool {
    status != -1 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Set an environment variable (a forked daemon before it starts Python; single-threaded).
pub fn set_env(key: &str, value: &str) {
    if thread_count() == Some(1) {
        // SAFETY: the process is single-threaded (checked), so no other thread reads the
        // environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
}

/// End this process now, without running exit handlers (a forked daemon must not run its
/// parent's atexit work, nor finalize Python).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it does not return.
    unsafe { libc::_exit(code) }
}

/// Point `fd`, a log file opened for appending, at the file now at `path` when the two
/// differ (the log was rotated: renamed, and a new one made at `path`); true if it did.
/// The descriptor number stays the same, so whoever writes to it (nginx's log structures
/// copied into a forked process) writes to the new file. Used by processes that nginx's
/// `reopen` signal does not reach.
pub fn reopen_if_replaced(fd: RawFd, path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::IntoRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer it is given, of the right size.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled the buffer.
    let open = unsafe { st.assume_init() };
    let on_disk = std::fs::metadata(path);
    if matches!(&on_disk, Ok(m) if m.dev() == open.st_dev && m.ino() == open.st_ino) {
        return Ok(false);
    }
    let new = std::fs::OpenOptions::new().append(true).create(true).open(path)?.into_raw_fd();
    // SAFETY: both are open descriptors of this process; dup2 replaces fd atomically (the
    // old file is closed by it), and `new`, which no Rust object owns, is closed after.
    let r = unsafe { libc::dup2(new, fd) };
    close(new);
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_wait_status_says_exit_or_signal() {
        assert_eq!(describe_status(3 << 8), "exit status 3");
        assert_eq!(describe_status(libc::SIGKILL), "killed by signal 9 (Killed)");
    }

    #[test]
    fn an_apr_exit_code_says_only_what_it_can() {
        assert_eq!(describe_apr_exit_code(0), "exit status 0");
        assert_eq!(describe_apr_exit_code(3), "exit status 3 or signal 3 (Quit): httpd does not say which");
        assert_eq!(describe_apr_exit_code(100), "exit status 100");
        assert_eq!(describe_apr_exit_code(-1), "status unknown");
    }
}

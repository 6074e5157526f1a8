//! A crash report in the error log: when a process that runs oxwsgi dies of a fault
//! (SIGSEGV, SIGBUS, SIGILL, SIGFPE) or an abort, the faulting thread's stack is written to
//! standard error before the process dies as it would have. Apache and nginx both point
//! standard error at their main error log, so the report lands beside the server's own
//! "child pid N exit signal Segmentation fault" line, and says in which library the fault
//! was: ours, CPython, an extension module, or the server's own code.
//!
//! Why it exists: a crash at stop is rare and a core file is seldom there (a worker that
//! changed user is not dumpable, and `CoreDumpDirectory` is off by default), so without a
//! report nobody can tell a fault of oxwsgi from one of httpd or of an application's C
//! extension. The test harness reads these reports the same way (tests/harness/crash.py).
//!
//! The handler uses only what may run in a signal handler: write(2), glibc's backtrace()
//! (warmed up at install time, so its one-time loading of libgcc_s, which allocates, is
//! done outside the handler) and backtrace_symbols_fd(), which writes straight to a
//! descriptor without allocating. Then it puts back the handler that was there before
//! (httpd's, which changes to CoreDumpDirectory, or the default) and lets the fault happen
//! again, so the process dies exactly as it would have without us: same signal, same core.

use std::fmt::Write as _;
use std::sync::Once;

/// The signals reported. Faults re-happen when the handler returns; SIGABRT is raised again.
const SIGNALS: [libc::c_int; 5] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT];

/// Frames reported at most (the faulting thread's innermost ones).
const FRAMES: usize = 48;

/// Dispositions found at install time, restored (by signal number) before the signal
/// happens again. Written once, before the handlers are installed; read only after.
static mut PREVIOUS: [Option<libc::sigaction>; 32] = [None; 32];

static INSTALL: Once = Once::new();

/// Install the reporter for this process (once; later calls do nothing). Called where a
/// process starts serving: an Apache child, an nginx worker, a daemon process.
pub fn install() {
    INSTALL.call_once(|| {
        let mut warm = [std::ptr::null_mut(); 2];
        // SAFETY: the buffer holds 2 pointers, as the size passed says. This first call
        // loads libgcc_s (and allocates) now, outside any signal handler.
        unsafe { libc::backtrace(warm.as_mut_ptr(), 2) };
        for sig in SIGNALS {
            install_one(sig);
        }
    });
}

fn install_one(sig: libc::c_int) {
    // SAFETY: sigaction is plain data; all-zero is a valid (empty) value.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = report as Handler as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sa_mask is a valid sigset_t owned by `new`.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: as above, all-zero is a valid sigaction to receive the old disposition.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live sigaction values; `report` has the SA_SIGINFO
    // handler signature.
    if unsafe { libc::sigaction(sig, &new, &mut old) } == 0 {
        // SAFETY: PREVIOUS is written only here, inside INSTALL's call_once (one thread at a
        // time). A signal in the instant between the sigaction above and this write finds
        // None and falls back to the default disposition, which is what `old` is in every
        // process but httpd's (its handler only moves the core file).
        unsafe { (*std::ptr::addr_of_mut!(PREVIOUS))[sig as usize] = Some(old) };
    }
}

/// A fixed buffer to format one line without allocating (allocation is not allowed in a
/// signal handler).
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: the pointer and length describe `bytes`; write(2) is async-signal-safe. A
    // short or failed write loses part of the report, nothing else.
    unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        _ => "signal",
    }
}

/// The signature of an SA_SIGINFO handler.
type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// The handler. Never panics (formatting into `Line` cannot fail), never allocates.
extern "C" fn report(sig: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: getpid and gettid are async-signal-safe system calls without arguments.
    let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    let address = if info.is_null() {
        0
    } else {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; si_addr is
        // meaningful for the fault signals and harmless to read for the others.
        unsafe { (*info).si_addr() as usize }
    };
    let mut line = Line { buf: [0; 256], len: 0 };
    let _ = writeln!(
        line,
        "oxwsgi crash report: pid {pid} thread {tid}: fatal signal {sig} ({}), fault address {address:#x}; \
         stack of the faulting thread, innermost first:",
        signal_name(sig)
    );
    write_stderr(&line.buf[..line.len]);
    let mut frames = [std::ptr::null_mut(); FRAMES];
    // SAFETY: the buffer holds FRAMES pointers, as the size passed says; backtrace was
    // called once at install time, so it does not load anything now.
    let n = unsafe { libc::backtrace(frames.as_mut_ptr(), FRAMES as libc::c_int) };
    // Frame 0 is this handler; the rest start at the signal trampoline.
    if n > 1 {
        // SAFETY: frames[1..n] were filled by backtrace; backtrace_symbols_fd writes to the
        // descriptor without allocating.
        unsafe { libc::backtrace_symbols_fd(frames.as_ptr().add(1), n - 1, libc::STDERR_FILENO) };
    }
    line.len = 0;
    let _ = writeln!(line, "oxwsgi crash report: pid {pid}: end of stack");
    write_stderr(&line.buf[..line.len]);
    restore_and_redo(sig);
}

/// Put back the disposition found at install time (or the default), then let the signal
/// happen again: a fault re-executes the faulting instruction when the handler returns;
/// an abort is raised again.
fn restore_and_redo(sig: libc::c_int) {
    // SAFETY: PREVIOUS was filled at install time, before this handler could run, and is
    // not written afterwards.
    let previous = unsafe { (*std::ptr::addr_of!(PREVIOUS)).get(sig as usize).copied().flatten() };
    match previous {
        Some(old) => {
            // SAFETY: `old` is the disposition sigaction returned for this signal.
            unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
        }
        None => {
            // SAFETY: SIG_DFL is always a valid disposition.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    if sig == libc::SIGABRT {
        // SAFETY: raise is async-signal-safe; the signal is delivered when this handler returns.
        unsafe { libc::raise(sig) };
    }
}

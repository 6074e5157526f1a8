//! Log levels and the error-log sink the adapters provide.

/// Severity, mapped by each adapter onto its server's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Critical,
    Error,
    Warning,
    /// Normal but significant (start-up facts an admin should see).
    Notice,
    Info,
    Debug,
}

impl Level {
    /// Map a Python `logging` level number.
    pub fn from_python(levelno: i64) -> Level {
        match levelno {
            n if n >= 50 => Level::Critical,
            n if n >= 40 => Level::Error,
            n if n >= 30 => Level::Warning,
            n if n >= 20 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// The server's error log. Implementations must be callable from any thread.
pub trait LogSink: Send + Sync {
    fn log(&self, level: Level, msg: &str);
}

/// Writes to standard error; used by tests and before a server log is available.
pub struct StderrLog;

impl LogSink for StderrLog {
    fn log(&self, level: Level, msg: &str) {
        eprintln!("[oxwsgi:{level:?}] {msg}");
    }
}

thread_local! {
    /// The log of the request this thread is running application code for, if any.
    static REQUEST_LOG: std::cell::RefCell<Option<std::sync::Arc<dyn LogSink>>> =
        const { std::cell::RefCell::new(None) };
}

/// While alive, Python's `logging` (through the server-log bridge) and `print()` on this
/// thread write to `log`, the log of the request the thread serves, so their lines carry
/// the request's context (client, request line) as `wsgi.errors` does. Scopes nest.
pub struct RequestScope {
    prev: Option<std::sync::Arc<dyn LogSink>>,
}

impl RequestScope {
    pub fn enter(log: std::sync::Arc<dyn LogSink>) -> RequestScope {
        RequestScope { prev: REQUEST_LOG.with(|c| c.replace(Some(log))) }
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        let prev = self.prev.take();
        REQUEST_LOG.with(|c| *c.borrow_mut() = prev);
    }
}

/// The log of the request this thread is serving, if it is serving one.
pub fn request_log() -> Option<std::sync::Arc<dyn LogSink>> {
    REQUEST_LOG.with(|c| c.borrow().clone())
}

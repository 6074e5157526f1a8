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

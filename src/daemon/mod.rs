//! Daemon mode, the server-agnostic half: a daemon process runs the core behind a UNIX
//! socket ([`serve`]), and a server thread forwards requests to it over a connection it keeps
//! ([`client::forward`]). The wire format is in [`protocol`] and docs/daemon-protocol.md.
//!
//! Forking the daemons, dropping privileges and restarting them is the server adapter's
//! business (it knows its parent process); this module starts Python in an already forked
//! process, serves, and says why it stopped. The few OS and CPython calls it needs that
//! std and pyo3 do not wrap are in `crate::ffi::unix`.

#![forbid(unsafe_code)]

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::core::LogSink;
use crate::core::runtime::RuntimeConfig;
use crate::core::worker::Setup;
use crate::ffi::unix as sys;

pub mod accounts;
pub mod client;
pub mod codec;
mod conn;
pub mod definition;
pub mod keeper;
pub mod launch;
pub mod protocol;
mod serve;
mod wire;

pub use serve::{Control, INTERRUPT_GRACE, RequestTimeout, serve_with};

#[cfg(test)]
mod tests;

/// A daemon process group's settings (from WSGIDaemonProcess / wsgi_daemon_process).
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub name: String,
    pub processes: u32,
    pub threads: u32,
    /// python-home, python-path, ...
    pub runtime: RuntimeConfig,
    /// WSGIImportScript process-group=...
    pub imports: Vec<PathBuf>,
    pub server_software: String,
    pub maximum_requests: Option<u64>,
    pub request_timeout: Option<Duration>,
    pub inactivity_timeout: Option<Duration>,
    pub restart_interval: Option<Duration>,
    /// Finish in-flight requests when recycling.
    pub graceful_timeout: Duration,
    /// Then exit regardless.
    pub shutdown_timeout: Duration,
    /// GIL held by nobody making progress.
    pub deadlock_timeout: Option<Duration>,
}

/// Why a daemon process stopped serving (its parent starts a replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    MaximumRequests,
    RestartInterval,
    InactivityTimeout,
    RequestTimeout,
    Deadlock,
    Signal,
    /// A WSGI script this process loaded changed on disk (script reloading restarts the
    /// process in daemon mode rather than reloading the module in place).
    ScriptChanged,
    Failed(String),
}

impl Exit {
    /// mod_wsgi's `shutdown_reason` for the `process_stopping` event (`""` where mod_wsgi
    /// gives none: the server stopping the process, maximum-requests, a changed script).
    pub fn shutdown_reason(&self) -> &'static str {
        match self {
            Exit::RestartInterval => "restart_interval",
            Exit::InactivityTimeout => "inactivity_timeout",
            Exit::RequestTimeout => "request_timeout",
            _ => "",
        }
    }
}

/// Runs inside a freshly forked daemon process (privileges already dropped by the caller).
/// Starts Python (core::worker), accepts requests on `listener` with `threads` threads,
/// and returns why it stopped; the caller exits the process. SIGTERM/SIGINT: stop
/// accepting, finish in-flight requests within graceful_timeout, return Exit::Signal.
///
/// After returning, the process has `shutdown_timeout` to exit before a watchdog ends it
/// with `_exit` (Python's own finalisation may wait for threads that never finish).
pub fn serve(settings: &GroupSettings, listener: UnixListener, log: Arc<dyn LogSink>) -> Exit {
    if let Err(e) = sys::install_stop_signals() {
        return Exit::Failed(format!("installing the SIGTERM handler: {e}"));
    }
    let worker = crate::core::worker::start(&setup(settings), log.clone());
    let exit = serve_with(settings, listener, log, worker, Arc::new(Control::default()));
    let grace = settings.shutdown_timeout;
    let _ = std::thread::Builder::new().name("oxwsgi-exit-watchdog".into()).spawn(move || {
        std::thread::sleep(grace);
        crate::ffi::os::exit_now(1);
    });
    // mod_wsgi's process_stopping event, then Python's exit work (atexit,
    // logging.shutdown, ...), as an embedded worker runs it.
    worker.exit_because(exit.shutdown_reason());
    exit
}

/// The core's start-up settings for a group.
pub fn setup(settings: &GroupSettings) -> Setup<'_> {
    Setup {
        runtime: &settings.runtime,
        imports: &settings.imports,
        import_directive: "WSGIImportScript",
        multithread: settings.threads > 1,
        multiprocess: settings.processes > 1,
        server_software: settings.server_software.clone(),
    }
}

//! One server worker process's Python: started once, then asked to serve requests.
//!
//! Both adapters (and the daemon side, later) start their worker the same way: the
//! interpreter, the environ template, the preloads, and the start-up error that every
//! request then reports; and they start a request the same way: load the script, build the
//! environ from [`RequestMeta`], call the application. The log messages of those steps are
//! written here once, each with a stable id (`oxwsgi_checks::msgid`) that tools match
//! instead of wording.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use oxwsgi_checks::msgid;
use pyo3::prelude::*;

use super::environ::EnvironTemplate;
use super::interp::{self, Interp};
use super::request::RequestMeta;
use super::response::{Exchange, Outcome, RequestParts, log_exception, log_exception_id};
use super::runtime::{self, RuntimeConfig};
use super::{Level, LogSink, RequestBody, ResponseSink, script};
use crate::ffi::python;

/// How a server starts its workers' Python.
pub struct Setup<'a> {
    pub runtime: &'a RuntimeConfig,
    /// Scripts to import at start-up, and the directive that named them (for messages).
    pub imports: &'a [PathBuf],
    pub import_directive: &'static str,
    /// `wsgi.multithread` / `wsgi.multiprocess`.
    pub multithread: bool,
    pub multiprocess: bool,
    /// `SERVER_SOFTWARE`, e.g. "Apache/2.4.62 (Debian) oxwsgi/0.1.0".
    pub server_software: String,
}

/// This process's Python, once started.
pub struct Worker {
    /// Why Python could not start, if it could not: every request then answers 500.
    startup_error: Option<String>,
    template: Option<EnvironTemplate>,
    log: Arc<dyn LogSink>,
}

static WORKER: OnceLock<Worker> = OnceLock::new();

/// The worker of this process, if [`start`] ran.
pub fn get() -> Option<&'static Worker> {
    WORKER.get()
}

/// Start Python in this (worker) process, once. Errors are logged here and kept, so that
/// every request can say why it cannot be served.
pub fn start(setup: &Setup<'_>, log: Arc<dyn LogSink>) -> &'static Worker {
    // A fault in this process from now on leaves its stack in the error log.
    crate::ffi::crash_report::install();
    WORKER.get_or_init(|| match runtime::start(setup.runtime, log.clone()) {
        Err(e) => Worker::failed(e, log),
        Ok(()) => {
            python::keep_thread_state();
            // Every sub-interpreter (application group) is prepared as the main one was.
            let (cfg, init_log) = (setup.runtime.clone(), log.clone());
            interp::add_initializer(move |py, name| runtime::prepare_interpreter(py, &cfg, init_log.clone(), name));
            Worker::prepare(setup, log)
        }
    })
}

impl Worker {
    /// A worker for a process whose Python already runs (started by [`start`], or by a
    /// test): the environ template and the preloads of `setup`. Not the process's
    /// [`get`] worker; a daemon's tests run several groups' workers in one process.
    pub fn prepare(setup: &Setup<'_>, log: Arc<dyn LogSink>) -> Worker {
        let mut w = Worker { startup_error: None, template: None, log: log.clone() };
        Python::attach(|py| {
            match EnvironTemplate::new(py, setup.multithread, setup.multiprocess, &setup.server_software) {
                Ok(t) => w.template = Some(t),
                Err(e) => w.startup_error = Some(runtime::describe(py, &e)),
            }
            for path in setup.imports {
                if let Err(e) = script::module(py, path, false) {
                    let msg = format!("{} failed: {}", setup.import_directive, runtime::describe(py, &e));
                    log.log(Level::Error, &msgid::line(msgid::IMPORT_FAILED, &path.display().to_string(), &msg));
                }
            }
        });
        match w.startup_error.take() {
            Some(e) => Worker::failed(e, log),
            None => w,
        }
    }

    /// A worker whose Python could not start: every request answers 500, saying why.
    fn failed(e: String, log: Arc<dyn LogSink>) -> Worker {
        let msg = format!("Python failed to start in this process (pid {}): {e}", std::process::id());
        log.log(Level::Critical, &msgid::line(msgid::PYTHON_START_FAILED, "oxwsgi", &msg));
        Worker { startup_error: Some(e), template: None, log }
    }
}

/// After a failed script load in a sub-interpreter whose error names sub-interpreters (an
/// extension module that refuses them, such as any built with PyO3): say what to do.
fn sub_interpreter_hint(py: Python<'_>, log: &dyn LogSink, context: &str, meta: &RequestMeta<'_>, e: &PyErr) {
    let text = runtime::describe(py, e).to_ascii_lowercase();
    if interp::current_id(py) != interp::main().id()
        && (text.contains("subinterpreter") || text.contains("sub-interpreter"))
    {
        let group = group_name(&meta.app.application_group);
        log.log(
            Level::Error,
            &format!(
                "{context}: the application runs in the sub-interpreter of application group {group:?} and uses an \
                 extension module that does not support sub-interpreters: give it the main interpreter with \
                 WSGIApplicationGroup %{{GLOBAL}} (or application-group=%{{GLOBAL}}; see docs/interpreters.md)"
            ),
        );
    }
}

/// An application group's name as text (`from_utf8` first: the lossy decoder is slower
/// for the valid names every request has).
fn group_name(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// What a request needs besides its metadata.
pub struct Channel {
    pub body: Box<dyn RequestBody>,
    pub sink: Box<dyn ResponseSink>,
    pub log: Arc<dyn LogSink>,
    /// Prefix of this request's log lines (the script, usually).
    pub context: Arc<str>,
}

impl Worker {
    /// The worker process is exiting: run Python's exit work (non-daemon threads, atexit,
    /// `logging.shutdown`, `weakref.finalize`) within [`super::exit::DEFAULT_LIMIT`]. Once;
    /// nothing to do when Python did not start. Call without the GIL, after serving stopped.
    pub fn exit(&self) {
        self.exit_because("")
    }

    /// [`Worker::exit`], first publishing mod_wsgi's `process_stopping` event with
    /// `shutdown_reason` = `reason` to the applications that subscribed.
    pub fn exit_because(&self, reason: &str) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        if self.startup_error.is_none() {
            // Not one Python call on this thread: see run_exit_handlers.
            ONCE.call_once(|| super::exit::run_exit_handlers(super::exit::DEFAULT_LIMIT, self.log.clone(), reason));
        }
    }

    /// Preload the script at `path` into the interpreter of application group `group`
    /// (`WSGIImportScript application-group=NAME`), made now. For a thread that is not
    /// attached, after [`start`]. A failure is logged (with `directive`) and not kept.
    pub fn preload(&self, group: &str, path: &Path, directive: &str) {
        if self.startup_error.is_some() {
            return;
        }
        let loaded = interp::resolve(group).and_then(|i| {
            i.attach(|py| script::module(py, path, false).map(drop).map_err(|e| runtime::describe(py, &e)))?
        });
        if let Err(e) = loaded {
            let msg = format!("{directive} (application group {group:?}) failed: {e}");
            self.log.log(Level::Error, &msgid::line(msgid::IMPORT_FAILED, &path.display().to_string(), &msg));
        }
    }

    /// The process-wide log.
    pub fn log(&self) -> &Arc<dyn LogSink> {
        &self.log
    }

    /// Whether requests can be served; logs why not (against `context`) when they cannot.
    pub fn ready(&self, log: &dyn LogSink, context: &str) -> bool {
        match &self.startup_error {
            None => true,
            Some(e) => {
                let msg = format!("cannot serve: Python failed to start in this process: {e}");
                log.log(Level::Error, &msgid::line(msgid::PYTHON_START_FAILED, context, &msg));
                false
            }
        }
    }

    /// The environ of `meta` without `wsgi.input`/`wsgi.errors`, for code that decides how
    /// the request is served before its application runs (mod_wsgi's dispatch scripts).
    pub fn environ<'py>(&self, py: Python<'py>, meta: &RequestMeta<'_>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        match &self.template {
            Some(t) => Ok(t.build(py, meta)?.finish()),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err("Python did not start in this process")),
        }
    }

    /// The interpreter `meta`'s application group names (`meta.app.application_group`: ""
    /// is the main one), made now if needed. For a thread that is not attached; `None`:
    /// it cannot be made, which is logged (against `context`), and the request gets a 500.
    pub fn interpreter(&self, meta: &RequestMeta<'_>, log: &dyn LogSink, context: &str) -> Option<Interp> {
        let name = group_name(&meta.app.application_group);
        match interp::resolve(&name) {
            Ok(i) => Some(i),
            Err(e) => {
                log.log(Level::Error, &format!("{context}: application group {name:?}: {e}"));
                None
            }
        }
    }

    /// Serve a request to the end in its application group's interpreter (entered here if
    /// it is not current already): load the script, call the application, produce the
    /// whole response, publish mod_wsgi's `request_finished`. `None`: a 500 (logged).
    pub fn serve(&self, py: Python<'_>, meta: &RequestMeta<'_>, ch: Channel) -> Option<Outcome> {
        self.serve_with(py, meta, ch, meta.app.script_reloading)
    }

    /// [`Worker::serve`], reloading a changed script in place only if `reload` (see
    /// [`Worker::begin_with`]).
    pub fn serve_with(&self, py: Python<'_>, meta: &RequestMeta<'_>, ch: Channel, reload: bool) -> Option<Outcome> {
        let name = group_name(&meta.app.application_group);
        let group = match interp::get_or_create(py, &name) {
            Ok(i) => i,
            Err(e) => {
                ch.log.log(Level::Error, &format!("{}: application group {name:?}: {e}", ch.context));
                return None;
            }
        };
        let log = ch.log.clone();
        let context = ch.context.clone();
        let run = move |py: Python<'_>| {
            let started = std::time::Instant::now();
            let mut ex = self.begin_with(py, meta, ch, reload)?;
            let outcome = loop {
                if let Some(outcome) = ex.pump(py, None) {
                    break outcome;
                }
            };
            let io = ex.counters(py);
            drop(ex);
            super::modwsgi_module::request_finished(py, started, &io);
            Some(outcome)
        };
        match group.with(py, run) {
            Ok(outcome) => outcome,
            Err(e) => {
                log.log(Level::Error, &format!("{context}: application group {name:?}: {e}"));
                None
            }
        }
    }

    /// Load the request's script and call its application. `None` means the request gets a
    /// 500; what went wrong is in the log already. Runs in the current interpreter (see
    /// [`Worker::serve`] for one that enters the request's application group).
    pub fn begin(&self, py: Python<'_>, meta: &RequestMeta<'_>, ch: Channel) -> Option<Exchange> {
        self.begin_with(py, meta, ch, meta.app.script_reloading)
    }

    /// [`Worker::begin`], reloading a changed script in place only if `reload` (daemon mode
    /// passes `false`: it restarts the process instead; `meta.app.script_reloading` still
    /// goes into the environ).
    pub fn begin_with(&self, py: Python<'_>, meta: &RequestMeta<'_>, ch: Channel, reload: bool) -> Option<Exchange> {
        let template = self.template.as_ref()?;
        // What the script prints or logs while it loads belongs to this request too.
        let _scope = super::log::RequestScope::enter(ch.log.clone());
        let script = Path::new(OsStr::from_bytes(&meta.app.script));
        let callable = std::str::from_utf8(&meta.app.callable).unwrap_or("application");
        let app = match script::application(py, script, callable, reload) {
            Ok(app) => app,
            Err(e) => {
                let what = "failed to load the WSGI script";
                log_exception_id(py, &*ch.log, msgid::SCRIPT_LOAD_FAILED, &ch.context, what, &e);
                sub_interpreter_hint(py, &*ch.log, &ch.context, meta, &e);
                return None;
            }
        };
        let environ = match template.build(py, meta) {
            Ok(env) => env,
            Err(e) => {
                log_exception(py, &*ch.log, &ch.context, "failed to build the WSGI environ", &e);
                return None;
            }
        };
        let wrapped = match super::modwsgi_module::request_started(py, environ.dict(), &app) {
            Ok(w) => w.map(|w| w.into_bound(py)),
            Err(e) => {
                log_exception(py, &*ch.log, &ch.context, "mod_wsgi request_started event failed", &e);
                None
            }
        };
        let app = wrapped.as_ref().unwrap_or(&app);
        let parts = RequestParts { body: ch.body, sink: ch.sink, log: ch.log.clone(), context: ch.context.clone() };
        match Exchange::begin(py, app, environ, parts) {
            Ok(ex) => Some(ex),
            Err(e) => {
                log_exception(py, &*ch.log, &ch.context, "internal error", &e);
                // The request started (mod_wsgi's counters) but no exchange ends it.
                super::modwsgi_module::request_finished(py, std::time::Instant::now(), &Default::default());
                None
            }
        }
    }
}

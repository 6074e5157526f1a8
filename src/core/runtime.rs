//! Process-wide Python set-up, run once in each server worker process right after the
//! interpreter starts: `threading`, logging to the server's error log, `sys.path`, and the
//! scripts to preload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};

use super::errors::ErrorStream;
use super::{Level, LogSink};
use crate::ffi::python::{self, StartConfig};

/// Everything a worker needs to start Python.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    pub start: StartConfig,
    /// Added to the front of `sys.path` (with `.pth` processing, like site-packages).
    pub python_path: Vec<PathBuf>,
    /// `sys.setswitchinterval`.
    pub switch_interval: Option<f64>,
    /// mod_wsgi's `mod_wsgi` module and process settings (`WSGIRestrict*`, eggs).
    pub modwsgi: super::modwsgi_module::ModWsgiConfig,
}

static PROCESS_LOG: OnceLock<Arc<dyn LogSink>> = OnceLock::new();

/// The process-wide error log (set by [`start`]).
pub fn process_log() -> Arc<dyn LogSink> {
    PROCESS_LOG.get().cloned().unwrap_or_else(|| Arc::new(super::log::StderrLog))
}

/// Bridge from Python's `logging` to the server log, used when the application configured
/// no handler of its own (`logging.lastResort`), so records keep their level.
const LOGGING_BRIDGE: &str = r#"
import logging, oxwsgi

class ServerLogHandler(logging.Handler):
    """Sends log records to the web server's error log at the matching level."""
    def emit(self, record):
        try:
            msg = self.format(record)
        except Exception:
            self.handleError(record)
            return
        oxwsgi.log(record.levelno, msg)

logging.lastResort = ServerLogHandler(logging.WARNING)
oxwsgi.ServerLogHandler = ServerLogHandler

# basicConfig() with no destination (also called implicitly by logging.warning() & co.)
# would attach a StreamHandler on sys.stderr, flattening every level to one; point it at
# the server log instead. An explicit stream/filename/handlers is left alone.
_basic_config = logging.basicConfig
def basicConfig(**kwargs):
    if not any(k in kwargs for k in ("stream", "filename", "handlers")):
        kwargs["handlers"] = [ServerLogHandler()]
    return _basic_config(**kwargs)
basicConfig.__doc__ = _basic_config.__doc__
logging.basicConfig = basicConfig
"#;

#[pyfunction]
#[pyo3(name = "log")]
fn py_log(levelno: i64, message: &str) {
    // Inside a request, its log (with the request's context); else the process log.
    let log = super::log::request_log().unwrap_or_else(process_log);
    for line in message.lines() {
        log.log(Level::from_python(levelno), line);
    }
}

/// Start the interpreter in this worker and prepare it. On error, nothing can be served;
/// the message says why.
pub fn start(cfg: &RuntimeConfig, log: Arc<dyn LogSink>) -> Result<(), String> {
    let _ = PROCESS_LOG.set(log.clone());
    python::start(&cfg.start)?;
    let r = Python::attach(|py| prepare(py, cfg, log).map_err(|e| describe(py, &e)));
    python::release_after_start();
    r
}

/// A Python error as one line plus traceback, for start-up messages.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    let tb = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.clone_ref(py).into_value(py),)))
        .and_then(|l| l.extract::<Vec<String>>())
        .map(|l| l.concat());
    tb.unwrap_or_else(|_| err.to_string()).trim_end().to_string()
}

/// Prepare a new sub-interpreter (`interp`) as [`start`] prepares the main one: its own
/// `oxwsgi` and `mod_wsgi` modules (whose `application_group` is `name`), `sys.stdout` and
/// `sys.stderr` to the error log, the `logging` bridge and `WSGIPythonPath`.
pub fn prepare_interpreter(py: Python<'_>, cfg: &RuntimeConfig, log: Arc<dyn LogSink>, name: &str) -> PyResult<()> {
    prepare(py, cfg, log)?;
    py.import("mod_wsgi")?.setattr("application_group", name)
}

fn prepare(py: Python<'_>, cfg: &RuntimeConfig, log: Arc<dyn LogSink>) -> PyResult<()> {
    // Import threading on this (the main) thread: imported first inside a request, it
    // would take that worker thread for the main thread (build-facts §1).
    py.import("threading")?;
    let sys = py.import("sys")?;

    let m = PyModule::new(py, "oxwsgi")?;
    m.add("version", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(py_log, &m)?)?;
    m.add_class::<ErrorStream>()?;
    m.add_class::<super::input::Input>()?;
    m.add_class::<super::file_wrapper::FileWrapper>()?;
    sys.getattr("modules")?.set_item("oxwsgi", &m)?;
    py.run(&std::ffi::CString::new(LOGGING_BRIDGE).unwrap(), None, None)?;

    // print() and stray tracebacks land in the error log, as under mod_wsgi.
    // Inside a request they write to the request's log (see log::RequestScope).
    sys.setattr("stdout", Py::new(py, ErrorStream::process_wide(log.clone(), Level::Error))?)?;
    sys.setattr("stderr", Py::new(py, ErrorStream::process_wide(log, Level::Error))?)?;
    super::modwsgi_module::install(py, &cfg.modwsgi)?;

    if !cfg.python_path.is_empty() {
        add_python_path(py, &cfg.python_path)?;
    }
    if let Some(s) = cfg.switch_interval {
        sys.call_method1("setswitchinterval", (s,))?;
    }
    Ok(())
}

/// Add directories in front of `sys.path`, processing their `.pth` files (site.addsitedir).
fn add_python_path(py: Python<'_>, dirs: &[PathBuf]) -> PyResult<()> {
    let sys = py.import("sys")?;
    let site = py.import("site")?;
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    let before: Vec<String> = path.extract()?;
    for d in dirs {
        site.call_method1("addsitedir", (d.to_string_lossy().as_ref(),))?;
    }
    let after: Vec<String> = path.extract()?;
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    let rest: Vec<&String> = after.iter().filter(|p| before.contains(p)).collect();
    let new: Vec<&String> = added.into_iter().chain(rest).collect();
    sys.setattr("path", PyList::new(py, new)?)?;
    Ok(())
}

/// The python-home check shared with the `oxwsgi` launcher (crate `oxwsgi-checks`), against
/// the Python this module is linked with. Err is one line: what is wrong; how to fix it.
pub fn check_python_home(home: &Path) -> Result<oxwsgi_checks::Home, String> {
    oxwsgi_checks::check_python_home(home, &python::linked_version()).map_err(|p| p.to_string())
}

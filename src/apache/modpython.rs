//! mod_python handlers on httpd: the phase hooks, the one `req` per request, the
//! interpreter a handler runs in, `PythonImport` at child start, and the cleanup phase.
//!
//! The dispatch itself (resolving `module::object`, `PythonPath`, auto-reload, stacking,
//! `SERVER_RETURN`, error pages) is Python, in the embedded `mod_python.apache`
//! (src/core/modpython/); this file decides *whether* a phase has anything to run and
//! turns its result into httpd's.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use super::httpd::Request;
use super::modpython_conf::{self, CLEANUP, Handler, MpConf, PHASES};
use super::modpython_req::{MpConnection, MpRequest, MpServer, MpTable};
use crate::core::modpython as package;
use crate::core::{Level, interp, response::log_exception, worker};
use crate::ffi::guard::guard;
use crate::ffi::httpd::{DECLINED, HTTP_INTERNAL_SERVER_ERROR, HTTP_UNAUTHORIZED, OK};
use crate::ffi::python;

/// The phase number of `enum oxwsgi_mp_phase` (C) that needs special treatment.
const AUTHEN: usize = 4;

/// The `req` of every request that ran a mod_python phase, by `request_rec` address;
/// removed by the request pool's cleanup.
static REQUESTS: Mutex<Option<HashMap<usize, Entry>>> = Mutex::new(None);

struct Entry {
    req: Py<MpRequest>,
}

/// httpd's `APLOG_*` number as a level.
pub fn aplog_to_level(level: i32) -> Level {
    match level {
        0..=2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warning,
        5 => Level::Notice,
        6 => Level::Info,
        _ => Level::Debug,
    }
}

/// mod_python's interpreter name for a handler list of this request: `PythonInterpreter`,
/// else the file's directory (`PythonInterpPerDirectory`), else the directive's directory
/// (`PythonInterpPerDirective`), else the virtual host's `ServerName`.
pub(super) fn interpreter_name(r: &Request, conf: &MpConf, first: Option<&Handler>) -> String {
    if let Some(n) = &conf.interpreter {
        return n.clone();
    }
    if conf.interp_per_directory == Some(true) {
        let f = String::from_utf8_lossy(r.filename()).into_owned();
        let dir = match f.rfind('/') {
            Some(i) => f[..=i].to_string(),
            None => f,
        };
        if !dir.is_empty() {
            return dir;
        }
    }
    if conf.interp_per_directive == Some(true) {
        if let Some(d) = first.and_then(|h| h.directory.clone()) {
            return d;
        }
    }
    String::from_utf8_lossy(r.server().hostname()).into_owned()
}

/// Run `f` in the interpreter called `name` (mod_python's name: the virtual host's
/// `ServerName` by default, `PythonInterpreter`, the directory for
/// `PythonInterpPerDirectory`/`PerDirective`; `main_interpreter` is the main one).
///
/// The one place that picks the interpreter. The names share the registry of WSGI
/// application groups (`core::interp`, docs/interpreters.md): a handler and a WSGI
/// application with the same name share one interpreter, as under mod_python beside
/// mod_wsgi. The `mod_python` package is installed in each interpreter on first use.
/// `Err`: the interpreter could not be made (the reason is in the text).
pub(super) fn in_interpreter<R>(
    py: Python<'_>,
    name: &str,
    f: impl for<'py> FnOnce(Python<'py>) -> R,
) -> Result<R, String> {
    let registry_name = if name == "main_interpreter" { "" } else { name };
    let i = interp::get_or_create(py, registry_name)?;
    i.with(py, |py| match ensure_package(py) {
        Ok(()) => Ok(f(py)),
        Err(e) => Err(format!("the mod_python package failed to load in interpreter {name:?}: {e}")),
    })?
}

/// The `mod_python._oxwsgi` native module: the request types and `log_error`.
fn native_module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    let m = PyModule::new(py, "mod_python._oxwsgi")?;
    m.add_class::<MpRequest>()?;
    m.add_class::<MpTable>()?;
    m.add_class::<MpConnection>()?;
    m.add_class::<MpServer>()?;
    m.add_class::<super::modpython_filter::MpFilter>()?;
    m.add_function(pyo3::wrap_pyfunction!(log_error, &m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(mpm_query, &m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(exists_config_define, &m)?)?;
    Ok(m)
}

/// `apache.log_error(message, level)` without a request: the main server's error log.
#[pyfunction]
#[pyo3(signature = (message, level = 3))]
fn log_error(message: &str, level: i32) {
    if let Some(w) = worker::get() {
        w.log().log(aplog_to_level(level), message);
    }
}

/// `apache.mpm_query(code)`: an `AP_MPMQ_*` value of the MPM (0 when it does not answer).
#[pyfunction]
fn mpm_query(code: u32) -> i32 {
    super::httpd::process::mpm_query(code).unwrap_or(0)
}

/// `apache.exists_config_define(name)`: httpd was started with `-D name`.
#[pyfunction]
fn exists_config_define(name: &str) -> PyResult<bool> {
    let c = std::ffi::CString::new(name).map_err(|_| pyo3::exceptions::PyValueError::new_err("NUL in the name"))?;
    Ok(super::httpd::process::config_define_exists(&c))
}

/// The embedded `mod_python` package, installed into `sys.modules` once.
fn ensure_package(py: Python<'_>) -> PyResult<()> {
    package::install(py, native_module)
}

/// One hook of a request whose context has mod_python directives.
pub fn phase(r: &Request, phase: usize) -> c_int {
    let Some(conf) = r.dir_conf().modpython() else { return DECLINED as c_int };
    let key = r.as_ptr() as usize;
    let filename = r.filename();
    let configured: Vec<Handler> = conf.list(phase).iter().filter(|h| h.applies_to(filename)).cloned().collect();
    // What req.add_handler queued for this phase (read without the GIL: most phases of
    // most requests have nothing to run and return here).
    let added: Vec<Handler> = REQUESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
        .map(|e| e.req.get().added(phase))
        .unwrap_or_default();
    if configured.is_empty() && added.is_empty() {
        return DECLINED as c_int;
    }
    let Some(w) = worker::get() else {
        r.log(Level::Error, "oxwsgi: mod_python handler, but Python is not running in this process");
        return HTTP_INTERNAL_SERVER_ERROR as c_int;
    };
    let log = w.log().clone();
    if !w.ready(&*log, "mod_python") {
        return HTTP_INTERNAL_SERVER_ERROR as c_int;
    }
    let interp = interpreter_name(r, &conf, configured.first());
    python::keep_thread_state();
    let rc = Python::attach(|py| {
        in_interpreter(py, &interp, |py| {
            let result = (|| -> PyResult<i32> {
                let req = request(py, r, &conf, &interp)?;
                let mut handlers = configured.clone();
                handlers.extend(added.iter().cloned());
                req.get().enter_phase(PHASES[phase], conf.clone(), &interp);
                dispatch(py, &req, PHASES[phase], &handlers, &conf)
            })();
            result.unwrap_or_else(|e| {
                log_exception(py, &*log, "mod_python", "dispatch failed", &e);
                HTTP_INTERNAL_SERVER_ERROR as i32
            })
        })
        .unwrap_or_else(|e| {
            log.log(Level::Error, &format!("mod_python: interpreter {interp:?}: {e}"));
            HTTP_INTERNAL_SERVER_ERROR as i32
        })
    });
    if phase == AUTHEN {
        if rc == OK as i32 && r.user().is_none() {
            r.log(
                Level::Error,
                "oxwsgi: PythonAuthenHandler returned OK but did not set req.user (mod_python answers 500 too)",
            );
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        }
        if rc == HTTP_UNAUTHORIZED as i32 {
            r.note_basic_auth_failure();
        }
    }
    rc
}

/// Call `mod_python.apache._dispatch(req, phase, handlers, debug, autoreload, path)`.
fn dispatch(py: Python<'_>, req: &Py<MpRequest>, phase: &str, handlers: &[Handler], conf: &MpConf) -> PyResult<i32> {
    let list = PyList::empty(py);
    for h in handlers {
        list.append(PyTuple::new(
            py,
            [
                h.spec.clone().into_pyobject(py)?.into_any(),
                h.default_object.clone().into_pyobject(py)?.into_any(),
                h.directory.clone().into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, h.is_location).to_owned().into_any(),
                pyo3::types::PyBool::new(py, h.silent).to_owned().into_any(),
            ],
        )?)?;
    }
    // Looked up per call: each interpreter has its own `mod_python.apache` (a dict
    // look-up in `sys.modules`).
    py.import("mod_python.apache")?
        .getattr("_dispatch")?
        .call1((
            req.clone_ref(py),
            phase,
            list,
            conf.debug.unwrap_or(false),
            conf.autoreload.unwrap_or(true),
            conf.path.clone(),
        ))?
        .extract()
}

/// This request's `req`, made (and its end arranged) on first use (phases, filters,
/// related requests).
pub(super) fn request(py: Python<'_>, r: &Request, conf: &Arc<MpConf>, interp: &str) -> PyResult<Py<MpRequest>> {
    let key = r.as_ptr() as usize;
    if let Some(e) = REQUESTS.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(&key)) {
        return Ok(e.req.clone_ref(py));
    }
    ensure_package(py)?;
    let req = Py::new(py, MpRequest::new(r, conf.clone(), interp.to_string()))?;
    REQUESTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(key, Entry { req: req.clone_ref(py) });
    r.pool().on_clear_data(key, request_ended);
    Ok(req)
}

/// The request pool's cleanup: `PythonCleanupHandler`s, `req.register_cleanup`
/// callables, then the `req` stops lending the request.
///
/// # Safety
/// Registered by [`request`] with the request's address as data; called by APR only.
unsafe extern "C" fn request_ended(data: *mut c_void) -> crate::ffi::httpd::apr_status_t {
    guard("mod_python cleanup", 0, || {
        let key = data as usize;
        let Some(entry) = REQUESTS.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|m| m.remove(&key))
        else {
            return 0;
        };
        let req = entry.req;
        let r = req.get();
        r.begin_end();
        let conf = r.conf();
        let interp = r.interpreter_name();
        let mut handlers: Vec<Handler> = conf.list(CLEANUP).to_vec();
        handlers.extend(r.added(CLEANUP));
        if handlers.is_empty() && !r.has_cleanups() {
            // Nothing to run: no GIL needed (the reference is released when Python next
            // runs).
            r.end();
            return 0;
        }
        python::keep_thread_state();
        Python::attach(|py| {
            let ran = in_interpreter(py, &interp, |py| {
                if !handlers.is_empty() {
                    r.enter_phase(PHASES[CLEANUP], conf.clone(), &interp);
                    if let Err(e) = dispatch(py, &req, PHASES[CLEANUP], &handlers, &conf) {
                        if let Some(w) = worker::get() {
                            log_exception(py, &**w.log(), "mod_python", "PythonCleanupHandler failed", &e);
                        }
                    }
                }
                for (callable, data) in r.take_cleanups() {
                    if let Err(e) = callable.call1(py, (data,)) {
                        if let Some(w) = worker::get() {
                            log_exception(py, &**w.log(), "mod_python", "req.register_cleanup callable failed", &e);
                        }
                    }
                }
            });
            if let (Err(e), Some(w)) = (ran, worker::get()) {
                w.log().log(Level::Error, &format!("mod_python cleanup: interpreter {interp:?}: {e}"));
            }
            r.end();
        });
        0
    })
}

/// `PythonImport`s, at child start (after Python started): each module imported (and its
/// function called) in its interpreter; a failure is logged and the child serves on.
pub fn child_init() {
    let imports = modpython_conf::imports();
    if imports.is_empty() {
        return;
    }
    let Some(w) = worker::get() else { return };
    let log = w.log().clone();
    if !w.ready(&*log, "PythonImport") {
        return;
    }
    python::keep_thread_state();
    Python::attach(|py| {
        if let Err(e) = ensure_package(py) {
            log_exception(py, &*log, "PythonImport", "the mod_python package failed to load", &e);
            return;
        }
        for i in imports {
            let ran = in_interpreter(py, &i.interpreter, |py| {
                let r = py
                    .import("mod_python.apache")
                    .and_then(|m| m.getattr("_import_dispatch"))
                    .and_then(|f| f.call1((i.module.as_str(), i.interpreter.as_str(), modpython_conf::main_path())));
                if let Err(e) = r {
                    log_exception(py, &*log, &format!("PythonImport {} {}", i.module, i.interpreter), "failed", &e);
                }
            });
            if let Err(e) = ran {
                log.log(Level::Error, &format!("PythonImport {} {}: {e}", i.module, i.interpreter));
            }
        }
    });
}

//! Loading WSGI scripts (`app.wsgi` files) as modules, once per process, and re-loading
//! them when their modification time changes (mod_wsgi's `WSGIScriptReloading On`),
//! checked at most once a second per process. Each interpreter loads its own copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use pyo3::exceptions::{PyAttributeError, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::PyModule;

struct Entry {
    mtime: Option<SystemTime>,
    /// When the file's mtime was last compared (at most once a second: a stat per request
    /// showed up as 7% of an nginx worker's time on a hello-world app).
    checked: Instant,
    module: Py<PyModule>,
}

/// How often a script's modification time is checked for reloading.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Loaded scripts of this process, keyed by interpreter (each has its own modules: a script
/// used by two application groups is loaded in each) and path.
/// A few interpreters per process: a linear search over their ids beats hashing one.
static SCRIPTS: Mutex<Vec<(i64, HashMap<PathBuf, Entry>)>> = Mutex::new(Vec::new());

/// The scripts of interpreter `id`.
fn of_interpreter(all: &mut Vec<(i64, HashMap<PathBuf, Entry>)>, id: i64) -> &mut HashMap<PathBuf, Entry> {
    match all.iter().position(|(i, _)| *i == id) {
        Some(n) => &mut all[n].1,
        None => {
            all.push((id, HashMap::new()));
            &mut all.last_mut().expect("just pushed").1
        }
    }
}

/// The module name a script is loaded under: unique per path, like mod_wsgi's
/// `_mod_wsgi_<hash>`, so two `app.wsgi` files never share a module.
pub fn module_name(path: &Path) -> String {
    // FNV-1a: stable across processes and builds (Rust's default hasher is not).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("_oxwsgi_{h:016x}")
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Execute the script file as a fresh module registered in `sys.modules`.
fn load<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, PyModule>> {
    let source = std::fs::read(path)
        .map_err(|e| PyOSError::new_err(format!("cannot read WSGI script {}: {e}", path.display())))?;
    let name = module_name(path);
    let builtins = py.import("builtins")?;
    let file = path.to_string_lossy().into_owned();
    let code = builtins.getattr("compile")?.call1((source, &file, "exec"))?;
    let module = PyModule::new(py, &name)?;
    module.setattr("__file__", &file)?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item(&name, &module)?;
    if let Err(e) = builtins.getattr("exec")?.call1((code, module.dict())) {
        let _ = modules.del_item(&name);
        return Err(e);
    }
    Ok(module)
}

/// The module of a script, loading it on first use or when it changed (`reload`).
pub fn module<'py>(py: Python<'py>, path: &Path, reload: bool) -> PyResult<Bound<'py, PyModule>> {
    // Waiting for the lock detaches from Python: another thread may hold it while it runs
    // a script's top-level code, which needs the GIL to finish.
    let mut guard = SCRIPTS.lock_py_attached(py).unwrap_or_else(|p| p.into_inner());
    let map = of_interpreter(&mut guard, super::interp::current_id(py));
    if let Some(entry) = map.get_mut(path) {
        if !reload || entry.checked.elapsed() < RELOAD_CHECK_INTERVAL {
            return Ok(entry.module.bind(py).clone());
        }
        entry.checked = Instant::now();
        if entry.mtime == mtime(path) {
            return Ok(entry.module.bind(py).clone());
        }
    }
    let stamp = mtime(path);
    let module = load(py, path)?;
    map.insert(path.to_path_buf(), Entry { mtime: stamp, checked: Instant::now(), module: module.clone().unbind() });
    Ok(module)
}

/// Whether the script at `path` was loaded in this process and its file changed since
/// (its modification time differs, or it is gone). Stats the file on every call, without
/// embedded mode's once-a-second limit: daemon mode asks once per request and restarts
/// the process rather than reloading the module in place (mod_wsgi's rule).
pub fn changed(py: Python<'_>, path: &Path) -> bool {
    let id = super::interp::current_id(py);
    let guard = SCRIPTS.lock_py_attached(py).unwrap_or_else(|p| p.into_inner());
    match guard.iter().find(|(i, _)| *i == id).and_then(|(_, m)| m.get(path)) {
        Some(entry) => entry.mtime != mtime(path),
        None => false,
    }
}

/// The WSGI callable `name` of the script at `path`.
pub fn application<'py>(py: Python<'py>, path: &Path, name: &str, reload: bool) -> PyResult<Bound<'py, PyAny>> {
    let module = module(py, path, reload)?;
    match module.getattr(name) {
        Ok(app) => Ok(app),
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => Err(PyAttributeError::new_err(format!(
            "WSGI script {} defines no callable named {name:?} (see WSGICallableObject / callable=)",
            path.display()
        ))),
        Err(e) => Err(e),
    }
}

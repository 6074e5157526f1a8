//! CPython start-up through `PyConfig` and per-thread thread states: the parts of the C API
//! that pyo3 does not wrap. Everything else talks to Python through pyo3.

use std::cell::Cell;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::ffi;

/// How the interpreter is configured before it starts (python-home, optimisation, ...).
#[derive(Clone, Debug, Default)]
pub struct StartConfig {
    /// A virtualenv (has `pyvenv.cfg`) or a Python prefix; `None` = the linked Python.
    pub home: Option<PathBuf>,
    /// `-O` level (0, 1 or 2).
    pub optimize: i32,
    /// `PYTHONHASHSEED`: `None` = random.
    pub hash_seed: Option<u32>,
    /// `PYTHONDONTWRITEBYTECODE`.
    pub dont_write_bytecode: bool,
    /// `-W` options.
    pub warnings: Vec<String>,
}

/// The interpreter this module was linked against, as `sys.executable` should report it.
pub const LINKED_PYTHON: &str = match option_env!("PYO3_PYTHON") {
    Some(p) => p,
    None => "/usr/bin/python3",
};

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}

fn path_cstring(p: &Path) -> Result<CString, String> {
    cstring(p.to_str().ok_or_else(|| format!("path {} is not UTF-8", p.display()))?)
}

/// Turn a failed `PyStatus` into a message.
fn status_error(status: &ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the struct we pass by value.
    if unsafe { ffi::PyStatus_Exception(*status) } == 0 {
        return Ok(());
    }
    let msg = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: err_msg is a static NUL-terminated C string set by CPython.
        unsafe { std::ffi::CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
    };
    Err(format!("{what}: {msg}"))
}

/// Start CPython in this process. Must run once, on the thread that will keep the main
/// thread state (httpd `child_init`, nginx `init_process`). Returns with the GIL held by
/// this thread; call [`release_after_start`] when set-up code is done.
pub fn start(cfg: &StartConfig) -> Result<(), String> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err("Python is already initialized in this process".into());
    }
    // SAFETY: PyConfig is a plain C struct; PyConfig_InitIsolatedConfig fills every field
    // before any is read, and PyConfig_Clear frees what the setters allocated.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        // Isolated: ignore PYTHON* variables of the server's environment and the user
        // site directory; a server's Python must not depend on who started it.
        ffi::PyConfig_InitIsolatedConfig(&mut config);
        config.install_signal_handlers = 0;
        config.site_import = 1;
        config.optimization_level = cfg.optimize;
        config.write_bytecode = if cfg.dont_write_bytecode { 0 } else { 1 };
        if let Some(seed) = cfg.hash_seed {
            config.use_hash_seed = 1;
            config.hash_seed = seed as _;
        }
        let result = (|| -> Result<(), String> {
            // sys.executable must be set explicitly: left alone, CPython searches PATH for
            // "python3" and may find another interpreter (build-facts §1).
            let executable = match &cfg.home {
                Some(home) if home.join("pyvenv.cfg").exists() => venv_python(home),
                Some(home) => {
                    let h = path_cstring(home)?;
                    let st = ffi::PyConfig_SetBytesString(&mut config, &mut config.home, h.as_ptr());
                    status_error(&st, "setting python home")?;
                    home.join("bin").join("python3")
                }
                None => PathBuf::from(LINKED_PYTHON),
            };
            let exe = path_cstring(&executable)?;
            let st = ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr());
            status_error(&st, "setting sys.executable")?;
            for w in &cfg.warnings {
                let c = cstring(w)?;
                let mut wide: *mut libc::wchar_t = std::ptr::null_mut();
                let st = ffi::PyConfig_SetBytesString(&mut config, &mut wide, c.as_ptr());
                status_error(&st, "decoding a warnings option")?;
                let st = ffi::PyWideStringList_Append(&mut config.warnoptions, wide);
                ffi::PyMem_RawFree(wide.cast());
                status_error(&st, "adding a warnings option")?;
            }
            let st = ffi::Py_InitializeFromConfig(&config);
            status_error(&st, "initializing Python")
        })();
        ffi::PyConfig_Clear(&mut config);
        result?;
    }
    Ok(())
}

/// The interpreter inside a virtualenv: bin/python3, else bin/python.
fn venv_python(home: &Path) -> PathBuf {
    let p3 = home.join("bin").join("python3");
    if p3.exists() { p3 } else { home.join("bin").join("python") }
}

thread_local! {
    /// Whether this thread already owns a long-lived Python thread state.
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Release the GIL after [`start`] and set-up, keeping the main thread state for this thread.
pub fn release_after_start() {
    KEPT.with(|k| k.set(true));
    // SAFETY: called once on the thread that ran `start`, which holds the GIL; the saved
    // thread state stays registered as this thread's GIL state for later attaches.
    unsafe {
        ffi::PyEval_SaveThread();
    }
}

/// Give the calling server thread a Python thread state that lives as long as the thread.
///
/// pyo3's `Python::attach` uses `PyGILState_Ensure`/`Release`: on a thread without a
/// thread state the outermost attach creates one and its release destroys it again, for
/// every request, which also drops `threading.local` data. Taking one extra, never
/// released `PyGILState_Ensure` here keeps the state alive (what mod_wsgi does); later
/// attaches only swap the GIL. Cheap after the first call on a thread.
pub fn keep_thread_state() {
    KEPT.with(|k| {
        if !k.get() {
            // SAFETY: Python is initialized (callers only serve requests after `start`),
            // and this thread does not hold the GIL here (no attach is active: we are
            // called before attaching). Ensure creates and registers the thread state
            // and takes the GIL; SaveThread releases the GIL but keeps the state.
            unsafe {
                let _ = ffi::PyGILState_Ensure();
                ffi::PyEval_SaveThread();
            }
            k.set(true);
        }
    });
}

/// "major.minor" of the linked libpython (valid before initialization).
pub fn linked_version() -> String {
    // SAFETY: Py_GetVersion returns a static string and needs no initialized interpreter.
    let v = unsafe { std::ffi::CStr::from_ptr(ffi::Py_GetVersion()) };
    let v = v.to_string_lossy();
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => format!("{a}.{b}"),
        _ => v.into_owned(),
    }
}

unsafe extern "C" {
    /// CPython's dict constructor with room for `minused` items (exported by libpython,
    /// not wrapped by pyo3-ffi because it is underscore-prefixed).
    fn _PyDict_NewPresized(minused: ffi::Py_ssize_t) -> *mut ffi::PyObject;
}

/// A new dict with room for `n` items without resizing. `PyDict_Copy` of such a dict keeps
/// the room, which is what makes the per-request environ copy resize-free.
pub fn dict_with_capacity(py: pyo3::Python<'_>, n: usize) -> pyo3::PyResult<pyo3::Bound<'_, pyo3::types::PyDict>> {
    use pyo3::prelude::*;
    // SAFETY: the GIL is held (we have `py`); the call returns a new reference or NULL
    // with an exception set, which from_owned_ptr_or_err turns into an error.
    unsafe {
        let ptr = _PyDict_NewPresized(n as ffi::Py_ssize_t);
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// A str whose code points are the bytes of `data` (latin-1 decoding), made in one copy.
pub fn latin1_str<'py>(py: pyo3::Python<'py>, data: &[u8]) -> pyo3::Bound<'py, pyo3::types::PyString> {
    use pyo3::prelude::*;
    // SAFETY: the GIL is held; PyUnicode_FromKindAndData reads len bytes of a 1-byte-kind
    // buffer (every byte is a valid UCS1 code point) and returns a new reference, or NULL
    // only on memory exhaustion, which we treat as fatal like any allocation failure.
    unsafe {
        let ptr = ffi::PyUnicode_FromKindAndData(
            ffi::PyUnicode_1BYTE_KIND as std::ffi::c_int,
            data.as_ptr().cast(),
            data.len() as ffi::Py_ssize_t,
        );
        Bound::from_owned_ptr(py, ptr).cast_into_unchecked()
    }
}

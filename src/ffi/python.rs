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

/// A `PyConfig` being filled before start-up; its allocations are freed on drop.
struct Config(ffi::PyConfig);

/// The wide-string fields of `PyConfig` that [`Config::set_string`] fills.
enum Field {
    Home,
    Executable,
}

impl Config {
    /// An isolated configuration: PYTHON* variables of the server's environment and the
    /// user site directory are ignored; a server's Python must not depend on who started it.
    fn isolated() -> Config {
        // SAFETY: PyConfig is a plain C struct of integers and pointers, for which all-zero
        // is a valid value; PyConfig_InitIsolatedConfig below sets every field anyway.
        let mut c = Config(unsafe { std::mem::zeroed() });
        // SAFETY: c.0 is a PyConfig we own; the call writes the isolated defaults.
        unsafe { ffi::PyConfig_InitIsolatedConfig(&mut c.0) };
        c
    }

    /// Decode `value` (the locale's encoding, as CPython does for paths) into `field`.
    fn set_string(&mut self, field: Field, value: &CString, what: &str) -> Result<(), String> {
        let config: *mut ffi::PyConfig = &mut self.0;
        let slot = match field {
            // SAFETY: config points at self.0, initialised and exclusively borrowed here;
            // this only computes the address of one of its fields.
            Field::Home => unsafe { &raw mut (*config).home },
            // SAFETY: as for Home: a field address inside the live, borrowed self.0.
            Field::Executable => unsafe { &raw mut (*config).executable },
        };
        // SAFETY: config and slot point into the initialised self.0; CPython frees the
        // field's old value and stores a new allocation, which PyConfig_Clear frees.
        let st = unsafe { ffi::PyConfig_SetBytesString(config, slot, value.as_ptr()) };
        status_error(&st, what)
    }

    /// Add a `-W` option.
    fn add_warning(&mut self, value: &CString) -> Result<(), String> {
        let config: *mut ffi::PyConfig = &mut self.0;
        let mut wide: *mut libc::wchar_t = std::ptr::null_mut();
        // SAFETY: config points at the initialised self.0 (read for its encoding settings
        // only); the decoded string is a new PyMem_RawMalloc allocation stored in `wide`.
        let st = unsafe { ffi::PyConfig_SetBytesString(config, &mut wide, value.as_ptr()) };
        status_error(&st, "decoding a warnings option")?;
        // SAFETY: a field address inside the live, exclusively borrowed self.0.
        let list = unsafe { &raw mut (*config).warnoptions };
        // SAFETY: list is the initialised warnoptions list of self.0; Append copies `wide`.
        let st = unsafe { ffi::PyWideStringList_Append(list, wide) };
        // SAFETY: wide came from PyConfig_SetBytesString (PyMem_RawMalloc) and was copied.
        unsafe { ffi::PyMem_RawFree(wide.cast()) };
        status_error(&st, "adding a warnings option")
    }

    /// Start the interpreter with this configuration.
    fn initialize(&self) -> Result<(), String> {
        // SAFETY: self.0 is a fully initialised PyConfig; CPython copies what it needs.
        let st = unsafe { ffi::Py_InitializeFromConfig(&self.0) };
        status_error(&st, "initializing Python")
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: self.0 was initialised by PyConfig_InitIsolatedConfig; Clear frees the
        // strings the setters allocated, once (the Config is not used after drop).
        unsafe { ffi::PyConfig_Clear(&mut self.0) };
    }
}

/// Start CPython in this process. Must run once, on the thread that will keep the main
/// thread state (httpd `child_init`, nginx `init_process`). Returns with the GIL held by
/// this thread; call [`release_after_start`] when set-up code is done.
pub fn start(cfg: &StartConfig) -> Result<(), String> {
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err("Python is already initialized in this process".into());
    }
    let mut config = Config::isolated();
    config.0.install_signal_handlers = 0;
    config.0.site_import = 1;
    config.0.optimization_level = cfg.optimize;
    config.0.write_bytecode = if cfg.dont_write_bytecode { 0 } else { 1 };
    if let Some(seed) = cfg.hash_seed {
        config.0.use_hash_seed = 1;
        config.0.hash_seed = seed as _;
    }
    // sys.executable must be set explicitly: left alone, CPython searches PATH for
    // "python3" and may find another interpreter (build-facts §1).
    let executable = match &cfg.home {
        Some(home) if home.join("pyvenv.cfg").exists() => venv_python(home),
        Some(home) => {
            config.set_string(Field::Home, &path_cstring(home)?, "setting python home")?;
            home.join("bin").join("python3")
        }
        None => PathBuf::from(LINKED_PYTHON),
    };
    config.set_string(Field::Executable, &path_cstring(&executable)?, "setting sys.executable")?;
    for w in &cfg.warnings {
        config.add_warning(&cstring(w)?)?;
    }
    config.initialize()
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
    unsafe { ffi::PyEval_SaveThread() };
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
            // and takes the GIL; it is never released, which keeps the state alive.
            let _ = unsafe { ffi::PyGILState_Ensure() };
            // SAFETY: this thread holds the GIL (just taken); SaveThread releases it and
            // keeps the thread state registered for later attaches.
            unsafe { ffi::PyEval_SaveThread() };
            k.set(true);
        }
    });
}

/// "major.minor" of the linked libpython (valid before initialization).
pub fn linked_version() -> String {
    // SAFETY: Py_GetVersion needs no initialized interpreter.
    let p = unsafe { ffi::Py_GetVersion() };
    // SAFETY: p is CPython's static, NUL-terminated version string.
    let v = unsafe { std::ffi::CStr::from_ptr(p) };
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
    // with an exception set.
    let ptr = unsafe { _PyDict_NewPresized(n as ffi::Py_ssize_t) };
    // SAFETY: ptr is a new reference (or NULL, turned into the pending exception).
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, ptr) }?;
    // SAFETY: _PyDict_NewPresized returns a dict.
    Ok(unsafe { obj.cast_into_unchecked() })
}

/// A str whose code points are the bytes of `data` (latin-1 decoding), made in one copy.
pub fn latin1_str<'py>(py: pyo3::Python<'py>, data: &[u8]) -> pyo3::Bound<'py, pyo3::types::PyString> {
    use pyo3::prelude::*;
    // SAFETY: the GIL is held; PyUnicode_FromKindAndData reads len bytes of a 1-byte-kind
    // buffer (every byte is a valid UCS1 code point) and returns a new reference, or NULL
    // only on memory exhaustion, which we treat as fatal like any allocation failure.
    let ptr = unsafe {
        ffi::PyUnicode_FromKindAndData(
            ffi::PyUnicode_1BYTE_KIND as std::ffi::c_int,
            data.as_ptr().cast(),
            data.len() as ffi::Py_ssize_t,
        )
    };
    // SAFETY: ptr is a new, non-NULL reference (see above).
    let obj = unsafe { Bound::from_owned_ptr(py, ptr) };
    // SAFETY: PyUnicode_FromKindAndData returns a str.
    unsafe { obj.cast_into_unchecked() }
}

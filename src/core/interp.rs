//! Named interpreters: mod_wsgi's application groups and mod_python's interpreter names.
//!
//! The name `""` (mod_wsgi's `%{GLOBAL}`, which is also accepted as a name here) is the main
//! interpreter; any other name gets a sub-interpreter of its own, made on first use and
//! kept until the process exits. Code running in two interpreters shares no modules, no
//! module globals and no `sys.modules`. docs/interpreters.md explains the mechanism.
//!
//! The API, for every side that runs Python code for a request:
//!
//! ```ignore
//! let interp = interp::resolve(name)?;          // not attached: find or create
//! let r = interp.attach(|py| run(py))?;         // take the GIL in it, run, release
//! // or, already attached (inside Python::attach or another interpreter's attach):
//! let interp = interp::get_or_create(py, name)?;
//! let r = interp.with(py, |py| run(py))?;
//! ```
//!
//! Every new interpreter is prepared like the main one (the `oxwsgi` and `mod_wsgi`
//! modules, `sys.stdout`/`sys.stderr` to the error log, the `logging` bridge,
//! `WSGIPythonPath`) by the initialisers registered with [`add_initializer`].

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::ffi::interp::{self as sub, SubInterpreter};

/// At most this many sub-interpreters per process: names can come from request data
/// (`%{ENV:var}` set by `SetEnvIf` from a header), and each interpreter costs megabytes.
pub const MAX_INTERPRETERS: usize = 100;

/// mod_wsgi's name for the main interpreter.
pub const GLOBAL: &str = "%{GLOBAL}";

/// One named interpreter of this process. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Interp {
    name: &'static str,
    /// `None`: the main interpreter.
    sub: Option<&'static SubInterpreter>,
}

/// What runs in each new interpreter, in order, with its name (the first error fails it).
type Initializer = Arc<dyn Fn(Python<'_>, &str) -> PyResult<()> + Send + Sync>;

/// The interpreters made so far (or why one could not be), by name.
static REGISTRY: Mutex<Vec<(&'static str, Result<Interp, String>)>> = Mutex::new(Vec::new());
static INITIALIZERS: Mutex<Vec<Initializer>> = Mutex::new(Vec::new());
/// Whether any sub-interpreter was made: until then the main one is always current.
static ANY_SUB: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The interpreter this thread looked up last: requests of one application repeat
    /// the same name, and this spares them the registry's lock and search.
    static LAST: Cell<Option<Interp>> = const { Cell::new(None) };
}

/// The interpreter called `name` if this thread looked it up last.
fn last(name: &str) -> Option<Interp> {
    LAST.with(|l| l.get().filter(|i| i.name == name))
}

fn remember(i: Interp) {
    LAST.with(|l| l.set(Some(i)));
}

/// Whether `name` names the main interpreter (`""` or `%{GLOBAL}`).
pub fn is_main_name(name: &str) -> bool {
    name.is_empty() || name == GLOBAL
}

/// The main interpreter.
pub fn main() -> Interp {
    Interp { name: "", sub: None }
}

/// Run `f` in every interpreter made from now on, right after it starts (before any code
/// of its own). The worker registers the standard set-up at start; another side (the
/// mod_python handlers) may add its own. Not run for the main interpreter.
pub fn add_initializer(f: impl Fn(Python<'_>, &str) -> PyResult<()> + Send + Sync + 'static) {
    INITIALIZERS.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::new(f));
}

/// The interpreter called `name` if it exists already (no GIL needed). `Some(Err)`: making
/// it failed, for the reason given (it is not tried again).
pub fn find(name: &str) -> Option<Result<Interp, String>> {
    if is_main_name(name) {
        return Some(Ok(main()));
    }
    if let Some(i) = last(name) {
        return Some(Ok(i));
    }
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let found = reg.iter().find(|(n, _)| *n == name).map(|(_, r)| r.clone());
    if let Some(Ok(i)) = &found {
        remember(*i);
    }
    found
}

/// The interpreter called `name`, made now if needed. For a caller that is attached (any
/// interpreter may be current; it is current again on return).
pub fn get_or_create(py: Python<'_>, name: &str) -> Result<Interp, String> {
    if is_main_name(name) {
        return Ok(main());
    }
    if let Some(i) = last(name) {
        return Ok(i);
    }
    // Waiting for the lock detaches: the thread holding it may be running a new
    // interpreter's set-up, which needs the GIL to finish.
    let mut reg = pyo3::sync::MutexExt::lock_py_attached(&REGISTRY, py).unwrap_or_else(|p| p.into_inner());
    if let Some((_, r)) = reg.iter().find(|(n, _)| *n == name) {
        if let Ok(i) = r {
            remember(*i);
        }
        return r.clone();
    }
    if reg.len() >= MAX_INTERPRETERS {
        return Err(format!(
            "cannot create the interpreter {name:?}: this process has {MAX_INTERPRETERS} already (the most \
             oxwsgi makes); check what names the application groups (WSGIApplicationGroup %{{ENV:...}}?)"
        ));
    }
    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    let inits: Vec<Initializer> = INITIALIZERS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // New interpreters are made from the main one, whose configuration they copy.
    let made = {
        let _main = if sub::main_is_current(py) { None } else { Some(sub::enter_main(py)?) };
        ANY_SUB.store(true, Ordering::Relaxed);
        SubInterpreter::new(py, |py| {
            for init in &inits {
                init(py, name).map_err(|e| super::runtime::describe(py, &e))?;
            }
            Ok(())
        })
    };
    let r =
        made.map(|s| Interp { name, sub: Some(s) }).map_err(|e| format!("cannot create the interpreter {name:?}: {e}"));
    reg.push((name, r.clone()));
    r
}

/// The interpreter called `name`, made now if needed, for a caller that is not attached.
pub fn resolve(name: &str) -> Result<Interp, String> {
    match find(name) {
        Some(r) => r,
        None => Python::attach(|py| get_or_create(py, name)),
    }
}

/// Every interpreter made so far (sub-interpreters only), in the order they were made.
pub fn subinterpreters() -> Vec<Interp> {
    let reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    reg.iter().filter_map(|(_, r)| r.as_ref().ok().copied()).collect()
}

/// Run `f` in the main interpreter and then in each sub-interpreter (for calls CPython
/// scopes to the current interpreter, such as `PyThreadState_SetAsyncExc`). Attached.
pub fn in_each(py: Python<'_>, mut f: impl FnMut(Python<'_>)) {
    let subs: Vec<Interp> = {
        let reg = pyo3::sync::MutexExt::lock_py_attached(&REGISTRY, py).unwrap_or_else(|p| p.into_inner());
        reg.iter().filter_map(|(_, r)| r.as_ref().ok().copied()).collect()
    };
    for i in std::iter::once(main()).chain(subs) {
        // Err only for an interpreter ended at exit: nothing runs in it any more.
        let _ = i.with(py, &mut f);
    }
}

/// CPython's id of the interpreter the calling thread runs in (0: the main one). Rust-side
/// caches of Python objects that are interpreter-specific (modules, functions) key on it.
pub fn current_id(py: Python<'_>) -> i64 {
    sub::current_id(py)
}

impl Interp {
    /// Its name (`""` for the main interpreter).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether it is the main interpreter.
    pub fn is_main(&self) -> bool {
        self.sub.is_none()
    }

    /// Whether it was ended at exit (the main interpreter never is).
    pub fn is_ended(&self) -> bool {
        self.sub.is_some_and(|s| s.is_ended())
    }

    /// CPython's id (what [`current_id`] returns while it runs).
    pub fn id(&self) -> i64 {
        match self.sub {
            Some(s) => s.id(),
            None => sub::main_id(),
        }
    }

    /// Take the GIL in this interpreter and run `f`, from a thread that is **not** attached
    /// (never call it inside `Python::attach`: it would wait for the GIL this thread holds).
    /// The thread must have a kept thread state (`ffi::python::keep_thread_state`).
    /// Err: the interpreter has been ended (the process is exiting).
    pub fn attach<R>(&self, f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, String> {
        match self.sub {
            None => Ok(Python::attach(f)),
            Some(s) => sub::attach(s, f),
        }
    }

    /// Run `f` in this interpreter from attached code (whichever interpreter is current,
    /// it is current again afterwards). Objects made inside must not be kept past `f`
    /// in Rust statics shared with other interpreters (see docs/interpreters.md).
    pub fn with<R>(&self, py: Python<'_>, f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, String> {
        match self.sub {
            None if !ANY_SUB.load(Ordering::Relaxed) || sub::main_is_current(py) => Ok(f(py)),
            None => {
                let _main = sub::enter_main(py)?;
                Ok(f(py))
            }
            Some(s) if s.is_current(py) => Ok(f(py)),
            Some(s) => {
                let _entered = s.enter(py)?;
                Ok(f(py))
            }
        }
    }

    /// End this sub-interpreter at process exit (see `ffi::interp::SubInterpreter::end`).
    /// Err says why it was left alone. Called with the main interpreter current.
    pub(crate) fn end(&self, py: Python<'_>) -> Result<(), String> {
        match self.sub {
            Some(s) => s.end(py),
            None => Err("the main interpreter is never ended in a server process".into()),
        }
    }
}

impl std::fmt::Debug for Interp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interp({:?}, id {})", self.name, self.id())
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use pyo3::prelude::*;

    use super::*;

    fn run(py: Python<'_>, code: &str) -> PyResult<()> {
        py.run(&CString::new(code).expect("no NUL"), None, None)
    }

    fn probe(py: Python<'_>) -> Option<String> {
        py.import("sys").and_then(|s| s.getattr("oxwsgi_unit_probe")).and_then(|v| v.extract()).ok()
    }

    #[test]
    fn named_interpreters_are_isolated_and_main_is_global() {
        super::super::tests::python();
        let a = resolve("unit-a").expect("made");
        let b = resolve("unit-b").expect("made");
        assert!(!a.is_main() && !b.is_main() && a.id() != b.id());
        assert_eq!(resolve("unit-a").expect("found").id(), a.id());
        assert!(resolve(GLOBAL).expect("main").is_main() && resolve("").expect("main").is_main());
        // Set in a, seen only in a; the main interpreter and b have their own sys.
        a.attach(|py| {
            assert_eq!(current_id(py), a.id());
            run(py, "import sys; sys.oxwsgi_unit_probe = 'a'").expect("runs");
        })
        .expect("a is alive");
        assert_eq!(a.attach(probe).expect("alive").as_deref(), Some("a"));
        assert_eq!(b.attach(probe).expect("alive"), None);
        assert_eq!(main().attach(probe).expect("main"), None);
        // Nested: from b, run in a, then back in b.
        b.attach(|py| {
            assert_eq!(a.with(py, probe).expect("alive").as_deref(), Some("a"));
            assert_eq!(current_id(py), b.id());
            assert_eq!(main().with(py, current_id).expect("main"), main().id());
            // Detaching inside an interpreter comes back to it.
            py.detach(|| ());
            assert_eq!(current_id(py), b.id());
        })
        .expect("b is alive");
    }
}

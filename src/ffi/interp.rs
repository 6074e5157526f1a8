//! Sub-interpreters: the CPython calls that create one, run a thread in it, and end it.
//!
//! pyo3 knows one interpreter per process: `Python::attach` goes through `PyGILState_*`,
//! which only know the main interpreter's thread state of each thread. So a thread enters
//! a sub-interpreter *inside* an attach, by swapping the current thread state while it
//! holds the GIL ([`Entered`]), and every later pyo3 call on that thread (nested
//! `attach`es see pyo3's attach count and skip `PyGILState_Ensure`; `detach` saves and
//! restores whatever thread state is current) then runs in the sub-interpreter. See
//! docs/interpreters.md for why this is sound on Python 3.11 (one GIL for every
//! interpreter) and what it does not cover.
//!
//! Each (thread, sub-interpreter) pair gets one thread state, made on the thread's first
//! entry and kept for the thread's life (as the main interpreter's are, see
//! `python::keep_thread_state`), so `threading.local` data survives between requests and
//! entering costs two pointer swaps.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pyo3::Python;
use pyo3::ffi;

/// A thread state pointer made by this module for a sub-interpreter; only handed to
/// CPython with the GIL held, and deleted only by [`SubInterpreter::end`].
#[derive(Clone, Copy, PartialEq, Eq)]
struct ThreadState(NonNull<ffi::PyThreadState>);

// SAFETY: a thread state is plain data owned by CPython; this module only passes the
// pointer to CPython calls made with the GIL held (which serialises every use), and
// `end` deletes states only when no thread is inside the interpreter (`active == 0`).
unsafe impl Send for ThreadState {}

/// One sub-interpreter made by [`SubInterpreter::new`]. Kept (never freed) for the
/// process's life, so an `&'static` or `Arc` reference to it stays valid after `end`.
pub struct SubInterpreter {
    /// The interpreter; only dereferenced by CPython, with the GIL held, before `end`.
    state: NonNull<ffi::PyInterpreterState>,
    id: i64,
    /// Set by [`SubInterpreter::end`] (with the GIL held): entering it fails from then on.
    ended: AtomicBool,
    /// Threads inside the interpreter now (an [`Entered`] alive, maybe detached).
    active: AtomicUsize,
    /// `Py_EndInterpreter` ran: the interpreter is gone (its memory freed by CPython).
    finished: AtomicBool,
    /// Every thread state made for it, on any thread, for `end` to delete.
    states: Mutex<Vec<ThreadState>>,
}

// SAFETY: the interpreter pointer is only used by CPython calls made with the GIL held
// (which serialises them across threads); the other fields are atomics and a mutex.
unsafe impl Send for SubInterpreter {}
// SAFETY: as for Send: every access to `state` happens with the GIL held.
unsafe impl Sync for SubInterpreter {}

thread_local! {
    /// This thread's thread state in each sub-interpreter it entered: (interpreter id, state).
    /// A handful of interpreters per process: a linear search beats hashing.
    static MINE: RefCell<Vec<(i64, ThreadState)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's current thread state; callers hold the GIL (`_py`).
fn current(_py: Python<'_>) -> *mut ffi::PyThreadState {
    // SAFETY: the GIL is held, so there is a current thread state and PyThreadState_Get
    // returns it (it aborts only when there is none).
    unsafe { ffi::PyThreadState_Get() }
}

/// The id of the interpreter the calling thread runs in (its current thread state's).
pub fn current_id(_py: Python<'_>) -> i64 {
    // SAFETY: the GIL is held (we have `py`), so there is a current thread state and
    // PyInterpreterState_Get returns its interpreter (it cannot fail then).
    let interp = unsafe { ffi::PyInterpreterState_Get() };
    // SAFETY: interp is the live interpreter of the current thread state.
    unsafe { ffi::PyInterpreterState_GetID(interp) }
}

/// The main interpreter's id (0 in CPython, asked rather than assumed).
pub fn main_id() -> i64 {
    // SAFETY: PyInterpreterState_Main returns the runtime's main interpreter pointer
    // (set once at initialisation, valid for the process's life once Python started).
    let main = unsafe { ffi::PyInterpreterState_Main() };
    if main.is_null() {
        return 0;
    }
    // SAFETY: main is the live main interpreter.
    unsafe { ffi::PyInterpreterState_GetID(main) }
}

impl SubInterpreter {
    /// Create a sub-interpreter (it imports `site` with the main interpreter's
    /// configuration) and run `setup` in it on this thread. The thread state made for it
    /// becomes this thread's kept state in it. Called with the GIL held; the current
    /// thread state is the same before and after.
    pub fn new(
        py: Python<'_>,
        setup: impl FnOnce(Python<'_>) -> Result<(), String>,
    ) -> Result<&'static SubInterpreter, String> {
        let saved = current(py);
        // SAFETY: the GIL is held (we have `py`). Py_NewInterpreter makes a new
        // interpreter and a thread state for it, and makes that state current; on failure
        // it returns NULL and restores the previous current state.
        let ts = unsafe { ffi::Py_NewInterpreter() };
        let Some(ts) = NonNull::new(ts) else {
            return Err("Py_NewInterpreter failed (see the error log for Python's message)".into());
        };
        // SAFETY: ts is the live, current thread state just made.
        let state = unsafe { ffi::PyThreadState_GetInterpreter(ts.as_ptr()) };
        let state = NonNull::new(state).ok_or("the new thread state has no interpreter")?;
        // SAFETY: state is the live interpreter just made.
        let id = unsafe { ffi::PyInterpreterState_GetID(state.as_ptr()) };
        let sub: &'static SubInterpreter = Box::leak(Box::new(SubInterpreter {
            state,
            id,
            ended: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            states: Mutex::new(vec![ThreadState(ts)]),
        }));
        MINE.with(|m| m.borrow_mut().push((id, ThreadState(ts))));
        // The new interpreter is current: setup's pyo3 calls run in it (this thread is
        // attached as far as pyo3 is concerned, the caller holds `py`).
        // A new interpreter is not ended: this cannot fail.
        let active = Active::enter(sub).ok();
        // SAFETY: the GIL is held by this thread, in the new interpreter.
        let r = setup(unsafe { Python::assume_attached() });
        drop(active);
        // SAFETY: the GIL is held; saved was this thread's current state before the call
        // (Py_NewInterpreter swapped it out, it is still alive).
        unsafe { ffi::PyThreadState_Swap(saved) };
        r.map(|()| sub)
    }

    /// CPython's id of this interpreter.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Whether [`SubInterpreter::end`] ran for it (nothing enters it any more).
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Whether the calling thread runs in this interpreter now.
    pub fn is_current(&self, py: Python<'_>) -> bool {
        // SAFETY: the GIL is held (we have `py`), so the current thread state is live.
        let interp = unsafe { ffi::PyThreadState_GetInterpreter(current(py)) };
        interp == self.state.as_ptr()
    }

    /// This thread's kept state in the interpreter, made on first use.
    fn thread_state(&self) -> Result<ThreadState, String> {
        if let Some(ts) = MINE.with(|m| m.borrow().iter().find(|(id, _)| *id == self.id).map(|(_, ts)| *ts)) {
            return Ok(ts);
        }
        // SAFETY: state is a live interpreter (not ended: every caller holds an `Active`, or
        // is `end` itself, before `Py_EndInterpreter`). PyThreadState_New (which needs no
        // GIL in 3.11: it takes the runtime's own lock) allocates a state for this thread in
        // it, without making it current; NULL on memory exhaustion.
        let ts = unsafe { ffi::PyThreadState_New(self.state.as_ptr()) };
        let ts = ThreadState(NonNull::new(ts).ok_or("cannot allocate a Python thread state")?);
        self.states.lock().unwrap_or_else(|p| p.into_inner()).push(ts);
        MINE.with(|m| m.borrow_mut().push((self.id, ts)));
        Ok(ts)
    }

    /// Make this interpreter current on the calling thread until the guard drops. Called
    /// with the GIL held; pyo3 calls made with `py` meanwhile run in this interpreter.
    pub fn enter(&'static self, _py: Python<'_>) -> Result<Entered, String> {
        let active = Active::enter(self)?;
        let ts = self.thread_state()?;
        // SAFETY: the GIL is held by this thread; ts is this thread's live state in a live
        // interpreter (not ended: see `active`), not current anywhere else (each state
        // belongs to one thread). Swap makes it current and returns the previous one,
        // which Entered restores.
        let prev = unsafe { ffi::PyThreadState_Swap(ts.0.as_ptr()) };
        Ok(Entered { _active: active, prev })
    }

    /// End the interpreter at process exit: delete the thread states of other threads,
    /// then `Py_EndInterpreter` on this thread's (which runs `threading._shutdown` and
    /// finalises its modules). Skipped, with the reason, when a thread is still inside it
    /// (it stays usable by nobody: entering fails from now on) or a thread this module did
    /// not make (one the application started) still has a state in it: `Py_EndInterpreter`
    /// would abort the process. Call with the GIL held,
    /// after the interpreter's exit work (atexit) ran, from the main interpreter.
    pub fn end(&'static self, py: Python<'_>) -> Result<(), String> {
        // Once gone, nothing of it may be touched again (a second exit pass).
        if self.finished.load(Ordering::SeqCst) {
            return Ok(());
        }
        // `ended` first, `active` after (see `Active::enter`); once set, nothing enters.
        let mine = self.thread_state()?;
        self.ended.store(true, Ordering::SeqCst);
        if self.active.load(Ordering::SeqCst) != 0 {
            return Err("a thread is still running in it".into());
        }
        let saved = current(py);
        // SAFETY: the GIL is held; mine is this thread's live state in this interpreter.
        unsafe { ffi::PyThreadState_Swap(mine.0.as_ptr()) };
        let others: Vec<ThreadState> = {
            let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
            let others = states.iter().copied().filter(|ts| *ts != mine).collect();
            states.retain(|ts| *ts == mine);
            others
        };
        for ts in others {
            // SAFETY: the GIL is held, in ts's interpreter. No thread is inside it
            // (`active` was 0 and `ended` is set, under the GIL), so ts is not current
            // anywhere and not saved by a detached thread; Clear releases its objects.
            unsafe { ffi::PyThreadState_Clear(ts.0.as_ptr()) };
            // SAFETY: ts is cleared and not current; Delete frees it (never used again:
            // it is gone from `states`, and entering fails now that `ended` is set).
            unsafe { ffi::PyThreadState_Delete(ts.0.as_ptr()) };
        }
        let left = self.thread_count();
        if left != 1 {
            // SAFETY: the GIL is held; saved is this thread's live state from before.
            unsafe { ffi::PyThreadState_Swap(saved) };
            return Err(format!("{} threads the application started still run in it", left - 1));
        }
        // SAFETY: the GIL is held; mine is current, has no frame (we run no Python code
        // now) and is the interpreter's only thread state. Py_EndInterpreter finalises the
        // interpreter, frees mine and leaves no current thread state, GIL still held.
        unsafe { ffi::Py_EndInterpreter(mine.0.as_ptr()) };
        self.finished.store(true, Ordering::SeqCst);
        self.states.lock().unwrap_or_else(|p| p.into_inner()).clear();
        MINE.with(|m| m.borrow_mut().retain(|(id, _)| *id != self.id));
        // SAFETY: the GIL is held with no current state; saved is this thread's live state
        // (of the main interpreter) from before the call.
        unsafe { ffi::PyThreadState_Swap(saved) };
        Ok(())
    }

    /// How many thread states the interpreter has (ours and the application's threads').
    fn thread_count(&self) -> usize {
        // SAFETY: the GIL is held by the caller (`end`); the interpreter is live and its
        // thread list does not change while we hold the GIL.
        let mut ts = unsafe { ffi::PyInterpreterState_ThreadHead(self.state.as_ptr()) };
        let mut n = 0;
        while !ts.is_null() {
            n += 1;
            // SAFETY: ts is a live state of the list (GIL held, list unchanged).
            ts = unsafe { ffi::PyThreadState_Next(ts) };
        }
        n
    }
}

/// While alive, the calling thread runs in a sub-interpreter (see [`SubInterpreter::enter`]).
/// Dropping it (also while unwinding) makes the previous thread state current again.
pub struct Entered {
    prev: *mut ffi::PyThreadState,
    /// Dropped after `drop` below swapped back: the thread leaves the interpreter last.
    _active: Active,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: the GIL is held again by this thread (every detach inside the entered
        // scope re-attached before returning); prev was current before `enter` and is
        // this thread's live state, so it may be current again.
        unsafe { ffi::PyThreadState_Swap(self.prev) };
    }
}

/// Run `f` attached to a sub-interpreter, from a thread that is not attached: the GIL is
/// taken *with the sub-interpreter's thread state*, so that while this thread waits for
/// it, the GIL holder is asked to drop it if it runs in the same interpreter (Python 3.11
/// posts that request per interpreter). Inside, pyo3 is attached through the thread's main
/// state (so nested `Python::attach`es and `detach` work), with the sub-interpreter current.
pub fn attach<R>(sub: &'static SubInterpreter, f: impl for<'py> FnOnce(Python<'py>) -> R) -> Result<R, String> {
    // Counted in before anything touches the interpreter, and `ended` checked after: `end`
    // sets `ended` first and checks `active` after (both SeqCst), so either this thread
    // sees the interpreter ended and stays out, or `end` sees this thread and leaves it.
    let _active = Active::enter(sub)?;
    let ts = sub.thread_state()?;
    // SAFETY: PyGILState_GetThisThreadState only reads this thread's registered main
    // thread state (kept by python::keep_thread_state, which callers ran first).
    let main = unsafe { ffi::PyGILState_GetThisThreadState() };
    if main.is_null() {
        return Err("this thread has no Python thread state (keep_thread_state was not called)".into());
    }
    // SAFETY: this thread holds no GIL (callers are not attached); ts is its live state in
    // a live interpreter (not ended: see `_active`). RestoreThread waits for the GIL as ts
    // and makes it current.
    unsafe { ffi::PyEval_RestoreThread(ts.0.as_ptr()) };
    /// Hands the GIL back as `ts` at the end, also while unwinding.
    struct Release(ThreadState);
    impl Drop for Release {
        fn drop(&mut self) {
            // SAFETY: the GIL is held by this thread (attach below returned or unwound,
            // and it releases nothing it did not take); making ts current again is valid.
            unsafe { ffi::PyThreadState_Swap(self.0.0.as_ptr()) };
            // SAFETY: the GIL is held with ts current; SaveThread releases it.
            unsafe { ffi::PyEval_SaveThread() };
        }
    }
    let _release = Release(ts);
    // SAFETY: the GIL is held; main is this thread's live main state, not current elsewhere.
    unsafe { ffi::PyThreadState_Swap(main) };
    // PyGILState_Ensure now finds this thread's own state current: it only counts.
    Ok(Python::attach(|py| {
        /// Makes the main state current again before pyo3's attach ends (also unwinding).
        struct Back(*mut ffi::PyThreadState);
        impl Drop for Back {
            fn drop(&mut self) {
                // SAFETY: the GIL is held by this thread; self.0 is its main state.
                unsafe { ffi::PyThreadState_Swap(self.0) };
            }
        }
        // SAFETY: the GIL is held by this thread; ts is its live state in `sub` (not ended,
        // see `_active`), not current elsewhere. Back swaps the main state back.
        let prev = unsafe { ffi::PyThreadState_Swap(ts.0.as_ptr()) };
        let _back = Back(prev);
        f(py)
    }))
}

/// A thread counted in `SubInterpreter::active` while alive.
struct Active(&'static SubInterpreter);

impl Active {
    fn enter(sub: &'static SubInterpreter) -> Result<Active, String> {
        sub.active.fetch_add(1, Ordering::SeqCst);
        let a = Active(sub);
        if sub.ended.load(Ordering::SeqCst) {
            return Err(format!("sub-interpreter {} has been ended (the process is exiting)", sub.id));
        }
        Ok(a)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// While alive, the calling thread runs in the main interpreter (see [`enter_main`]).
pub struct MainEntered {
    prev: *mut ffi::PyThreadState,
}

/// Make this thread's main-interpreter state current until the guard drops (for code that
/// runs in a sub-interpreter and must run something in the main one). Called with the GIL.
pub fn enter_main(_py: Python<'_>) -> Result<MainEntered, String> {
    // SAFETY: only reads this thread's registered main thread state.
    let main = unsafe { ffi::PyGILState_GetThisThreadState() };
    if main.is_null() {
        return Err("this thread has no main-interpreter thread state".into());
    }
    // SAFETY: the GIL is held by this thread; main is its live main state, not current
    // on another thread. The previous state is restored by the guard.
    let prev = unsafe { ffi::PyThreadState_Swap(main) };
    Ok(MainEntered { prev })
}

impl Drop for MainEntered {
    fn drop(&mut self) {
        // SAFETY: the GIL is held again by this thread; prev was its current state.
        unsafe { ffi::PyThreadState_Swap(self.prev) };
    }
}

/// Whether the calling thread runs in the main interpreter now.
pub fn main_is_current(py: Python<'_>) -> bool {
    current_id(py) == main_id()
}

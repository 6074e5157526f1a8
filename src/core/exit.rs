//! What Python does when an interpreter exits, done when a worker process exits.
//!
//! Python is never finalized in a server worker (a graceful restart or reload simply ends
//! the process), so `Py_FinalizeEx`'s own exit work never runs: non-daemon threads are not
//! joined and `atexit` callbacks never run — among them `logging.shutdown()` (which flushes
//! buffered handlers) and `weakref.finalize` callbacks. Error reporters (Sentry),
//! OpenTelemetry exporters and buffered log handlers lose their last data that way.
//!
//! [`run_exit_handlers`] does that work on a thread of its own and waits for it at most a
//! time limit: a non-daemon thread that never ends, or a callback that hangs, must not keep
//! a worker alive (the server waits for its workers to exit). Unlike CPython, which never
//! reaches `atexit` while a non-daemon thread runs, the callbacks run even when a thread is
//! still alive after its share of the time. What was cut is logged.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{Level, LogSink};

/// How long a worker waits for exit handlers by default. Apache's parent sends SIGKILL to
/// children that have not exited about 3 s after a stop; nginx waits for its workers.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(3);

/// The exit work, in CPython's order: join non-daemon threads (here for at most half of
/// the time), then the atexit callbacks. `phase` reports progress to Rust without the GIL.
const EXIT_CODE: &str = r#"
import atexit, threading, time

def _oxwsgi_exit(thread_deadline, phase):
    me = threading.current_thread()
    main = threading.main_thread()
    for t in threading.enumerate():
        if t is me or t is main or t.daemon or not t.is_alive():
            continue
        phase(f"waiting for the non-daemon thread {t.name!r}")
        t.join(max(0.0, thread_deadline - time.monotonic()))
    alive = [t.name for t in threading.enumerate()
             if t is not me and t is not main and not t.daemon and t.is_alive()]
    # Named here too, so that a cut in the callbacks still says which threads were left.
    left = f" while non-daemon threads were still running: {', '.join(alive)}" if alive else ""
    phase(f"running {atexit._ncallbacks()} atexit callbacks{left}")
    atexit._run_exitfuncs()
    phase("")
    return alive
"#;

/// The callable the exit code reports its phase through.
#[pyclass(immutable_type)]
struct Phase(Arc<Mutex<String>>, String);

#[pymethods]
impl Phase {
    fn __call__(&self, what: String) {
        let what =
            if what.is_empty() { format!("after the exit work of {}", self.1) } else { format!("{what} ({})", self.1) };
        set_phase(&self.0, &what);
    }
}

fn set_phase(phase: &Mutex<String>, what: &str) {
    *phase.lock().unwrap_or_else(|p| p.into_inner()) = what.to_string();
}

/// The exit work of the current interpreter; the names of non-daemon threads still alive.
fn exit_work(
    py: Python<'_>,
    thread_deadline: Instant,
    label: &str,
    phase: &Arc<Mutex<String>>,
) -> PyResult<Vec<String>> {
    set_phase(phase, &format!("starting the exit work of {label}"));
    let globals = PyDict::new(py);
    py.run(&std::ffi::CString::new(EXIT_CODE).expect("no NUL"), Some(&globals), None)?;
    let f = globals.get_item("_oxwsgi_exit")?.expect("defined above");
    // time.monotonic() and Instant share CLOCK_MONOTONIC on Linux.
    let now: f64 = py.import("time")?.call_method0("monotonic")?.extract()?;
    let left = thread_deadline.saturating_duration_since(Instant::now()).as_secs_f64();
    f.call1((now + left, Phase(phase.clone(), label.to_string())))?.extract()
}

/// Run every interpreter's exit work, waiting at most `limit`: mod_wsgi's
/// `process_stopping` event (with `shutdown_reason` = `reason`), then the exit handlers.
/// Call without the GIL, once, when the worker process is about to exit, after it stopped
/// serving requests. All of it runs on a thread of its own: the caller may be a signal
/// handler that interrupted this thread inside Python (prefork's SIGTERM exits from
/// one), where running Python code crashes the process.
pub fn run_exit_handlers(limit: Duration, log: Arc<dyn LogSink>, reason: &str) {
    let reason = reason.to_string();
    let phase = Arc::new(Mutex::new(String::from("waiting for the GIL")));
    let (done, finished) = mpsc::channel();
    let thread_phase = phase.clone();
    let thread_log = log.clone();
    // Sub-interpreters first (mod_wsgi's order), each ended after its exit work, then the
    // main interpreter, which is never finalized (the process exits).
    let subs: Vec<_> = super::interp::subinterpreters().into_iter().filter(|i| !i.is_ended()).collect();
    let spawned = std::thread::Builder::new().name("oxwsgi-exit".into()).spawn(move || {
        // Non-daemon threads of every interpreter get, together, half of the time.
        let thread_deadline = Instant::now() + limit / 2;
        Python::attach(|py| {
            for i in subs.iter().chain(std::iter::once(&super::interp::main())) {
                let label = if i.is_main() {
                    "the main interpreter".to_string()
                } else {
                    format!("interpreter {:?}", i.name())
                };
                // Errors become text inside: the exception belongs to that interpreter.
                let ran = i.with(py, |py| {
                    super::modwsgi_module::process_stopping(py, &reason);
                    exit_work(py, thread_deadline, &label, &thread_phase).map_err(|e| super::runtime::describe(py, &e))
                });
                match ran {
                    Ok(Ok(alive)) if !alive.is_empty() => thread_log.log(
                        Level::Warning,
                        &format!(
                            "oxwsgi: exit handlers of {label} ran while non-daemon threads were still running: {}",
                            alive.join(", ")
                        ),
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        thread_log.log(Level::Error, &format!("oxwsgi: the exit handlers of {label} failed: {e}"))
                    }
                    Err(e) => {
                        thread_log.log(Level::Error, &format!("oxwsgi: cannot run the exit handlers of {label}: {e}"))
                    }
                }
                if !i.is_main() {
                    set_phase(&thread_phase, &format!("ending {label}"));
                    if let Err(e) = i.end(py) {
                        thread_log.log(Level::Notice, &format!("oxwsgi: {label} left as it is at exit: {e}"));
                    }
                }
            }
        });
        let _ = done.send(());
    });
    let spawned = match spawned {
        Ok(handle) => handle,
        Err(e) => {
            log.log(Level::Error, &format!("oxwsgi: cannot run the exit handlers: {e}"));
            return;
        }
    };
    if finished.recv_timeout(limit).is_ok() {
        // The work is done; let the thread release its Python thread state before the
        // process goes on to exit (it only returns from here).
        let _ = spawned.join();
        return;
    }
    {
        let what = phase.lock().unwrap_or_else(|p| p.into_inner()).clone();
        log.log(
            Level::Warning,
            &format!(
                "oxwsgi: exit handlers cut after {:.1} s while {what}; the process exits anyway (pid {})",
                limit.as_secs_f64(),
                std::process::id()
            ),
        );
    }
}

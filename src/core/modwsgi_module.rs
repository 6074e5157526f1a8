//! mod_wsgi's run-time interface for applications written against it: the `mod_wsgi`
//! Python module (`version`, `process_group`, `application_group`, `maximum_processes`,
//! `threads_per_process`, `subscribe_events`, `subscribe_shutdown`, `process_metrics()`,
//! `request_metrics()`, `server_metrics()`, `request_data()`), the typed `mod_wsgi.*`
//! environ keys (`thread_id`, `thread_requests`, `total_requests`, `script_start`,
//! `request_id`, ...), and mod_wsgi's process settings `WSGIRestrictStdin`,
//! `WSGIRestrictStdout`, `WSGIRestrictSignal` and `WSGIPythonEggs`.
//!
//! The per-request bookkeeping is a few atomic counters; Python runs per request only when
//! an application subscribed to events.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

/// The mod_wsgi release whose interface oxwsgi offers (`mod_wsgi.version`).
pub const VERSION: (u32, u32, u32) = (4, 9, 4);

/// mod_wsgi's process-wide settings.
#[derive(Clone, Debug)]
pub struct ModWsgiConfig {
    /// `sys.stdin` raises `OSError` on use (`WSGIRestrictStdin`, default Off).
    pub restrict_stdin: bool,
    /// `sys.stdout` raises `OSError` on use (`WSGIRestrictStdout`, default Off).
    pub restrict_stdout: bool,
    /// `signal.signal()` logs and ignores the registration (`WSGIRestrictSignal`): signals
    /// belong to the server, not to applications.
    pub restrict_signal: bool,
    /// `PYTHON_EGG_CACHE` (`WSGIPythonEggs`).
    pub python_eggs: Option<PathBuf>,
    /// Server processes and threads per process (`mod_wsgi.maximum_processes` and
    /// `threads_per_process`), as the server configures them.
    pub maximum_processes: u32,
    pub threads_per_process: u32,
    /// `mod_wsgi.process_group`: the daemon process group this process belongs to (`""`
    /// in the server's own processes, embedded mode).
    pub process_group: String,
}

impl Default for ModWsgiConfig {
    fn default() -> Self {
        ModWsgiConfig {
            restrict_stdin: false,
            restrict_stdout: false,
            restrict_signal: false,
            python_eggs: None,
            maximum_processes: 1,
            threads_per_process: 1,
            process_group: String::new(),
        }
    }
}

/// Requests since the process started, and those running now.
static TOTAL: AtomicU64 = AtomicU64::new(0);
static ACTIVE: AtomicU64 = AtomicU64::new(0);
/// Time spent in requests, microseconds (capacity utilisation).
static BUSY_US: AtomicU64 = AtomicU64::new(0);
/// An application subscribed to events: requests publish them.
static SUBSCRIBED: AtomicBool = AtomicBool::new(false);

/// Whether an application subscribed to mod_wsgi's events: the timings only they report
/// (input and output time) are measured only then.
pub fn subscribed() -> bool {
    SUBSCRIBED.load(Ordering::Relaxed)
}

/// A request's input and output, for `request_finished` (mod_wsgi's keys).
#[derive(Debug, Default, Clone, Copy)]
pub struct IoCounters {
    /// `wsgi.input` calls (read, readline, readlines, iteration) and bytes they returned.
    pub input_reads: u64,
    pub input_length: u64,
    /// Time spent waiting for the request body (measured while subscribed).
    pub input_time: std::time::Duration,
    /// Response body bytes and writes handed to the server.
    pub output_length: u64,
    pub output_writes: u64,
    /// Time spent handing them over (measured while subscribed).
    pub output_time: std::time::Duration,
}
/// Threads that served requests: (thread id, requests served).
static THREADS: Mutex<Vec<(u64, Arc<AtomicU64>)>> = Mutex::new(Vec::new());
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's id (1, 2, ... in the order threads first served) and request count.
    static THREAD: (u64, Arc<AtomicU64>) = {
        let t = (NEXT_THREAD.fetch_add(1, Ordering::Relaxed), Arc::new(AtomicU64::new(0)));
        THREADS.lock().unwrap_or_else(|p| p.into_inner()).push(t.clone());
        t
    };
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The Python half: what applications call (metrics are computed rarely, in Python).
const MODULE_SOURCE: &str = r#"
import os, sys, threading, time, traceback

event_callbacks = []
shutdown_callbacks = []
active_requests = {}
_local = threading.local()
_start_time = time.time()

def subscribe_events(callback):
    """Call callback(name, **event) for request_started, response_started,
    request_finished and process_stopping (mod_wsgi 4.9's events)."""
    event_callbacks.append(callback)
    _oxwsgi_subscribed()

def subscribe_shutdown(callback):
    """Call callback('process_stopping', **event) when the process stops."""
    shutdown_callbacks.append(callback)

def _publish(name, event, callbacks=None):
    for callback in list(event_callbacks if callbacks is None else callbacks):
        try:
            result = callback(name, **event)
            if isinstance(result, dict):
                event.update(result)
        except Exception:
            print('Exception in mod_wsgi event callback for %r:' % name, file=sys.stderr)
            traceback.print_exc()

def _thread_cpu():
    try:
        import resource
        u = resource.getrusage(resource.RUSAGE_THREAD)
        return u.ru_utime, u.ru_stime
    except (ImportError, AttributeError, OSError):
        return 0.0, 0.0

def _seconds(environ, key):
    try:
        return int(environ.get(key, 0)) / 1e6
    except (TypeError, ValueError):
        return 0.0

def _request_started(environ, request_start, application_start, application):
    data = {}
    _local.data = data
    _local.request_id = environ.get('mod_wsgi.request_id')
    _local.cpu = _thread_cpu()
    # The daemon keys are 0 in embedded mode, as in mod_wsgi.
    event = dict(request_environ=environ, request_id=_local.request_id,
                 thread_id=environ.get('mod_wsgi.thread_id'), request_start=request_start,
                 daemon_connects=int(environ.get('mod_wsgi.daemon_connects', 0) or 0),
                 daemon_restarts=int(environ.get('mod_wsgi.daemon_restarts', 0) or 0),
                 queue_start=_seconds(environ, 'mod_wsgi.queue_start'),
                 daemon_start=_seconds(environ, 'mod_wsgi.daemon_start'),
                 application_object=application,
                 application_start=application_start, request_data=data)
    _publish('request_started', event)
    # A subscriber may wrap the application (mod_wsgi's application_object).
    return event.get('application_object', application)

def _response_started(status, headers, exc_info):
    data = getattr(_local, 'data', None)
    if data is None:
        return
    _publish('response_started', dict(request_id=getattr(_local, 'request_id', None),
                                      response_status=status, response_headers=headers,
                                      exception_info=exc_info, request_data=data))

def _request_finished(application_finish, application_time, io):
    data = getattr(_local, 'data', None)
    _local.data = None
    user, system = _thread_cpu()
    user0, system0 = getattr(_local, 'cpu', (user, system))
    input_reads, input_length, input_time, output_length, output_writes, output_time = io
    _publish('request_finished', dict(request_id=getattr(_local, 'request_id', None),
                                      input_reads=input_reads, input_length=input_length,
                                      input_time=input_time, output_length=output_length,
                                      output_writes=output_writes, output_time=output_time,
                                      application_finish=application_finish,
                                      application_time=application_time,
                                      cpu_user_time=user - user0, cpu_system_time=system - system0,
                                      request_data=data if data is not None else {}))

def _process_stopping(reason):
    # As mod_wsgi: one event dict, seen by the event subscribers then the shutdown ones.
    event = dict(shutdown_reason=reason)
    _publish('process_stopping', event)
    _publish('process_stopping', event, shutdown_callbacks)

def request_data():
    """The dict shared by the event callbacks of the current request."""
    data = getattr(_local, 'data', None)
    if data is None:
        raise RuntimeError('no active request for thread')
    return data

def _memory():
    rss = 0
    try:
        with open('/proc/self/statm') as f:
            rss = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rss

def process_metrics():
    total, active, busy, threads = _oxwsgi_counters()
    times = os.times()
    max_rss, rss = _memory()
    now = time.time()
    return {
        'pid': os.getpid(), 'request_count': total, 'request_busy_time': busy,
        'memory_max_rss': max_rss, 'memory_rss': rss,
        'cpu_user_time': times.user, 'cpu_system_time': times.system,
        'restart_time': _start_time, 'current_time': now, 'running_time': int(now - _start_time),
        'request_threads': len(threads), 'active_requests': active,
        'threads': [{'thread_id': t, 'request_count': n} for t, n in threads],
    }

_last = None

def request_metrics():
    """Metrics since the previous call. As in mod_wsgi, the first call of a process only
    opens the sample and returns {}: a reporter that polls it sees whole periods."""
    global _last
    total, active, busy, threads = _oxwsgi_counters()
    now = time.time()
    times = os.times()
    if _last is None:
        _last = {'time': now, 'count': total, 'busy': busy, 'user': times.user, 'system': times.system}
        return {}
    max_rss, rss = _memory()
    period = max(now - _last['time'], 1e-6)
    count = total - _last['count']
    busy_delta = busy - _last['busy']
    result = {
        'pid': os.getpid(), 'start_time': _last['time'], 'stop_time': now, 'sample_period': period,
        'cpu_user_time': times.user - _last['user'], 'cpu_system_time': times.system - _last['system'],
        'memory_max_rss': max_rss, 'memory_rss': rss,
        'request_threads_maximum': threads_per_process, 'request_threads_started': len(threads),
        'request_threads_active': active,
        'capacity_utilization': busy_delta / (period * max(threads_per_process, 1)),
        'request_count': count, 'request_throughput': count / period,
        'server_time': busy_delta / count if count else 0.0,
        'application_time': busy_delta / count if count else 0.0,
        'queue_time': None, 'daemon_time': None,
    }
    _last.update(time=now, count=total, busy=busy, user=times.user, system=times.system)
    return result

def server_metrics():
    """The server's process and worker states (Apache: its scoreboard), or None where the
    server has none or WSGIServerMetrics is Off."""
    return _oxwsgi_server_metrics()

class Restricted:
    """sys.stdin / sys.stdout under WSGIRestrictStdin / WSGIRestrictStdout On."""
    def __init__(self, name):
        object.__setattr__(self, '_name', name)
    def __getattribute__(self, attr):
        raise OSError('%s access restricted by mod_wsgi (oxwsgi: WSGIRestrict%s On)' % (
            object.__getattribute__(self, '_name'),
            object.__getattribute__(self, '_name')[4:].capitalize()))

def _restrict_signal():
    import signal
    def signal_intercept(signalnum, handler):
        print('Callback registration for signal %d ignored (WSGIRestrictSignal On): '
              'signals belong to the web server.' % int(signalnum), file=sys.stderr)
        traceback.print_stack(file=sys.stderr)
        return handler
    signal.signal = signal_intercept
"#;

/// What `mod_wsgi.server_metrics()` returns, from the server (Apache: its scoreboard).
pub type ServerMetrics = fn(Python<'_>) -> PyResult<Py<PyAny>>;
static SERVER_METRICS: OnceLock<ServerMetrics> = OnceLock::new();

/// Let `mod_wsgi.server_metrics()` answer with `f` (once per process, before requests).
pub fn set_server_metrics(f: ServerMetrics) {
    let _ = SERVER_METRICS.set(f);
}

#[pyfunction]
fn _oxwsgi_server_metrics(py: Python<'_>) -> PyResult<Py<PyAny>> {
    match SERVER_METRICS.get() {
        Some(f) => f(py),
        None => Ok(py.None()),
    }
}

#[pyfunction]
fn _oxwsgi_subscribed() {
    SUBSCRIBED.store(true, Ordering::Relaxed);
}

/// (total requests, active requests, busy seconds, [(thread id, requests)]).
#[pyfunction]
fn _oxwsgi_counters() -> (u64, u64, f64, Vec<(u64, u64)>) {
    let threads = THREADS.lock().unwrap_or_else(|p| p.into_inner());
    (
        TOTAL.load(Ordering::Relaxed),
        ACTIVE.load(Ordering::Relaxed),
        BUSY_US.load(Ordering::Relaxed) as f64 / 1e6,
        threads.iter().map(|(id, n)| (*id, n.load(Ordering::Relaxed))).collect(),
    )
}

/// Register the `mod_wsgi` module and apply the process settings (at start-up, after
/// `sys.stdout`/`sys.stderr` point at the error log).
pub fn install(py: Python<'_>, cfg: &ModWsgiConfig) -> PyResult<()> {
    let m = PyModule::new(py, "mod_wsgi")?;
    m.add("version", VERSION)?;
    m.add("process_group", cfg.process_group.as_str())?;
    m.add("application_group", "")?;
    m.add("maximum_processes", cfg.maximum_processes.max(1))?;
    m.add("threads_per_process", cfg.threads_per_process.max(1))?;
    m.add_function(wrap_pyfunction!(_oxwsgi_subscribed, &m)?)?;
    m.add_function(wrap_pyfunction!(_oxwsgi_counters, &m)?)?;
    m.add_function(wrap_pyfunction!(_oxwsgi_server_metrics, &m)?)?;
    m.add("FileWrapper", py.get_type::<super::file_wrapper::FileWrapper>())?;
    let code = std::ffi::CString::new(MODULE_SOURCE).expect("no NUL in the module source");
    py.run(&code, Some(&m.dict()), None)?;
    let sys = py.import("sys")?;
    sys.getattr("modules")?.set_item("mod_wsgi", &m)?;

    let restricted = m.getattr("Restricted")?;
    if cfg.restrict_stdout {
        sys.setattr("stdout", restricted.call1(("sys.stdout",))?)?;
    }
    if cfg.restrict_stdin {
        sys.setattr("stdin", restricted.call1(("sys.stdin",))?)?;
    }
    if cfg.restrict_signal {
        m.getattr("_restrict_signal")?.call0()?;
    }
    if let Some(eggs) = &cfg.python_eggs {
        py.import("os")?.getattr("environ")?.set_item("PYTHON_EGG_CACHE", eggs.to_string_lossy().as_ref())?;
    }
    Ok(())
}

/// A request starts: the typed `mod_wsgi.*` keys of its environ, and the
/// `request_started` event when an application subscribed.
/// `Some`: the application object a subscriber put in the event's `application_object`
/// (a wrapper), to call instead of the application.
pub fn request_started(
    py: Python<'_>,
    environ: &Bound<'_, PyDict>,
    application: &Bound<'_, PyAny>,
) -> PyResult<Option<Py<PyAny>>> {
    let total = TOTAL.fetch_add(1, Ordering::Relaxed) + 1;
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let (thread_id, thread_requests) = THREAD.with(|(id, n)| (*id, n.fetch_add(1, Ordering::Relaxed) + 1));
    let start = now_us();
    environ.set_item(intern!(py, "mod_wsgi.thread_id"), thread_id)?;
    environ.set_item(intern!(py, "mod_wsgi.thread_requests"), thread_requests)?;
    environ.set_item(intern!(py, "mod_wsgi.total_requests"), total)?;
    let start_str = super::environ::latin1(py, super::environ::itoa(&mut [0; 20], start));
    if !environ.contains(intern!(py, "mod_wsgi.request_start"))? {
        environ.set_item(intern!(py, "mod_wsgi.request_start"), &start_str)?;
    }
    environ.set_item(intern!(py, "mod_wsgi.script_start"), start_str)?;
    if !environ.contains(intern!(py, "mod_wsgi.request_id"))? {
        let mut id = Vec::with_capacity(40);
        super::environ::push_hex(&mut id, u64::from(std::process::id()));
        id.push(b'-');
        super::environ::push_hex(&mut id, total);
        id.push(b'-');
        super::environ::push_hex(&mut id, thread_id);
        environ.set_item(intern!(py, "mod_wsgi.request_id"), super::environ::latin1(py, &id))?;
    }
    if SUBSCRIBED.load(Ordering::Relaxed) {
        let request_start = environ
            .get_item(intern!(py, "mod_wsgi.request_start"))?
            .and_then(|v| v.extract::<String>().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(start as f64 / 1e6, |us| us / 1e6);
        let m = py.import("mod_wsgi")?;
        let app = m.getattr("_request_started")?.call1((environ, request_start, start as f64 / 1e6, application))?;
        if !app.is(application) {
            return Ok(Some(app.unbind()));
        }
    }
    Ok(None)
}

/// The request that [`Worker::begin`](super::worker::Worker::begin) started at `started`
/// is complete (or failed): counters, and the `request_finished` event when an application
/// subscribed. Call it only for a request whose `begin` returned an exchange.
pub fn request_finished(py: Python<'_>, started: Instant, io: &IoCounters) {
    let elapsed = started.elapsed();
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
    BUSY_US.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    if SUBSCRIBED.load(Ordering::Relaxed) {
        let r = py.import("mod_wsgi").and_then(|m| {
            let io = (
                io.input_reads,
                io.input_length,
                io.input_time.as_secs_f64(),
                io.output_length,
                io.output_writes,
                io.output_time.as_secs_f64(),
            );
            m.getattr("_request_finished")?.call1((now_us() as f64 / 1e6, elapsed.as_secs_f64(), io))
        });
        if let Err(e) = r {
            e.print(py);
        }
    }
}

/// The application called `start_response`: the `response_started` event, when an
/// application subscribed (mod_wsgi 4.9 publishes it from start_response too).
pub fn response_started(
    py: Python<'_>,
    status: &Bound<'_, PyAny>,
    headers: &Bound<'_, PyAny>,
    exc_info: Option<&Bound<'_, PyAny>>,
) {
    if !SUBSCRIBED.load(Ordering::Relaxed) {
        return;
    }
    let none = py.None();
    let exc_info = exc_info.unwrap_or_else(|| none.bind(py));
    let r = py.import("mod_wsgi").and_then(|m| m.getattr("_response_started")?.call1((status, headers, exc_info)));
    if let Err(e) = r {
        e.print(py);
    }
}

/// The process stops: `process_stopping` to event and shutdown subscribers. `reason` is
/// mod_wsgi's `shutdown_reason` (`""` when the server stops or restarts the process,
/// `inactivity_timeout`, `restart_interval`, `request_timeout`, ... in daemon mode).
pub fn process_stopping(py: Python<'_>, reason: &str) {
    if let Err(e) = py.import("mod_wsgi").and_then(|m| m.getattr("_process_stopping")?.call1((reason,))) {
        e.print(py);
    }
}

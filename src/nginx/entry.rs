//! `extern "C"` entry points called by the C shim (ngx-module/ngx_http_oxwsgi_module.c).
//! Each one catches panics: a Rust panic must never unwind into nginx.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::dispatch::{Dispatcher, Done};
use super::io::{CycleLog, RequestLog, request_context};
use super::ngx::{Ctx, NgxStr, Request};
use super::request::{After, IN_FLIGHT, InFlightSlot, NgxRequest};
use crate::core::runtime::RuntimeConfig;
use crate::core::{Level, LogSink, worker};
use crate::ffi::ngx::*;

pub use crate::ffi::guard::guard;

fn path_of(s: &ngx_str_t) -> PathBuf {
    // SAFETY: configuration strings live in the cycle pool.
    PathBuf::from(String::from_utf8_lossy(unsafe { NgxStr::from_raw(s) }.as_bytes()).into_owned())
}

/// The strings of an `ngx_array_t` of `ngx_str_t` (NULL = none).
///
/// # Safety
/// `a` must be NULL or a live array of `ngx_str_t`.
unsafe fn str_array(a: *const ngx_array_t) -> Vec<PathBuf> {
    if a.is_null() {
        return Vec::new();
    }
    // SAFETY: a is a live array (caller).
    let a = unsafe { &*a };
    if a.nelts == 0 {
        return Vec::new();
    }
    // SAFETY: the array holds nelts ngx_str_t (caller).
    unsafe { std::slice::from_raw_parts(a.elts as *const ngx_str_t, a.nelts) }.iter().map(path_of).collect()
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_init_process(
    cycle: *mut ngx_cycle_t,
    mcf: *mut ngx_http_oxwsgi_main_conf_t,
) -> ngx_int_t {
    guard("init_process", NGX_OK as ngx_int_t, || {
        // SAFETY: nginx passes the worker's live cycle.
        let cycle_log = unsafe { (*cycle).log };
        // SAFETY: the worker cycle's log lives as long as the process.
        let log = Arc::new(unsafe { CycleLog::new(cycle_log) });
        // SAFETY: the shim passes our main configuration of that cycle.
        let m = unsafe { &*mcf };
        let mut rcfg = RuntimeConfig::default();
        if m.python_home.len > 0 {
            rcfg.start.home = Some(path_of(&m.python_home));
        }
        // SAFETY: NULL or arrays of ngx_str_t made by the directive handlers (conf.rs).
        rcfg.python_path = unsafe { str_array(m.python_path) };
        // SAFETY: as for python_path.
        let imports = unsafe { str_array(m.imports) };
        init_process(log, &rcfg, &imports);
        NGX_OK as ngx_int_t
    })
}

fn init_process(log: Arc<CycleLog>, cfg: &RuntimeConfig, imports: &[PathBuf]) {
    // SAFETY: a static string of the shim.
    let nginx = unsafe { std::ffi::CStr::from_ptr(ngx_http_oxwsgi_nginx_version) }.to_string_lossy().into_owned();
    let setup = worker::Setup {
        runtime: cfg,
        imports,
        import_directive: "wsgi_import",
        multithread: true,
        multiprocess: true,
        server_software: format!("{nginx} oxwsgi/{}", env!("CARGO_PKG_VERSION")),
    };
    worker::start(&setup, log);
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_exit_process(_cycle: *mut ngx_cycle_t) {
    // Python is never finalized: pool threads may still hold thread states, and the
    // process is about to exit anyway (a reload starts fresh workers). Its exit work
    // (atexit, logging.shutdown, ...) runs, bounded in time (core::exit).
    guard("exit_process", (), || {
        super::daemon_pool::close_all();
        if let Some(w) = worker::get() {
            let n = IN_FLIGHT.load(Ordering::Relaxed);
            if n > 0 {
                w.log().log(Level::Notice, &format!("oxwsgi: worker exiting with {n} WSGI requests in flight"));
            }
            w.exit();
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard("handler", NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || {
        // SAFETY: nginx calls the content handler with a live request on the loop.
        unsafe { handler(r) }
    })
}

/// # Safety
/// `r` must be the live request of the content phase.
unsafe fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is live on the event loop (caller); no other borrow of it exists here.
    let req = unsafe { Request::from_ptr(r) };
    let lcf = req.loc_conf();
    let script = path_of(&lcf.script().raw());
    // Daemon mode: the location's group (none: embedded).
    let target = match lcf.process_group() {
        None => None,
        Some(g) => match super::daemons::target(g) {
            Some(t) => Some(t),
            None => {
                eprintln!(
                    "[oxwsgi] {}: process group {:?} has no socket in this configuration: 500",
                    script.display(),
                    String::from_utf8_lossy(g)
                );
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
        },
    };
    // The worker's log: Python's when it runs here (embedded locations), else the cycle's
    // (a worker whose every application runs in a group never starts Python).
    let base_log: Arc<dyn LogSink> = match (worker::get(), &target) {
        (Some(w), None) => {
            if !w.ready(&**w.log(), &script.to_string_lossy()) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            w.log().clone()
        }
        (Some(w), Some(_)) => w.log().clone(),
        // SAFETY: ngx_cycle is this worker's live cycle; its log lives as long as it.
        (None, Some(_)) => Arc::new(unsafe { CycleLog::new((*ngx_cycle).log) }),
        (None, None) => {
            eprintln!("[oxwsgi] {}: Python is not running in this process", script.display());
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
    };
    let max = lcf.max_in_flight();
    if lcf.in_flight() >= max {
        base_log.log(
            Level::Warning,
            &format!(
                "{}: {max} requests of this location in flight in this worker (wsgi_max_in_flight): 503",
                script.display()
            ),
        );
        if req.add_header(b"Retry-After", b"1").is_err() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
    }
    let context: Arc<str> = Arc::from(script.to_string_lossy().as_ref());
    let tail = request_context(&req.log_handler_text());
    let log: Arc<dyn LogSink> = Arc::new(RequestLog::new(base_log, tail));
    // SAFETY: the location's counter, on the event loop; the slot lives in the request
    // state, which the request pool's cleanup drops on the loop, before the cycle ends.
    let slot = unsafe { InFlightSlot::take(lcf.in_flight_counter()) };
    let state = Box::into_raw(Box::new(NgxRequest::new(r, log, context, slot)));
    // SAFETY: r is live; the shim allocates the context in the request pool and registers
    // a pool cleanup that frees `state` (ngx_http_oxwsgi_rs_cleanup).
    let ctx = unsafe { ngx_http_oxwsgi_create_ctx(r, state.cast()) };
    if ctx.is_null() {
        // SAFETY: no cleanup was registered: the state is still ours.
        drop(unsafe { Box::from_raw(state) });
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    // SAFETY: state is live (freed only by the pool cleanup), and not borrowed elsewhere.
    let st = unsafe { &mut *state };
    // SAFETY: the shim made ctx for r, which lives until its pool's cleanup frees the state
    // (and with it the Ctx); the state is used on the event loop only.
    st.ctx = unsafe { Ctx::new(ctx) };
    if let Some(t) = target {
        st.set_target(t);
    }
    // SAFETY: r is live, and no other borrow of it is used any more in this function.
    let rc = unsafe { Request::from_ptr(r) }.read_body(body_read);
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as ngx_int_t {
        return rc;
    }
    NGX_DONE as ngx_int_t
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Run an event handler of a request. A panic fails the request closed: 500 while the head
/// is not out, else the connection is closed (`NgxRequest::fail`), never left hanging.
///
/// # Safety
/// `state` must be the live state of a request, on the event loop.
unsafe fn with_state(what: &str, state: *mut c_void, f: impl FnOnce(&mut NgxRequest) -> After) {
    let state = state as *mut NgxRequest;
    // SAFETY: the state is live (caller); the reference ends before `apply`, which may free it.
    let run = catch_unwind(AssertUnwindSafe(|| f(unsafe { &mut *state })));
    let after = match run {
        Ok(after) => after,
        Err(p) => {
            let msg = format!("oxwsgi: internal error (panic) in {what}: {}; the request fails", panic_message(&*p));
            // SAFETY: the state is still live: the panic unwound out of `f` before any
            // finalization (After is applied only below).
            let st = unsafe { &mut *state };
            st.log_error(&msg);
            guard(what, After::Nothing, || st.fail())
        }
    };
    // SAFETY: no reference to the state is alive any more.
    guard(what, (), || unsafe { after.apply() })
}

/// The body handler of `ngx_http_read_client_request_body`.
extern "C" fn body_read(r: *mut ngx_http_request_t) {
    guard("body handler", (), || {
        // SAFETY: nginx calls the body handler with the live request, on the event loop.
        let state = unsafe { Request::from_ptr(r) }.module_ctx();
        if state.is_null() {
            return;
        }
        // SAFETY: our context is live in the request pool; its state is freed only by the
        // pool's cleanup.
        let state = unsafe { (*state).state };
        // SAFETY: the state of the request whose body was read, on the event loop.
        unsafe { with_state("body handler", state, |st| st.body_read()) }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_task_done(state: *mut c_void) {
    // SAFETY: the shim passes the state of the request whose task completed.
    unsafe { with_state("task completion", state, |st| st.task_done()) }
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_write_ready(state: *mut c_void) {
    // SAFETY: the shim passes the state of the request whose connection is writable.
    unsafe { with_state("write event", state, |st| st.write_ready()) }
}

/// The request's poll timer (a running job's output is handed over), on the event loop.
///
/// # Safety
/// `ev` is the `poll` event of a request context (`ngx_http_oxwsgi_create_ctx`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ngx_http_oxwsgi_rs_poll_handler(ev: *mut ngx_event_t) {
    // SAFETY: the poll event's data is its context (create_ctx), live with its request.
    let ctx = unsafe { (*ev).data } as *mut ngx_http_oxwsgi_ctx_t;
    // SAFETY: ctx is live (above); its request is live while its timer can fire.
    let (state, r) = unsafe { ((*ctx).state, (*ctx).request) };
    // SAFETY: r is live; its connection outlives the request (handling may free r).
    let c = unsafe { (*r).connection };
    // SAFETY: the state of the request whose poll timer fired.
    unsafe { with_state("poll timer", state, |st| st.poll()) };
    // SAFETY: c is live (see above); nginx's own event handlers end this way.
    unsafe { ngx_http_run_posted_requests(c) };
}

/// An event of a request's daemon connection (daemon_client.rs), on the event loop.
///
/// # Safety
/// `ev` is an event of a daemon connection made by `DaemonConn` (its data is the request's
/// context, live while the connection is: the request's state closes it first).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ngx_http_oxwsgi_rs_daemon_event(ev: *mut ngx_event_t) {
    // SAFETY: the connection's data is the request's context (above).
    let ctx = unsafe { super::ngx::peer_data(ev) } as *mut ngx_http_oxwsgi_ctx_t;
    // SAFETY: ctx is live; its request is live while the connection exists.
    let (state, r) = unsafe { ((*ctx).state, (*ctx).request) };
    // SAFETY: r is live; its connection outlives the request (handling may free r).
    let c = unsafe { (*r).connection };
    // SAFETY: the state of the request whose daemon connection has an event.
    unsafe { with_state("daemon event", state, |st| st.daemon_event()) };
    // SAFETY: c is live (see above); nginx's own event handlers end this way.
    unsafe { ngx_http_run_posted_requests(c) };
}

/// A runner (dispatch.rs), on a thread-pool thread.
pub extern "C" fn ngx_http_oxwsgi_rs_runner(dispatcher: *mut c_void, _log: *mut ngx_log_t) {
    guard("runner", (), || {
        // SAFETY: the shim passes the pointer `ThreadPool::post_runner` got: a leaked
        // (process-long) Dispatcher, used only through its Mutex/Condvar members.
        let d = unsafe { &*(dispatcher as *const Dispatcher) };
        d.run();
    })
}

/// Runners completed jobs (the dispatcher's eventfd is readable), on the event loop.
///
/// # Safety
/// `ev` is the read event of a dispatcher's connection (`ngx_http_oxwsgi_dispatch_create`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ngx_http_oxwsgi_rs_dispatch_read(ev: *mut ngx_event_t) {
    // SAFETY: the read event's data is the dispatcher's connection, whose data is the
    // dispatcher's events structure; both live for the worker's life.
    let d = unsafe { (*((*ev).data as *mut ngx_connection_t)).data } as *mut ngx_http_oxwsgi_dispatch_t;
    // SAFETY: d is live (above): its eventfd and the Rust dispatcher it was made for.
    let (fd, dispatcher) = unsafe { ((*d).fd, (*d).data) };
    let mut n = 0u64;
    // SAFETY: reads 8 bytes into n; one read resets the counter (level-triggered event
    // methods need it); EAGAIN means nothing was written since the last read.
    let _ = unsafe { libc::read(fd, (&raw mut n).cast(), 8) };
    // SAFETY: dispatcher is the leaked (process-long) Dispatcher `DispatchEvents::create` got.
    let d = guard("job completion", None, || Some(unsafe { &*(dispatcher as *const Dispatcher) }));
    let Some(d) = d else { return };
    for done in guard("job completion", Vec::new(), || d.take_done()) {
        match done {
            Done::Request(token) => {
                let ctx = token as *mut ngx_http_oxwsgi_ctx_t;
                // SAFETY: the token is the context of a live request: posting the job raised
                // r->main->blocked, which only this completion lowers; its handler
                // (ngx_http_oxwsgi_rs_task_done) catches panics.
                unsafe { ngx_http_oxwsgi_job_done(ctx) }
            }
            Done::Orphan(ts) => guard("orphan job completion", (), || {
                let unfinished = ts.job.lock().map(|j| j.exchange.is_some()).unwrap_or(false);
                if unfinished {
                    // The application ignored the closed connection for a whole batch; give
                    // up on it rather than loop (its objects are released by pyo3's pool).
                    if let Some(w) = worker::get() {
                        w.log().log(Level::Warning, "oxwsgi: a terminated request's iterable did not stop; abandoned");
                    }
                }
            }),
        }
    }
}

/// The dispatcher's timer, on the event loop.
///
/// # Safety
/// `ev` is the `tick` event of a dispatcher (`ngx_http_oxwsgi_dispatch_create`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ngx_http_oxwsgi_rs_dispatch_timer(ev: *mut ngx_event_t) {
    // SAFETY: the tick event's data is the dispatcher's events structure (worker-long).
    let d = unsafe { (*ev).data } as *mut ngx_http_oxwsgi_dispatch_t;
    // SAFETY: d is live; its data is the leaked Dispatcher it was made for.
    let dispatcher = unsafe { (*d).data };
    guard("dispatch timer", (), || {
        // SAFETY: a leaked (process-long) Dispatcher, see above.
        let d = unsafe { &*(dispatcher as *const Dispatcher) };
        d.tick();
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_rs_cleanup(state: *mut c_void) {
    guard("request cleanup", (), || {
        // SAFETY: the request pool is being destroyed: no task runs (blocked), and this
        // is the only owner of the state.
        let mut st = unsafe { Box::from_raw(state as *mut NgxRequest) };
        st.orphan();
    })
}

/// An event of an idle kept daemon connection (daemon_pool.rs), on the event loop.
///
/// # Safety
/// `ev` is an event of a connection the pool holds (the pool binds this handler).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ngx_http_oxwsgi_rs_daemon_idle_event(ev: *mut ngx_event_t) {
    // SAFETY: ev is an event of a pooled connection (above).
    guard("idle daemon connection event", (), || unsafe { super::daemon_pool::idle_event(ev) })
}

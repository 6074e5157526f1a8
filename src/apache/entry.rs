//! `extern "C"` entry points called by the C shim. Each one catches panics: a Rust panic
//! must never unwind into httpd (it would abort the child with every request it holds).
//! A panic while the configuration is read or checked fails closed: the directive returns
//! an error, a hook returns an error status, so `apache2 -t` and start-up fail.
//!
//! Here raw pointers become the wrappers of [`super::httpd`] (each conversion an `unsafe`
//! block naming httpd's guarantee); everything the entry points call is safe code.

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock};

use super::auth;
use super::compat;
use super::config;
use super::daemons;
use super::handler;
use super::httpd::{self, CmdParms, DirConf, Pool, Request, Server};
use super::io::ServerLog;
use super::{modpython, modpython_conf};
use crate::core::{Level, LogSink, interp, modwsgi_module, worker};
use crate::ffi::guard::guard;
use crate::ffi::httpd::*;

/// Test-only: `OXWSGI_TEST_PANIC=<point>` in httpd's environment makes the module panic at
/// that point (`directive`, `check_config`, `post_config`), so the tests can check that a
/// panic fails closed. Read once per process; never set it in production.
fn test_panic(point: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    if POINT.get_or_init(|| std::env::var("OXWSGI_TEST_PANIC").ok()).as_deref() == Some(point) {
        panic!("OXWSGI_TEST_PANIC={point}: injected panic (test only)");
    }
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `cmd`, `dconf` and `argv` (`argc` strings) must be what httpd passes to a directive handler.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_directive(
    cmd: *mut cmd_parms,
    dconf: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    // SAFETY: httpd passes the live cmd_parms of the directive being read.
    let cmd = unsafe { CmdParms::from_ptr(cmd) };
    guard("directive", c"oxwsgi: internal error while reading a directive".as_ptr(), || {
        // SAFETY: httpd passes argc NUL-terminated argument strings, valid during the call.
        let args = unsafe { httpd::directive_args(argc, argv) };
        // SAFETY: dconf is this module's dir config of the context being read (created by
        // oxwsgi_create_dir_conf in the configuration pool); only this call uses it now.
        let dc = unsafe { DirConf::from_ptr_mut(dconf) };
        let args: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        test_panic("directive");
        let result = if cmd.info() == OXWSGI_D_MODPYTHON as usize {
            modpython_conf::directive(cmd, dc, &args)
        } else {
            config::directive(cmd, dc, &args)
        };
        match result {
            Ok(()) => std::ptr::null(),
            Err(msg) => cmd.pool().strdup(msg.replace('\0', " ").as_bytes()).as_ptr(),
        }
    })
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `pconf` must be httpd's live configuration pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_pre_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    guard("pre_config", 500, || {
        config::reset();
        modpython_conf::reset();
        // httpd unloads this module when pconf is cleared (graceful restart); Rust statics
        // are never dropped, so free the configuration first or every restart leaks it.
        // SAFETY: httpd passes the live configuration pool, used by this thread only
        // while the configuration is read.
        unsafe { Pool::from_ptr(pconf) }.on_clear(drop_config);
        OK as c_int
    })
}

extern "C" fn drop_config(_data: *mut c_void) -> apr_status_t {
    guard("config cleanup", 0, || {
        config::clear();
        0
    })
}

/// The server_rec httpd hands to a configuration hook, for logging.
///
/// # Safety
/// `s` must be NULL or the `server_rec` httpd passed to the running hook.
unsafe fn server(s: *mut server_rec) -> Option<&'static Server> {
    // SAFETY: httpd passes the main server_rec, which lives in the configuration pool
    // until this module is unloaded with it (and a child never clears it).
    unsafe { Server::from_ptr(s) }
}

/// `check_config` runs after every directive was read, also for `apache2 -t` (unlike
/// `post_config`): the checks that need the whole configuration go here.
/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `s` must be NULL or httpd's main `server_rec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_check_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    // SAFETY: s is the server_rec httpd passed to this hook.
    let s = unsafe { server(s) };
    guard("check_config", 500, || {
        test_panic("check_config");
        match config::check(s) {
            Ok(()) => OK as c_int,
            Err(msg) => {
                match s {
                    Some(s) => s.log(Level::Critical, &format!("oxwsgi: {msg}")),
                    None => eprintln!("oxwsgi: {msg}"),
                }
                500
            }
        }
    })
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `s` must be NULL or httpd's main `server_rec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_post_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    // SAFETY: s is the server_rec httpd passed to this hook.
    let s = unsafe { server(s) };
    guard("post_config", 500, || {
        if httpd::process::is_pre_config_pass() {
            return OK as c_int; // the first, throw-away pass at start-up
        }
        test_panic("post_config");
        let Some(s) = s else { return OK as c_int };
        let log = ServerLog::new(s);
        if config::with(|c| !c.groups.is_empty()) {
            // SAFETY: httpd passes its live configuration pool; this generation's daemon
            // bookkeeping lives exactly as long as it (the cleanup below ends it).
            let pool = unsafe { Pool::from_ptr(pconf) };
            // Registered before the daemons' own registrations, so it runs after them.
            pool.on_clear(daemons_cleanup);
            GEN_POOL.store(pconf, Ordering::Release);
            if let Err(e) = config::with(|c| daemons::start(pool, s, c, daemon_event)) {
                log.log(Level::Critical, &format!("oxwsgi: daemon mode: {e}"));
                return 500;
            }
        }
        config::with(|c| {
            for n in &c.notices {
                log.log(Level::Notice, &format!("oxwsgi: {n}"));
            }
            if let Some(msg) = config::shared_interpreter_notice(c) {
                log.log(Level::Notice, &msg);
            }
        });
        OK as c_int
    })
}

/// This generation's configuration pool, for the MPM's daemon callbacks (NULL between
/// generations).
static GEN_POOL: AtomicPtr<apr_pool_t> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn daemons_cleanup(_data: *mut c_void) -> apr_status_t {
    guard("daemon cleanup", 0, || {
        GEN_POOL.store(std::ptr::null_mut(), Ordering::Release);
        daemons::on_config_cleared(httpd::process::is_exiting());
        0
    })
}

/// The MPM's report about a daemon process (an APR "other child"), in the parent.
///
/// # Safety
/// Called by APR with the registration's opaque key (a number, never dereferenced).
unsafe extern "C" fn daemon_event(reason: c_int, data: *mut c_void, status: c_int) {
    guard("daemon event", (), || {
        let Ok(reason) = u32::try_from(reason) else { return };
        if reason == APR_OC_REASON_UNREGISTER {
            return; // the registration ends (pool cleared, or unregistered by on_event)
        }
        let pool = GEN_POOL.load(Ordering::Acquire);
        if pool.is_null() {
            return;
        }
        // SAFETY: GEN_POOL is this generation's live configuration pool (reset to NULL by
        // its cleanup); the MPM calls back on the parent's only thread.
        let pool = unsafe { Pool::from_ptr(pool) };
        daemons::on_event(pool, data as usize, reason, status);
    })
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `s` must be NULL or httpd's main `server_rec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_child_init(p: *mut apr_pool_t, s: *mut server_rec) {
    // SAFETY: s is the server_rec httpd passed to this hook.
    let s = unsafe { server(s) };
    guard("child_init", (), || {
        if let Some(s) = s {
            child_init(s);
            // The child's pool is destroyed when the child exits (after its worker threads
            // are joined): run Python's exit work then.
            // SAFETY: p is the child's pool httpd passed to this hook, live until the child
            // exits; it is only used here, on the thread that runs child_init.
            unsafe { Pool::from_ptr(p) }.on_clear(child_exit);
        }
    })
}

/// The child process is exiting (its pool is being destroyed).
///
/// # Safety
/// Registered as an APR pool cleanup with no data; called by APR only.
unsafe extern "C" fn child_exit(_data: *mut c_void) -> apr_status_t {
    guard("child exit", 0, || {
        if let Some(w) = worker::get() {
            w.exit();
        }
        0
    })
}

fn child_init(s: &'static Server) {
    // Also in a child without Python (WSGIRestrictEmbedded): its crashes are reported too.
    crate::ffi::crash_report::install();
    let config = config::freeze();
    if !config.groups.is_empty() {
        daemons::close_inherited_sockets();
    }
    if config.restrict_embedded {
        return; // WSGIRestrictEmbedded On: no Python in Apache's own children
    }
    // Preloads into the main interpreter go with the start; the others follow it.
    let imports: Vec<PathBuf> =
        config.imports.iter().filter(|i| interp::is_main_name(&i.application_group)).map(|i| i.path.clone()).collect();
    let mut runtime = config.runtime.clone();
    (runtime.modwsgi.maximum_processes, runtime.modwsgi.threads_per_process) = compat::server_limits();
    if config.server_metrics {
        modwsgi_module::set_server_metrics(compat::server_metrics);
    }
    let setup = worker::Setup {
        runtime: &runtime,
        imports: &imports,
        import_directive: "WSGIImportScript",
        multithread: httpd::process::mpm_threaded(),
        multiprocess: true,
        server_software: format!("{} oxwsgi/{}", httpd::process::server_banner(), env!("CARGO_PKG_VERSION")),
    };
    let w = worker::start(&setup, Arc::new(ServerLog::new(s)));
    for i in config.imports.iter().filter(|i| !interp::is_main_name(&i.application_group)) {
        w.preload(&i.application_group, &i.path, "WSGIImportScript");
    }
    modpython::child_init();
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `r` must be the live request of the calling hook, on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_translate_name(r: *mut request_rec) -> c_int {
    guard("translate_name", DECLINED as c_int, || {
        // SAFETY: httpd calls the hook with the live request it is processing on this
        // thread; it stays live until the hook returns.
        handler::translate_name(unsafe { Request::from_ptr(r) })
    })
}

/// Called by the C shim (apache-module/mod_oxwsgi.c) only.
///
/// # Safety
/// `r` must be the live request of the calling hook, on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_handler(r: *mut request_rec) -> c_int {
    guard("handler", HTTP_INTERNAL_SERVER_ERROR as c_int, || {
        // SAFETY: httpd calls the handler with the live request it is processing on this
        // thread; it stays live until the handler returns.
        handler::handle(unsafe { Request::from_ptr(r) })
    })
}

/// A C string argument as text (`None` for NULL).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string valid during the call.
unsafe fn text_arg<'a>(p: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
    // SAFETY: forwarded contract.
    unsafe { httpd::opt_bytes(p) }.map(String::from_utf8_lossy)
}

/// `WSGIAccessScript` (access_checker). Called by the C shim only.
///
/// # Safety
/// `r` must be the live request of the calling hook, on this thread; `host` NULL or a
/// string valid during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_allow_access(r: *mut request_rec, host: *const c_char) -> c_int {
    // SAFETY: host is NULL or a string of the request/connection pool (caller's contract).
    let host = unsafe { httpd::opt_bytes(host) }.unwrap_or(b"");
    guard("access_checker", OXWSGI_AUTH_DENIED as c_int, || {
        // SAFETY: httpd calls the hook with the live request it is processing on this
        // thread; it stays live until the hook returns.
        auth::allow_access(unsafe { Request::from_ptr(r) }, host)
    })
}

/// `AuthBasicProvider wsgi` (check_password). Called by the C shim only.
///
/// # Safety
/// `r` must be the live request being authenticated, on this thread; `user` and
/// `password` strings valid during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_check_password(
    r: *mut request_rec,
    user: *const c_char,
    password: *const c_char,
) -> c_int {
    // SAFETY: mod_auth_basic passes the decoded user and password, valid during the call.
    let (user, password) = unsafe { (text_arg(user), text_arg(password)) };
    guard("check_password", OXWSGI_AUTH_ERROR as c_int, || {
        // SAFETY: the live request being authenticated, on this thread (mod_auth_basic).
        let r = unsafe { Request::from_ptr(r) };
        auth::check_password(r, user.as_deref().unwrap_or(""), password.as_deref().unwrap_or(""))
    })
}

/// `Require wsgi-group` (the authz provider). Called by the C shim only.
///
/// # Safety
/// `r` must be the live request being authorized, on this thread; `user` and `groups`
/// strings valid during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_user_in_groups(
    r: *mut request_rec,
    user: *const c_char,
    groups: *const c_char,
) -> c_int {
    // SAFETY: mod_authz_core passes r->user and the Require line, valid during the call.
    let (user, groups) = unsafe { (text_arg(user), text_arg(groups)) };
    guard("check_authorization", OXWSGI_AUTH_DENIED as c_int, || {
        // SAFETY: the live request being authorized, on this thread (mod_authz_core).
        let r = unsafe { Request::from_ptr(r) };
        auth::user_in_groups(r, user.as_deref().unwrap_or(""), groups.as_deref().unwrap_or(""))
    })
}

/// `AuthDigestProvider wsgi` (get_realm_hash). Called by the C shim only.
///
/// # Safety
/// As [`oxwsgi_rs_check_password`]; `rethash` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_get_realm_hash(
    r: *mut request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> c_int {
    // SAFETY: mod_auth_digest passes the user and realm, valid during the call.
    let (user, realm) = unsafe { (text_arg(user), text_arg(realm)) };
    // SAFETY: the live request being authenticated, on this thread (mod_auth_digest).
    let req = unsafe { Request::from_ptr(r) };
    let (rc, hash) = guard("get_realm_hash", (OXWSGI_AUTH_ERROR as c_int, None), || {
        auth::get_realm_hash(req, user.as_deref().unwrap_or(""), realm.as_deref().unwrap_or(""))
    });
    if let Some(h) = hash {
        let h = req.pool().strdup(h.as_bytes()).as_ptr() as *mut c_char;
        // SAFETY: rethash is the provider's out parameter, writable (caller's contract);
        // the hash lives in the request pool.
        unsafe { *rethash = h };
    }
    rc
}

/// The merge of two contexts' mod_python directives (both non-NULL). Called by the C
/// shim's dir-config merge only.
///
/// # Safety
/// `p` must be the pool of the merged dir config; `base` and `add` pointers made by
/// `Pool::keep_mp_conf` in pools that outlive it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_mp_merge(
    p: *mut apr_pool_t,
    base: *const c_void,
    add: *const c_void,
) -> *const c_void {
    guard("mod_python merge", add, || {
        // SAFETY: base and add come from keep_mp_conf in live pools (caller's contract).
        let (b, a) = unsafe { (httpd::kept_mp_conf(base), httpd::kept_mp_conf(add)) };
        let (Some(b), Some(a)) = (b, a) else { return add };
        let merged = Arc::new(modpython_conf::MpConf::merge(b, a));
        // SAFETY: p is the live pool httpd merges into, used by this thread now.
        unsafe { Pool::from_ptr(p) }.keep_mp_conf(merged)
    })
}

/// A request phase with mod_python directives in its context. Called by the C shim only.
///
/// # Safety
/// `r` must be the live request of the calling hook, on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_mp_phase(r: *mut request_rec, phase: c_int) -> c_int {
    guard("mod_python phase", HTTP_INTERNAL_SERVER_ERROR as c_int, || {
        // SAFETY: httpd calls the hook with the live request it is processing on this
        // thread; it stays live until the hook returns.
        let r = unsafe { Request::from_ptr(r) };
        match usize::try_from(phase) {
            Ok(i) if i < modpython_conf::CLEANUP => modpython::phase(r, i),
            _ => DECLINED as c_int,
        }
    })
}

/// A mod_python output filter's call. Called by the C shim only.
///
/// # Safety
/// `f` and `bb` must be the filter and brigade httpd passed to the running filter call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_mp_output_filter(f: *mut ap_filter_t, bb: *mut apr_bucket_brigade) -> apr_status_t {
    // SAFETY: httpd calls the filter with its live filter, on this thread.
    let f = unsafe { httpd::Filter::from_ptr(f) };
    // SAFETY: the brigade httpd passed to this call.
    let Some(bb) = (unsafe { httpd::FilterBrigade::from_ptr(bb) }) else { return -1 };
    guard("mod_python output filter", -1, || super::modpython_filter::output_filter(f, &bb))
}

/// A mod_python input filter's call. Called by the C shim only.
///
/// # Safety
/// `f` and `bb` must be the filter and brigade httpd passed to the running filter call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn oxwsgi_rs_mp_input_filter(
    f: *mut ap_filter_t,
    bb: *mut apr_bucket_brigade,
    mode: c_int,
    block: c_int,
    readbytes: apr_off_t,
) -> apr_status_t {
    // SAFETY: httpd calls the filter with its live filter, on this thread.
    let f = unsafe { httpd::Filter::from_ptr(f) };
    // SAFETY: the brigade httpd passed to this call.
    let Some(bb) = (unsafe { httpd::FilterBrigade::from_ptr(bb) }) else { return -1 };
    let call = httpd::InputCall { mode, block, readbytes };
    guard("mod_python input filter", -1, || super::modpython_filter::input_filter(f, &bb, call))
}

//! `extern "C"` entry points called by the C shim. Each one catches panics: a Rust panic
//! must never unwind into httpd (it would abort the child with every request it holds).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::{Arc, OnceLock};

use oxwsgi_checks::msgid;
use pyo3::prelude::*;

use super::config::{self, Config};
use super::handler;
use super::io::ServerLog;
use crate::core::environ::EnvironTemplate;
use crate::core::{Level, LogSink, runtime, script};
use crate::ffi::httpd::*;
use crate::ffi::python;

/// What a child process has after `child_init`.
pub struct Worker {
    pub config: Config,
    /// Why Python could not start, if it could not (every request then answers 500).
    pub startup_error: Option<String>,
    pub template: Option<EnvironTemplate>,
}

pub static WORKER: OnceLock<Worker> = OnceLock::new();

pub use crate::ffi::guard::guard;

/// A copy of `s` in the configuration pool: directive values must outlive parsing, and
/// httpd prints error strings after the handler returned.
fn pool_copy(cmd: *mut cmd_parms, s: &str) -> *const c_char {
    let c = CString::new(s.replace('\0', " ")).expect("NULs replaced");
    // SAFETY: cmd is live during the directive call; apr_pstrdup copies into its pool.
    unsafe { apr_pstrdup((*cmd).pool, c.as_ptr()) }
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_directive(
    cmd: *mut cmd_parms,
    dconf: *mut c_void,
    argc: c_int,
    argv: *const *mut c_char,
) -> *const c_char {
    guard("directive", c"oxwsgi: internal error while reading a directive".as_ptr(), || {
        // SAFETY: httpd passes argc valid NUL-terminated strings and a live cmd_parms.
        let (args, name, id, is_virtual) = unsafe {
            let args: Vec<String> =
                (0..argc as usize).map(|i| CStr::from_ptr(*argv.add(i)).to_string_lossy().into_owned()).collect();
            let name = CStr::from_ptr((*(*cmd).cmd).name).to_string_lossy().into_owned();
            (args, name, (*cmd).info as usize as u32, (*(*cmd).server).is_virtual != 0)
        };
        let dc = dconf as *mut oxwsgi_dir_conf;
        let global_only = |r: Result<(), String>| -> Result<(), String> {
            if is_virtual {
                Err(format!(
                    "{name} cannot occur within a <VirtualHost> section: it configures the Python of every child"
                ))
            } else {
                r
            }
        };
        let r: Result<(), String> = match id {
            OXWSGI_D_SCRIPT_ALIAS => {
                // SAFETY: cmd is live.
                config::script_alias(unsafe { (*cmd).server }, &args)
            }
            OXWSGI_D_SCRIPT_ALIAS_MATCH => config::script_alias_match(cmd, &args),
            OXWSGI_D_PYTHON_HOME => global_only(Ok(())).and_then(|_| config::python_home(&args)),
            OXWSGI_D_PYTHON_PATH => global_only(Ok(())).and_then(|_| config::python_path(&args)),
            OXWSGI_D_IMPORT_SCRIPT => config::import_script(&args),
            OXWSGI_D_CALLABLE_OBJECT => config::one(&name, &args).map(|v| {
                // SAFETY: dconf is this module's dir config for the current context.
                unsafe { (*dc).callable = pool_copy(cmd, v) }
            }),
            OXWSGI_D_APPLICATION_GROUP => config::one(&name, &args).map(|v| {
                config::with(|c| c.application_groups.insert(v.to_string()));
                // SAFETY: as above.
                unsafe { (*dc).application_group = pool_copy(cmd, v) }
            }),
            OXWSGI_D_PASS_AUTHORIZATION => config::flag(&name, &args).map(|v| {
                // SAFETY: as above.
                unsafe { (*dc).pass_authorization = v }
            }),
            OXWSGI_D_CHUNKED_REQUEST => config::flag(&name, &args).map(|v| {
                // SAFETY: as above.
                unsafe { (*dc).chunked_request = v }
            }),
            OXWSGI_D_SCRIPT_RELOADING => config::flag(&name, &args).map(|v| {
                // SAFETY: as above.
                unsafe { (*dc).script_reloading = v }
            }),
            OXWSGI_D_PROCESS_GROUP => config::process_group(&args),
            OXWSGI_D_RESTRICT_EMBEDDED => config::flag(&name, &args).and_then(|v| match v {
                0 => Ok(()),
                _ => Err("WSGIRestrictEmbedded On needs daemon mode, which oxwsgi does not support yet".into()),
            }),
            OXWSGI_D_LAZY_INITIALIZATION => config::flag(&name, &args).and_then(|v| match v {
                1 => Ok(()),
                _ => Err("WSGILazyInitialization Off is not supported: oxwsgi always starts Python in the child processes, never as root in the parent".into()),
            }),
            OXWSGI_D_PYTHON_OPTIMIZE => global_only(config::python_optimize(&args)),
            OXWSGI_D_PYTHON_HASH_SEED => global_only(config::hash_seed(&args)),
            OXWSGI_D_DONT_WRITE_BYTECODE => global_only(config::flag(&name, &args).map(|v| {
                config::with(|c| c.runtime.start.dont_write_bytecode = v == 1)
            })),
            OXWSGI_D_PYTHON_WARNINGS => global_only(config::one(&name, &args).map(|v| {
                config::with(|c| c.runtime.start.warnings.push(v.to_string()))
            })),
            OXWSGI_D_SWITCH_INTERVAL => global_only(config::switch_interval(&args)),
            _ => Err(format!(
                "{name} is a mod_wsgi directive that oxwsgi does not support yet; \
                 remove it (see docs/mod_wsgi-migration.md)"
            )),
        };
        match r {
            Ok(()) => std::ptr::null(),
            Err(msg) => pool_copy(cmd, &msg),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_pre_config(
    pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
) -> c_int {
    guard("pre_config", 500, || {
        config::reset();
        // httpd unloads this module when pconf is cleared (graceful restart); Rust statics
        // are never dropped, so free the configuration first or every restart leaks it.
        // SAFETY: pconf is the live configuration pool; the cleanup takes no data.
        unsafe {
            apr_pool_cleanup_register(pconf, std::ptr::null(), Some(drop_config), Some(apr_pool_cleanup_null));
        }
        OK as c_int
    })
}

extern "C" fn drop_config(_data: *mut c_void) -> apr_status_t {
    guard("config cleanup", 0, || {
        config::clear();
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_post_config(
    _pconf: *mut apr_pool_t,
    _plog: *mut apr_pool_t,
    _ptemp: *mut apr_pool_t,
    s: *mut server_rec,
) -> c_int {
    guard("post_config", 500, || {
        // SAFETY: a plain query of httpd's state.
        if unsafe { oxwsgi_ap_is_pre_config_pass() } != 0 {
            return OK as c_int; // the first, throw-away pass at start-up
        }
        let log = ServerLog::new(s);
        config::with(|c| {
            for g in &c.application_groups {
                if g != "%{GLOBAL}" {
                    log.log(
                        Level::Notice,
                        &format!(
                            "oxwsgi: application group {g:?} runs in the main interpreter, like %{{GLOBAL}}: \
                         oxwsgi uses one interpreter per process (see docs/mod_wsgi-migration.md)"
                        ),
                    );
                }
            }
        });
        OK as c_int
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_child_init(_p: *mut apr_pool_t, s: *mut server_rec) {
    guard("child_init", (), || child_init(s))
}

fn child_init(s: *mut server_rec) {
    let config = config::CONFIG.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
    let log: Arc<dyn LogSink> = Arc::new(ServerLog::new(s));
    let mut worker = Worker { config, startup_error: None, template: None };
    match runtime::start(&worker.config.runtime, log.clone()) {
        Err(e) => {
            let msg = format!("Python failed to start in this child: {e}");
            log.log(Level::Critical, &msgid::line(msgid::PYTHON_START_FAILED, "oxwsgi", &msg));
            worker.startup_error = Some(e);
        }
        Ok(()) => {
            python::keep_thread_state();
            Python::attach(|py| {
                // SAFETY: plain queries of httpd's MPM and banner.
                let (threaded, banner) = unsafe {
                    (
                        oxwsgi_ap_mpm_threaded() != 0,
                        CStr::from_ptr(ap_get_server_banner()).to_string_lossy().into_owned(),
                    )
                };
                let software = format!("{banner} oxwsgi/{}", env!("CARGO_PKG_VERSION"));
                match EnvironTemplate::with_keys(py, threaded, true, &software, super::handler::ENVIRON_KEYS) {
                    Ok(t) => worker.template = Some(t),
                    Err(e) => worker.startup_error = Some(runtime::describe(py, &e)),
                }
                for imp in &worker.config.imports {
                    if let Err(e) = script::module(py, &imp.path, false) {
                        let msg = format!("WSGIImportScript failed: {}", runtime::describe(py, &e));
                        let context = imp.path.display().to_string();
                        log.log(Level::Error, &msgid::line(msgid::IMPORT_FAILED, &context, &msg));
                    }
                }
            });
        }
    }
    let _ = WORKER.set(worker);
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_translate_name(r: *mut request_rec) -> c_int {
    guard("translate_name", DECLINED as c_int, || {
        // SAFETY: httpd calls the hook with a live request on this thread.
        unsafe { handler::translate_name(r) }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn oxwsgi_rs_handler(r: *mut request_rec) -> c_int {
    guard("handler", HTTP_INTERNAL_SERVER_ERROR as c_int, || {
        // SAFETY: httpd calls the hook with a live request on this thread.
        unsafe { handler::handle(r) }
    })
}

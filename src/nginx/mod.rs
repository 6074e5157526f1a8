//! The nginx adapter: the symbols `load_module` looks up, the entry points the C shim
//! (ngx-module/ngx_http_oxwsgi_module.c) calls, and request handling.
//!
//! Process model: nginx parses the configuration in the master; Python starts in each
//! worker (`init_process`) and never in the master, so a reload (HUP) simply brings up
//! fresh workers (DESIGN.md, "Process and interpreter model").
//!
//! Execution model: Python never runs on the event loop. The loop copies the request into
//! owned data and queues jobs for runner threads of the `thread_pool` (`wsgi_thread_pool`;
//! dispatch.rs); each job produces a batch of the response, which the loop sends
//! (request.rs, task.rs).

mod commands;
mod conf;
mod daemon_client;
mod daemon_conf;
mod daemon_pool;
mod daemons;
mod dispatch;
mod entry;
mod io;
mod ngx;
mod request;
mod state;
mod task;
mod testhook;

/// The content handler `wsgi_app` installs (conf.rs). Wired here, where every file of the
/// adapter is known, so that no lower file reaches up to the entry points.
/// The thread-task handler of a dispatcher's runner (ngx.rs `ThreadPool::post_runner`).
const RUNNER: unsafe extern "C" fn(*mut std::ffi::c_void, *mut crate::ffi::ngx::ngx_log_t) =
    entry::ngx_http_oxwsgi_rs_runner;
/// The event handler of a request's daemon connection (daemon_client.rs).
const DAEMON_EVENT: unsafe extern "C" fn(*mut crate::ffi::ngx::ngx_event_t) = entry::ngx_http_oxwsgi_rs_daemon_event;
/// The event handler of an idle kept daemon connection (daemon_pool.rs).
const DAEMON_IDLE_EVENT: unsafe extern "C" fn(*mut crate::ffi::ngx::ngx_event_t) =
    entry::ngx_http_oxwsgi_rs_daemon_idle_event;
const CONTENT_HANDLER: unsafe extern "C" fn(*mut crate::ffi::ngx::ngx_http_request_t) -> crate::ffi::ngx::ngx_int_t =
    entry::ngx_http_oxwsgi_rs_handler;

#[cfg(not(ngx_addon_build))]
use std::ffi::c_char;
#[cfg(not(ngx_addon_build))]
use std::ptr::null;

#[cfg(not(ngx_addon_build))]
use crate::ffi::ngx::{ngx_http_oxwsgi_module, ngx_module_t};

// The three arrays nginx dlsym()s after `load_module`. They must be defined in Rust: a
// cdylib exports only Rust items (research/build-facts.md §0.1). The module structure
// itself is in the C shim, so that NGX_MODULE_V1 gives it the configured signature.
// When nginx builds the module itself (ngx-module/config), it generates these arrays.

#[cfg(not(ngx_addon_build))]
#[unsafe(no_mangle)]
#[used]
pub static mut ngx_modules: [*const ngx_module_t; 2] = [&raw const ngx_http_oxwsgi_module, null()];

#[cfg(not(ngx_addon_build))]
#[unsafe(no_mangle)]
#[used]
pub static mut ngx_module_names: [*const c_char; 2] = [c"ngx_http_oxwsgi_module".as_ptr(), null()];

#[cfg(not(ngx_addon_build))]
#[unsafe(no_mangle)]
#[used]
pub static mut ngx_module_order: [*const c_char; 1] = [null()];

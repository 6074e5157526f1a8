//! The module's directive table (`ngx_command_t[]`), which the module structure in the C
//! shim points to. It is data, not logic, but defining it here keeps the shim small; the
//! handlers are in conf.rs and daemon_conf.rs, or nginx's own `ngx_conf_set_*_slot`.

use std::ffi::{CStr, c_void};
use std::mem::offset_of;
use std::ptr::null_mut;

use super::conf::{
    ngx_http_oxwsgi_conf_app, ngx_http_oxwsgi_conf_import, ngx_http_oxwsgi_conf_param,
    ngx_http_oxwsgi_conf_python_home, ngx_http_oxwsgi_conf_python_path,
};
use super::daemon_conf::{ngx_http_oxwsgi_conf_daemon_process, ngx_http_oxwsgi_conf_process_group};
use crate::ffi::ngx::*;

/// `ngx_string()`: nginx compares directive names with `ngx_strcmp`, so the bytes stay
/// NUL-terminated.
const fn name(s: &'static CStr) -> ngx_str_t {
    ngx_str_t { len: s.to_bytes().len(), data: s.as_ptr() as *mut u_char }
}

const MAIN: ngx_uint_t = NGX_HTTP_MAIN_CONF as ngx_uint_t;
const ANY: ngx_uint_t = (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF) as ngx_uint_t;
const LOC: ngx_uint_t = NGX_HTTP_LOC_CONF as ngx_uint_t;
/// `NGX_HTTP_MAIN_CONF_OFFSET` / `NGX_HTTP_LOC_CONF_OFFSET` (offsetof macros bindgen
/// cannot translate).
const MAIN_OFFSET: ngx_uint_t = offset_of!(ngx_http_conf_ctx_t, main_conf) as ngx_uint_t;
const LOC_OFFSET: ngx_uint_t = offset_of!(ngx_http_conf_ctx_t, loc_conf) as ngx_uint_t;

type Handler = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut std::ffi::c_char;

const fn cmd(n: &'static CStr, kind: u32, set: Handler, conf: ngx_uint_t, offset: usize) -> ngx_command_t {
    ngx_command_t { name: name(n), type_: kind as ngx_uint_t, set: Some(set), conf, offset, post: null_mut() }
}

/// `wsgi_max_in_flight` is 1..=1000000.
static MAX_IN_FLIGHT_BOUNDS: ngx_conf_num_bounds_t =
    ngx_conf_num_bounds_t { post_handler: Some(ngx_conf_check_num_bounds), low: 1, high: 1_000_000 };

#[unsafe(no_mangle)]
#[used]
pub static mut ngx_http_oxwsgi_commands: [ngx_command_t; 11] = [
    cmd(c"wsgi_app", LOC as u32 | NGX_CONF_1MORE, ngx_http_oxwsgi_conf_app, LOC_OFFSET, 0),
    cmd(c"wsgi_python_home", MAIN as u32 | NGX_CONF_TAKE1, ngx_http_oxwsgi_conf_python_home, MAIN_OFFSET, 0),
    cmd(c"wsgi_python_path", MAIN as u32 | NGX_CONF_1MORE, ngx_http_oxwsgi_conf_python_path, MAIN_OFFSET, 0),
    cmd(c"wsgi_import", MAIN as u32 | NGX_CONF_1MORE, ngx_http_oxwsgi_conf_import, MAIN_OFFSET, 0),
    ngx_command_t {
        post: &raw const MAX_IN_FLIGHT_BOUNDS as *mut c_void,
        ..cmd(
            c"wsgi_max_in_flight",
            ANY as u32 | NGX_CONF_TAKE1,
            ngx_conf_set_num_slot,
            LOC_OFFSET,
            offset_of!(ngx_http_oxwsgi_loc_conf_t, max_in_flight),
        )
    },
    cmd(
        c"wsgi_thread_pool",
        ANY as u32 | NGX_CONF_TAKE1,
        ngx_conf_set_str_slot,
        LOC_OFFSET,
        offset_of!(ngx_http_oxwsgi_loc_conf_t, thread_pool_name),
    ),
    cmd(c"wsgi_param", ANY as u32 | NGX_CONF_TAKE23, ngx_http_oxwsgi_conf_param, LOC_OFFSET, 0),
    cmd(
        c"wsgi_pass_authorization",
        ANY as u32 | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC_OFFSET,
        offset_of!(ngx_http_oxwsgi_loc_conf_t, pass_authorization),
    ),
    cmd(c"wsgi_daemon_process", MAIN as u32 | NGX_CONF_1MORE, ngx_http_oxwsgi_conf_daemon_process, MAIN_OFFSET, 0),
    cmd(c"wsgi_process_group", ANY as u32 | NGX_CONF_TAKE1, ngx_http_oxwsgi_conf_process_group, LOC_OFFSET, 0),
    // ngx_null_command
    ngx_command_t {
        name: ngx_str_t { len: 0, data: null_mut() },
        type_: 0,
        set: None,
        conf: 0,
        offset: 0,
        post: null_mut(),
    },
];

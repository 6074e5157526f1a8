//! The directive handlers (`wsgi_app`, `wsgi_python_home`, `wsgi_python_path`,
//! `wsgi_import`, `wsgi_param`), referenced from the command table of the C shim, and the
//! checks that make mistakes fail `nginx -t` with one precise message.
//!
//! Every handler catches panics: a panic fails the directive (and `nginx -t`) with its
//! message, never "valid".

use std::ffi::{CStr, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::ptr::null_mut;

use super::ngx::{NgxStr, OK};
use super::testhook;
use crate::core::runtime;
use crate::ffi::ngx::*;

/// `NGX_CONF_ERROR`: `(char *) -1`.
fn conf_error() -> *mut c_char {
    usize::MAX as *mut c_char
}

/// `NGX_CONF_UNSET_PTR`: `(void *) -1`.
fn unset_ptr<T>() -> *mut T {
    usize::MAX as *mut T
}

/// What a directive's value is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `wsgi_app`'s script: an existing regular file.
    Script,
    /// A `wsgi_import` script: an existing regular file.
    Import,
    /// `wsgi_python_home`: a virtualenv or a prefix of the linked Python.
    Home,
    /// A `wsgi_python_path` entry: a directory.
    PathDir,
    /// `callable=`: a Python identifier.
    Callable,
}

/// `Err` is the message for `nginx -t`.
pub fn check(what: Check, value: &str) -> Result<(), String> {
    testhook::maybe_panic("config-check");
    let p = Path::new(value);
    match what {
        Check::Script | Check::Import => {
            let what = if what == Check::Script { "WSGI script" } else { "script" };
            match std::fs::metadata(p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("{what} {value} does not exist")),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    Err(format!("{what} {value} cannot be accessed (permission denied)"))
                }
                Err(e) => Err(format!("{what} {value} cannot be used: {e}")),
                Ok(m) if !m.is_file() => Err(format!("{what} {value} is not a regular file")),
                Ok(_) => Ok(()),
            }
        }
        Check::Home => runtime::check_python_home(p).map(drop),
        Check::PathDir => {
            if p.is_dir() {
                Ok(())
            } else {
                Err(format!("{value} is not a directory"))
            }
        }
        Check::Callable => {
            let ok = !value.is_empty()
                && !value.starts_with(|c: char| c.is_ascii_digit())
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok { Ok(()) } else { Err(format!("callable={value:?} is not a Python identifier")) }
        }
    }
}

/// Why a directive failed.
pub(super) enum Failure {
    /// Logged as `"<directive>": <message>`.
    Message(String),
    /// Returned to nginx, which logs `"<directive>" directive <text>`.
    Nginx(&'static CStr),
    /// nginx logged it already (an allocation, `ngx_conf_full_name`).
    Logged,
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Message(s)
    }
}

/// The configuration being parsed, during a directive handler.
#[repr(transparent)]
pub(super) struct Conf(ngx_conf_t);

impl Conf {
    /// # Safety
    /// `cf` must be the live `ngx_conf_t` nginx passed to a directive handler, used only
    /// during that call.
    pub(super) unsafe fn from_ptr<'a>(cf: *mut ngx_conf_t) -> &'a mut Conf {
        // SAFETY: Conf is a transparent ngx_conf_t, live during the call (caller).
        unsafe { &mut *(cf as *mut Conf) }
    }

    pub(super) fn as_ptr(&mut self) -> *mut ngx_conf_t {
        &mut self.0
    }

    /// The directive's words (name first); they live in the cycle pool.
    pub(super) fn args(&self) -> Vec<ngx_str_t> {
        // SAFETY: during a handler call cf->args is the live array of the directive's words.
        let a = unsafe { &*self.0.args };
        // SAFETY: the array holds nelts ngx_str_t.
        unsafe { std::slice::from_raw_parts(a.elts as *const ngx_str_t, a.nelts) }.to_vec()
    }

    /// Resolve a path against the nginx prefix, as nginx's own directives do.
    fn full_name(&mut self, mut s: ngx_str_t) -> Result<ngx_str_t, Failure> {
        // SAFETY: the cycle is live while it is configured; s points into the cycle pool.
        let rc = unsafe { ngx_conf_full_name(self.0.cycle, &mut s, 0) };
        if rc == OK { Ok(s) } else { Err(Failure::Logged) }
    }

    pub(super) fn log_error(&mut self, msg: &str) {
        // SAFETY: cf is live; the shim logs `msg` (len bytes) with the directive's name.
        unsafe { ngx_http_oxwsgi_conf_error(self.as_ptr(), msg.as_ptr(), msg.len()) }
    }

    /// `file:line` of the directive being parsed.
    pub(super) fn position(&self) -> String {
        if self.0.conf_file.is_null() {
            return "the command line".into();
        }
        // SAFETY: while a file is parsed, cf->conf_file is its live ngx_conf_file_t.
        let f = unsafe { &*self.0.conf_file };
        format!("{}:{}", text(&f.file.name), f.line)
    }

    /// The configuration's pool (the cycle's: it lives as long as the configuration).
    pub(super) fn pool(&self) -> *mut ngx_pool_t {
        self.0.pool
    }

    /// The cycle being configured.
    pub(super) fn cycle(&self) -> *mut ngx_cycle_t {
        self.0.cycle
    }

    /// Log a configuration error that belongs to no single directive (postconfiguration).
    pub(super) fn log_emerg(&mut self, msg: &str) {
        // SAFETY: cf->log is the cycle's live log; the shim logs `msg` (len bytes).
        unsafe { ngx_http_oxwsgi_log(self.0.log, NGX_LOG_EMERG as ngx_uint_t, msg.as_ptr() as *mut u_char, msg.len()) }
    }

    /// The configurations of the block being parsed (`cf->ctx` of an http-level directive).
    fn http_ctx(&self) -> &ngx_http_conf_ctx_t {
        // SAFETY: our directives are http-level: cf->ctx is an ngx_http_conf_ctx_t.
        unsafe { &*(self.0.ctx as *const ngx_http_conf_ctx_t) }
    }

    fn core_loc_conf(&mut self) -> &mut ngx_http_core_loc_conf_t {
        let ctx = self.http_ctx();
        // SAFETY: loc_conf holds one configuration per HTTP module, indexed by ctx_index.
        let p = unsafe { *ctx.loc_conf.add(ngx_http_core_module.ctx_index) };
        // SAFETY: the core module's entry is its ngx_http_core_loc_conf_t.
        unsafe { &mut *(p as *mut ngx_http_core_loc_conf_t) }
    }

    pub(super) fn main_conf(&mut self) -> &mut ngx_http_oxwsgi_main_conf_t {
        let ctx = self.http_ctx();
        // SAFETY: main_conf holds one configuration per HTTP module, indexed by ctx_index.
        let p = unsafe { *ctx.main_conf.add(ngx_http_oxwsgi_module.ctx_index) };
        // SAFETY: our entry is our main configuration (create_main_conf).
        unsafe { &mut *(p as *mut ngx_http_oxwsgi_main_conf_t) }
    }
}

pub(super) fn text(s: &ngx_str_t) -> String {
    // SAFETY: directive words and resolved names live in the cycle pool.
    String::from_utf8_lossy(unsafe { NgxStr::from_raw(s) }.as_bytes()).into_owned()
}

fn checked(what: Check, s: &ngx_str_t) -> Result<(), Failure> {
    check(what, &text(s)).map_err(Failure::Message)
}

/// Run a directive handler; failures and panics become `NGX_CONF_ERROR` with a message.
///
/// # Safety
/// `cf` must be the live `ngx_conf_t` of the handler call.
pub(super) unsafe fn directive(cf: *mut ngx_conf_t, f: impl FnOnce(&mut Conf) -> Result<(), Failure>) -> *mut c_char {
    // SAFETY: cf is live during the call (caller).
    let c = unsafe { Conf::from_ptr(cf) };
    let result = catch_unwind(AssertUnwindSafe(|| f(&mut *c))).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::Message(format!("internal error (panic) in the configuration check: {msg}")))
    });
    match result {
        Ok(()) => null_mut(),
        Err(Failure::Message(m)) => {
            c.log_error(&m);
            conf_error()
        }
        Err(Failure::Nginx(s)) => s.as_ptr() as *mut c_char,
        Err(Failure::Logged) => conf_error(),
    }
}

/// `wsgi_app <file> [callable=<name>];` (location).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_app(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: the command table gives wsgi_app NGX_HTTP_LOC_CONF_OFFSET: conf is our
        // location configuration, live in the cycle pool.
        let lcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_loc_conf_t) };
        app(c, lcf)
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

fn app(c: &mut Conf, lcf: &mut ngx_http_oxwsgi_loc_conf_t) -> Result<(), Failure> {
    if !lcf.script.data.is_null() {
        return Err(Failure::Nginx(c"is duplicate"));
    }
    let args = c.args();
    let script = c.full_name(args[1])?;
    checked(Check::Script, &script)?;
    lcf.script = script;
    for opt in &args[2..] {
        let word = text(opt);
        match word.strip_prefix("callable=") {
            Some(name) => {
                check(Check::Callable, name)?;
                let skip = "callable=".len();
                // SAFETY: the word is at least `skip` bytes long; the rest stays in the pool.
                lcf.callable = ngx_str_t { len: opt.len - skip, data: unsafe { opt.data.add(skip) } };
            }
            None => {
                let name = word.split('=').next().unwrap_or("");
                return Err(format!("unknown option \"{name}\" (the only option is callable=NAME)").into());
            }
        }
    }
    let clcf = c.core_loc_conf();
    clcf.handler = Some(super::CONTENT_HANDLER);
    // SCRIPT_NAME is the location prefix without a trailing slash; regex, named and `if`
    // locations have none.
    if clcf.named() != 0 || clcf.noname() != 0 || !clcf.regex.is_null() {
        lcf.no_prefix = 1;
    } else {
        let mut prefix = clcf.name;
        // SAFETY: the location name lives in the cycle pool.
        let bytes = unsafe { NgxStr::from_raw(&prefix) }.as_bytes();
        prefix.len = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'/').count();
        lcf.prefix = prefix;
    }
    // Whether workers start Python (main conf `enabled`) is decided when the location's
    // process group is known: the shim's merge.
    Ok(())
}

/// `wsgi_python_home <dir>;` (http).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_python_home(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: NGX_HTTP_MAIN_CONF_OFFSET: conf is our main configuration.
        let mcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_main_conf_t) };
        if !mcf.python_home.data.is_null() {
            return Err(Failure::Nginx(c"is duplicate"));
        }
        let home = c.full_name(c.args()[1])?;
        checked(Check::Home, &home)?;
        mcf.python_home = home;
        Ok(())
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

/// Append the directive's paths (resolved, checked) to a list in the cycle pool.
fn path_list(c: &mut Conf, list: &mut *mut ngx_array_t, what: Check) -> Result<(), Failure> {
    if list.is_null() {
        // SAFETY: the configuration pool is live.
        *list = unsafe { ngx_array_create(c.0.pool, 4, size_of::<ngx_str_t>()) };
        if list.is_null() {
            return Err(Failure::Logged);
        }
    }
    for word in &c.args()[1..] {
        let path = c.full_name(*word)?;
        checked(what, &path)?;
        // SAFETY: the list is a live array of ngx_str_t.
        let slot = unsafe { ngx_array_push(*list) } as *mut ngx_str_t;
        if slot.is_null() {
            return Err(Failure::Logged);
        }
        // SAFETY: slot is a fresh element of the array.
        unsafe { slot.write(path) };
    }
    Ok(())
}

/// `wsgi_python_path <dir> ...;` (http).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_python_path(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: NGX_HTTP_MAIN_CONF_OFFSET: conf is our main configuration.
        let mcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_main_conf_t) };
        path_list(c, &mut mcf.python_path, Check::PathDir)
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

/// `wsgi_import <file> ...;` (http).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_import(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: NGX_HTTP_MAIN_CONF_OFFSET: conf is our main configuration.
        let mcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_main_conf_t) };
        path_list(c, &mut mcf.imports, Check::Import)
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

/// `wsgi_param <NAME> <value> [if_not_empty];` (http, server, location).
#[unsafe(no_mangle)]
pub extern "C" fn ngx_http_oxwsgi_conf_param(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let run = |c: &mut Conf| {
        // SAFETY: NGX_HTTP_LOC_CONF_OFFSET: conf is our location configuration.
        let lcf = unsafe { &mut *(conf as *mut ngx_http_oxwsgi_loc_conf_t) };
        param(c, lcf)
    };
    // SAFETY: nginx calls directive handlers with the live configuration.
    unsafe { directive(cf, run) }
}

fn param(c: &mut Conf, lcf: &mut ngx_http_oxwsgi_loc_conf_t) -> Result<(), Failure> {
    let args = c.args();
    if lcf.params.is_null() || lcf.params == unset_ptr() {
        // SAFETY: the configuration pool is live.
        lcf.params = unsafe { ngx_array_create(c.0.pool, 4, size_of::<ngx_http_oxwsgi_param_t>()) };
        if lcf.params.is_null() {
            return Err(Failure::Logged);
        }
    }
    if args[1].len == 0 {
        return Err(Failure::Nginx(c"takes a non-empty name"));
    }
    let skip_empty = match args.get(3) {
        None => 0,
        Some(w) if text(w) == "if_not_empty" => 1,
        Some(w) => return Err(format!("invalid parameter \"{}\" (the only one is if_not_empty)", text(w)).into()),
    };
    // SAFETY: params is a live array of ngx_http_oxwsgi_param_t.
    let p = unsafe { ngx_array_push(lcf.params) } as *mut ngx_http_oxwsgi_param_t;
    if p.is_null() {
        return Err(Failure::Logged);
    }
    // SAFETY: p is a fresh element; the value is compiled into it below.
    unsafe { p.write(ngx_http_oxwsgi_param_t { key: args[1], skip_empty, ..Default::default() }) };
    let mut value = args[2];
    let mut ccv = ngx_http_compile_complex_value_t {
        cf: c.as_ptr(),
        value: &mut value,
        // SAFETY: p is the live element written above.
        complex_value: unsafe { &raw mut (*p).value },
        ..Default::default()
    };
    // SAFETY: ccv points at the live configuration, the word and the element.
    if unsafe { ngx_http_compile_complex_value(&mut ccv) } != OK {
        return Err(Failure::Logged);
    }
    Ok(())
}

//! mod_wsgi compatibility on Apache: the directives of mod_wsgi 4.9 beyond the core set,
//! and the request rules real mod_wsgi configurations rely on (application group names,
//! `%{ENV:...}`, the `mod_wsgi.*` environ keys, HEAD mapped to GET, trusted proxies).
//!
//! A directive that cannot apply to oxwsgi is accepted only when ignoring it changes
//! neither security nor what a request gets; start-up then says why in one line
//! ([`notice`]). Everything else is implemented here or refused at configtest.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::config::{Config, HandlerScript, flag, one, parse_options, with};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule};

use super::httpd::{CmdParms, DirConf, Request, process, scoreboard};
use crate::core::head::ResponseHead;
use crate::core::proxy::{self, Subnet, Trust};
use crate::core::request::{Bytes, RequestMeta};
use crate::core::response::log_exception;
use crate::core::worker::Worker;
use crate::core::{Level, LogSink, ResponseSink, SinkError, WriteFlags};
use crate::core::{interp, script};
use crate::ffi::httpd::*;

/// Remember a start-up notice (logged once, by post_config).
fn notice(text: String) {
    with(|c| c.notices.insert(text));
}

fn global_only(cmd: &CmdParms, name: &str) -> Result<(), String> {
    if cmd.server().is_virtual() {
        Err(format!("{name} cannot occur within a <VirtualHost> section: it configures the Python of every child"))
    } else {
        Ok(())
    }
}

/// The directives of this file (`cmd->info` ids); `None` for the others.
pub fn directive(cmd: &CmdParms, dc: &mut DirConf, id: u32, name: &str, args: &[String]) -> Option<Result<(), String>> {
    let r = match id {
        OXWSGI_D_RESTRICT_STDIN => global_only(cmd, name)
            .and_then(|_| flag(name, args))
            .map(|v| with(|c| c.runtime.modwsgi.restrict_stdin = v == 1)),
        OXWSGI_D_RESTRICT_STDOUT => global_only(cmd, name)
            .and_then(|_| flag(name, args))
            .map(|v| with(|c| c.runtime.modwsgi.restrict_stdout = v == 1)),
        OXWSGI_D_RESTRICT_SIGNAL => global_only(cmd, name)
            .and_then(|_| flag(name, args))
            .map(|v| with(|c| c.runtime.modwsgi.restrict_signal = v == 1)),
        OXWSGI_D_PYTHON_EGGS => global_only(cmd, name)
            .and_then(|_| one(name, args))
            .map(|v| with(|c| c.runtime.modwsgi.python_eggs = Some(PathBuf::from(v)))),
        OXWSGI_D_TRUSTED_PROXIES => trusted_proxies(cmd, dc, args),
        OXWSGI_D_TRUSTED_PROXY_HEADERS => trusted_proxy_headers(cmd, dc, args),
        OXWSGI_D_MAP_HEAD_TO_GET => one(name, args).and_then(|v| {
            let mode = match v.to_ascii_lowercase().as_str() {
                "off" => 0,
                "on" => 1,
                "auto" => 2,
                _ => return Err(format!("{name} must be On, Off or Auto, not {v:?}")),
            };
            dc.set_map_head_to_get(mode);
            Ok(())
        }),
        OXWSGI_D_ENABLE_SENDFILE => flag(name, args).map(|v| dc.set_enable_sendfile(v == 1)),
        OXWSGI_D_ERROR_OVERRIDE => flag(name, args).map(|v| {
            dc.set_error_override(v == 1);
            if v == 1 {
                notice(format!(
                    "{name} On applies to responses of daemon process groups only, as in mod_wsgi; \
                     embedded requests keep the application's error pages"
                ));
            }
        }),
        OXWSGI_D_CASE_SENSITIVITY => global_only(cmd, name).and_then(|_| flag(name, args)).map(|v| {
            if v == 0 {
                notice(format!(
                    "{name} Off is ignored: oxwsgi loads each script path once as written, and the \
                     responses are the same either way on a case-sensitive file system"
                ));
            }
        }),
        OXWSGI_D_DESTROY_INTERPRETER => global_only(cmd, name).and_then(|_| flag(name, args)).map(|v| {
            if v == 1 {
                notice(format!(
                    "{name} On: oxwsgi never finalizes Python in a child; when a child stops it runs \
                     the exit work instead (process_stopping, non-daemon threads, atexit); requests are \
                     unaffected"
                ));
            }
        }),
        OXWSGI_D_ACCEPT_MUTEX => global_only(cmd, name).and_then(|_| one(name, args)).and_then(|v| {
            const MECHS: [&str; 6] = ["default", "flock", "fcntl", "sysvsem", "posixsem", "pthread"];
            if !MECHS.contains(&v.to_ascii_lowercase().as_str()) {
                return Err(format!("{name} must be one of {}, not {v:?}", MECHS.join(", ")));
            }
            notice(format!(
                "{name} {v} is accepted and has no effect: oxwsgi's daemon processes take connections without \
                 an accept mutex (each polls the group's socket, then accepts without blocking; the kernel gives \
                 a connection to one process), so requests are served the same with any mechanism"
            ));
            Ok(())
        }),
        OXWSGI_D_SOCKET_ROTATION => global_only(cmd, name).and_then(|_| flag(name, args)).map(|v| {
            notice(format!(
                "{name} {}: oxwsgi keeps a daemon group's socket across graceful restarts while the group's \
                 definition is unchanged (what mod_wsgi does with Off) and binds a new one when it changed \
                 (as with On); requests in flight during a restart reach a daemon either way",
                if v == 1 { "On" } else { "Off" }
            ))
        }),
        OXWSGI_D_IGNORE_ACTIVITY => flag(name, args).map(|v| {
            dc.set_ignore_activity(v == 1);
            if v == 1 {
                notice(format!(
                    "{name} On applies to the inactivity-timeout of daemon process groups only, as in \
                     mod_wsgi; embedded requests are unaffected"
                ));
            }
        }),
        OXWSGI_D_PASS_APACHE_REQUEST => flag(name, args).and_then(|v| match v {
            0 => Ok(()),
            _ => Err(format!(
                "{name} On is not supported: oxwsgi does not hand the raw request_rec to applications \
                 (one kept past its request crashes the child); read what you need from the environ"
            )),
        }),
        OXWSGI_D_RESTRICT_PROCESS => {
            // As mod_wsgi: the list replaces an outer one; `%{GLOBAL}` is embedded mode; the
            // names are not checked against WSGIDaemonProcess (a group may be defined later,
            // or in another virtual host that shares this directory).
            let mut list = Vec::new();
            for a in args {
                if a.contains('\n') {
                    return Some(Err(format!("{name}: invalid process group name {a:?}")));
                }
                list.extend_from_slice(if a == "%{GLOBAL}" { b"" } else { a.as_bytes() });
                list.push(b'\n');
            }
            dc.set_restrict_process(cmd, &list);
            Ok(())
        }
        OXWSGI_D_DISPATCH_SCRIPT => dispatch_script(cmd, dc, args),
        OXWSGI_D_HANDLER_SCRIPT => handler_script(cmd, dc, args),
        OXWSGI_D_ACCESS_SCRIPT => auth_script(name, args).map(|v| dc.set_access_script(cmd, v.as_bytes())),
        OXWSGI_D_AUTH_USER_SCRIPT => auth_script(name, args).map(|v| dc.set_auth_user_script(cmd, v.as_bytes())),
        OXWSGI_D_GROUP_AUTHORITATIVE => flag(name, args).map(|_| {
            notice(format!(
                "{name} has no effect with httpd 2.4: Require wsgi-group is an authorization provider \
                 that mod_authz_core combines with the other Require lines (as with mod_wsgi on 2.4)"
            ))
        }),
        OXWSGI_D_AUTH_GROUP_SCRIPT => auth_script(name, args).map(|v| dc.set_auth_group_script(cmd, v.as_bytes())),
        OXWSGI_D_SERVER_METRICS => {
            global_only(cmd, name).and_then(|_| flag(name, args)).map(|v| with(|c| c.server_metrics = v == 1))
        }
        OXWSGI_D_VERBOSE_DEBUGGING => flag(name, args).map(|v| {
            if v == 1 {
                notice(format!("{name} On is ignored: oxwsgi logs at LogLevel debug instead"));
            }
        }),
        _ => return None,
    };
    Some(r)
}

/// Append `words` to a space-separated list already set in this context.
fn appended(old: Option<&[u8]>, words: &[&str]) -> Vec<u8> {
    let mut v = old.map(<[u8]>::to_vec).unwrap_or_default();
    for w in words {
        if !v.is_empty() {
            v.push(b' ');
        }
        v.extend_from_slice(w.as_bytes());
    }
    v
}

fn trusted_proxies(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("WSGITrustedProxies takes one or more addresses or subnets".into());
    }
    for a in args {
        Subnet::parse(a).map_err(|e| format!("WSGITrustedProxies: {e}"))?;
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = appended(dc.trusted_proxies(), &words);
    dc.set_trusted_proxies(cmd, &v);
    Ok(())
}

fn trusted_proxy_headers(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("WSGITrustedProxyHeaders takes one or more header names".into());
    }
    let mut words = Vec::new();
    for a in args {
        words.push(proxy::header_name(a).map_err(|e| format!("WSGITrustedProxyHeaders: {e}"))?);
    }
    let v = appended(dc.trusted_proxy_headers(), &words);
    dc.set_trusted_proxy_headers(cmd, &v);
    Ok(())
}

/// Apply `WSGITrustedProxyHeaders` / `WSGITrustedProxies` of the request's context.
pub fn apply_trusted_proxies(r: &Request, meta: &mut RequestMeta<'_>) {
    let dc = r.dir_conf();
    let Some(headers) = dc.trusted_proxy_headers() else { return };
    // Both lists were checked when the directives were read.
    let headers: Vec<&'static str> =
        String::from_utf8_lossy(headers).split_ascii_whitespace().filter_map(|h| proxy::header_name(h).ok()).collect();
    let proxies: Option<Vec<Subnet>> = dc
        .trusted_proxies()
        .map(|p| String::from_utf8_lossy(p).split_ascii_whitespace().filter_map(|s| Subnet::parse(s).ok()).collect());
    proxy::apply(meta, &Trust { headers: &headers, proxies: proxies.as_deref() });
}

/// A `%{ENV:name}` value as mod_wsgi looks it up: request notes, then the request's
/// environment (`SetEnv`, mod_rewrite `[E=]`), then the process environment.
fn env_value(r: &Request, name: &str) -> Option<String> {
    let key = std::ffi::CString::new(name).ok()?;
    r.note(&key)
        .or_else(|| r.subprocess_env().get(&key))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .or_else(|| std::env::var(name).ok())
}

fn env_reference(s: &str) -> Option<&str> {
    s.strip_prefix("%{ENV:")?.strip_suffix('}')
}

/// `host[:port]` as mod_wsgi names the server (the port only when not 80 or 443).
fn server_label(r: &Request) -> String {
    let host = String::from_utf8_lossy(r.server().hostname()).into_owned();
    match r.server_port() {
        80 | 443 => host,
        p => format!("{host}:{p}"),
    }
}

/// The application group a request runs in, as mod_wsgi names it: `%{RESOURCE}` (the
/// default) is `host[:port]|SCRIPT_NAME`, `%{SERVER}` is `host[:port]`, `%{GLOBAL}` is "",
/// `%{ENV:name}` the variable's value (the text itself when unset).
pub fn application_group(r: &Request, configured: Option<&str>, script_name: &[u8]) -> String {
    let resource = || format!("{}|{}", server_label(r), String::from_utf8_lossy(script_name));
    match configured {
        None | Some("%{RESOURCE}") => resource(),
        Some("%{SERVER}") => server_label(r),
        Some("%{GLOBAL}") => String::new(),
        Some(g) => env_reference(g).and_then(|n| env_value(r, n)).unwrap_or_else(|| g.to_string()),
    }
}

/// The callable's name: `%{ENV:name}` is looked up as for application groups (mod_wsgi
/// falls back to `application`).
pub fn callable(r: &Request, configured: &str) -> String {
    match env_reference(configured) {
        Some(n) => env_value(r, n).unwrap_or_else(|| "application".into()),
        None => configured.to_string(),
    }
}

/// mod_wsgi's checks before a `wsgi-script` (or, for `AcceptPathInfo`, a
/// `WSGIHandlerScript`) runs: a script reached through `AddHandler`/
/// `SetHandler` (not `WSGIScriptAlias`) needs `Options ExecCGI` in its directory, so that a
/// `.wsgi` file put where uploads land is not executed; `AcceptPathInfo Off` refuses extra
/// path. The status and the reason, when refused.
pub fn refused(r: &Request, handler_script: bool) -> Option<(u32, &'static str)> {
    let aliased = r.note(c"alias-forced-type").is_some_and(|t| t.eq_ignore_ascii_case(b"wsgi-script"));
    if !handler_script && !aliased && !r.exec_cgi_allowed() {
        return Some((HTTP_FORBIDDEN, "Options ExecCGI is off in this directory"));
    }
    if r.path_info_rejected() {
        return Some((HTTP_NOT_FOUND, "AcceptPathInfo off disallows the extra path"));
    }
    None
}

/// `WSGIMapHEADToGET` (default Auto): whether a HEAD request reaches the application as
/// GET, so that an output filter that needs the body (mod_deflate & co.) sees it.
pub fn head_as_get(r: &Request) -> bool {
    if r.method() != b"HEAD" {
        return false;
    }
    match r.dir_conf().map_head_to_get().unwrap_or(2) {
        1 => true,
        2 => r.has_content_filter(),
        _ => false,
    }
}

/// The `mod_wsgi.*` string keys mod_wsgi sets from the request (the typed ones come from
/// the core, `crate::core::modwsgi_module`).
pub fn environ_vars<'r>(
    r: &'r Request,
    script_name: Bytes<'r>,
    path_info: Bytes<'r>,
    enable_sendfile: bool,
) -> Vec<(Bytes<'r>, Bytes<'r>)> {
    // Static keys and constant values are borrowed, and the request's own values shared
    // with its metadata: no allocation for them per request.
    let k = |v: &'static [u8]| -> Bytes<'r> { Cow::Borrowed(v) };
    // Digits without the formatting machinery (two numbers per request).
    let number = |n: u64| -> Bytes<'r> { Cow::Owned(crate::core::environ::itoa(&mut [0; 20], n).to_vec()) };
    let flag = |on: bool| k(if on { b"1" } else { b"0" });
    let dc = r.dir_conf();
    let mut v = Vec::with_capacity(10);
    v.extend([
        (k(b"mod_wsgi.script_name"), script_name),
        (k(b"mod_wsgi.path_info"), path_info),
        (k(b"mod_wsgi.request_handler"), Cow::Borrowed(r.handler())),
        (k(b"mod_wsgi.handler_script"), k(b"")),
        (k(b"mod_wsgi.listener_host"), k(b"")),
        (k(b"mod_wsgi.listener_port"), number(r.connection().local_port().into())),
        (k(b"mod_wsgi.enable_sendfile"), flag(enable_sendfile)),
        (k(b"mod_wsgi.ignore_activity"), flag(dc.ignore_activity() == Some(true))),
        (k(b"mod_wsgi.request_start"), number(r.request_time().max(0) as u64)),
    ]);
    if let Some(id) = r.log_id() {
        v.push((k(b"mod_wsgi.request_id"), Cow::Borrowed(id)));
    }
    v
}

/// Whether `wsgi.file_wrapper` uses sendfile: `WSGIEnableSendfile`, On unless set Off
/// (mod_wsgi's default is Off; oxwsgi keeps sendfile, its measured default).
pub fn enable_sendfile(r: &Request) -> bool {
    r.dir_conf().enable_sendfile().unwrap_or(true)
}

/// `maximum_processes` / `threads_per_process` of the `mod_wsgi` module, from the MPM, as
/// mod_wsgi computes them.
pub fn server_limits() -> (u32, u32) {
    let threaded = process::mpm_query(AP_MPMQ_IS_THREADED).is_some_and(|v| v != AP_MPMQ_NOT_SUPPORTED as i32);
    let forked = process::mpm_query(AP_MPMQ_IS_FORKED).is_some_and(|v| v != AP_MPMQ_NOT_SUPPORTED as i32);
    let threads = if threaded { process::mpm_query(AP_MPMQ_MAX_THREADS).unwrap_or(1) } else { 1 };
    let processes = if forked {
        match process::mpm_query(AP_MPMQ_MAX_DAEMON_USED) {
            Some(n) if n > 0 => n,
            _ => process::mpm_query(AP_MPMQ_MAX_DAEMONS).unwrap_or(1),
        }
    } else {
        1
    };
    (processes.max(1) as u32, threads.max(1) as u32)
}

/// `mod_wsgi.server_metrics()`: httpd's scoreboard, in mod_wsgi's layout (times in seconds).
pub fn server_metrics(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let Some(g) = scoreboard::global() else { return Ok(py.None()) };
    const STATUS: &[u8] = b"._SRWKLDCGI";
    let secs = |us: i64| us as f64 / 1e6;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let sb = PyDict::new(py);
    sb.set_item("server_limit", g.server_limit)?;
    sb.set_item("thread_limit", g.thread_limit)?;
    sb.set_item("running_generation", g.running_generation)?;
    sb.set_item("restart_time", secs(g.restart_time))?;
    sb.set_item("current_time", now)?;
    sb.set_item("running_time", (now - secs(g.restart_time)).max(0.0) as i64)?;
    let processes = PyList::empty(py);
    for i in 0..g.server_limit {
        let p = scoreboard::process(i);
        let pd = PyDict::new(py);
        pd.set_item("process_num", i)?;
        pd.set_item("pid", p.pid)?;
        pd.set_item("generation", p.generation)?;
        pd.set_item("quiescing", p.quiescing != 0)?;
        let workers = PyList::empty(py);
        for j in 0..g.thread_limit {
            let w = scoreboard::worker(i, j);
            let wd = PyDict::new(py);
            wd.set_item("thread_num", w.thread_num)?;
            wd.set_item("generation", w.generation)?;
            let status = STATUS.get(w.status as usize).map_or('?', |&c| c as char);
            wd.set_item("status", status.to_string())?;
            wd.set_item("access_count", w.access_count)?;
            wd.set_item("bytes_served", w.bytes_served)?;
            wd.set_item("start_time", secs(w.start_time))?;
            wd.set_item("stop_time", secs(w.stop_time))?;
            wd.set_item("last_used", secs(w.last_used))?;
            wd.set_item("client", scoreboard::text(&w.client))?;
            wd.set_item("request", scoreboard::text(&w.request))?;
            wd.set_item("vhost", scoreboard::text(&w.vhost))?;
            workers.append(wd)?;
        }
        pd.set_item("workers", workers)?;
        processes.append(pd)?;
    }
    sb.set_item("processes", processes)?;
    Ok(sb.into_any().unbind())
}

/// `WSGIDispatchScript path [application-group=...]`.
fn dispatch_script(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    let name = "WSGIDispatchScript";
    let Some(path) = args.first() else { return Err(format!("{name} takes a script path")) };
    if !Path::new(path).is_file() {
        return Err(format!("{name}: script {path} does not exist"));
    }
    let mut group = None;
    for a in &args[1..] {
        match a.split_once('=') {
            Some(("process-group", _)) => {
                // mod_wsgi 4.9 refuses it too: the dispatch script always runs in Apache's child.
                return Err(format!(
                    "{name}: option process-group= is not accepted (as in mod_wsgi 4.9): the dispatch \
                     script always runs in Apache's children; its process_group() picks the request's group"
                ));
            }
            // The interpreter the script runs in (mod_wsgi's default: the main one).
            Some(("application-group", g)) => group = Some(g),
            _ => {
                return Err(format!("{name}: unexpected argument {a:?} (the only option is application-group=)"));
            }
        }
    }
    dc.set_dispatch_script(cmd, with_group(group, path).as_bytes());
    Ok(())
}

/// What a dispatch function returned: `None` keeps the setting.
fn dispatch_result(module: &Bound<'_, PyModule>, name: &str, environ: &Bound<'_, PyDict>) -> PyResult<Option<String>> {
    let Ok(f) = module.getattr(name) else { return Ok(None) };
    let r = f.call1((environ,))?;
    if r.is_none() {
        return Ok(None);
    }
    let s: String = r.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!("{name}() of a WSGIDispatchScript must return a str or None"))
    })?;
    if s.chars().any(|c| c as u32 > 0xff) {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!("{name}() returned non latin-1 characters")));
    }
    Ok(Some(s))
}

/// `WSGIRestrictProcess`: `Err` (logged by the caller, answered with 500 as mod_wsgi does)
/// when the request's context lists the groups it may select and `group` (`""` for
/// embedded mode) is not one of them.
pub fn restrict_process(r: &Request, group: &str) -> Result<(), String> {
    let Some(list) = r.dir_conf().restrict_process() else { return Ok(()) };
    if list.split_inclusive(|&b| b == b'\n').any(|g| g.strip_suffix(b"\n") == Some(group.as_bytes())) {
        return Ok(());
    }
    let shown = if group.is_empty() { "%{GLOBAL}" } else { group };
    Err(format!(
        "process group {shown:?} cannot be selected here: it is not one of the groups WSGIRestrictProcess \
         allows for this location"
    ))
}

/// As mod_wsgi: a daemon group defined in a virtual host serves only requests of that
/// virtual host or of one with the same `ServerName`; a group defined at global scope
/// serves every request. `Err` (logged by the caller, answered with 500) otherwise.
pub fn group_reachable(r: &Request, g: &super::daemon_conf::DaemonGroup) -> Result<(), String> {
    let Some((key, host)) = &g.vhost else { return Ok(()) };
    let server = r.server();
    if *key == super::config::server_key(server) || host.as_deref().map(str::as_bytes) == Some(server.hostname()) {
        return Ok(());
    }
    Err(format!(
        "daemon process group {:?} cannot be selected here: it is defined in another virtual host ({})",
        g.name,
        host.as_deref().unwrap_or("?")
    ))
}

/// What `WSGIDispatchScript` decided for a request.
pub enum Dispatched {
    /// No dispatch script, or its `process_group()` kept the configured group.
    Keep,
    /// `process_group()` chose this group (unresolved: `%{GLOBAL}`, `%{ENV:...}` or a name).
    Group(String),
    /// The script failed or returned a bad value (logged): the request gets 500.
    Failed,
}

/// `WSGIDispatchScript`: its `process_group(environ)`, `application_group(environ)` and
/// `callable_object(environ)`, where defined, choose for this request (a returned None
/// keeps the configured value). As in mod_wsgi, the script runs in Apache's child before
/// the request goes to a daemon group, so the group it returns is where the request runs.
pub fn dispatch(py: Python<'_>, r: &Request, w: &Worker, meta: &mut RequestMeta<'_>, log: &dyn LogSink) -> Dispatched {
    let Some(stored) = r.dir_conf().dispatch_script() else { return Dispatched::Keep };
    let (script_group, path) = script_and_group(stored);
    let path = Path::new(OsStr::from_bytes(path));
    let context = path.display().to_string();
    // The script runs in its own application group's interpreter (the main one unless
    // `application-group=` names another), whichever group it picks for the request.
    let name = script_interpreter(r, script_group);
    let ran = interp::get_or_create(py, &name).and_then(|i| {
        i.with(py, |py| match dispatch_in(py, r, w, path, meta) {
            Ok(d) => d,
            Err(e) => {
                log_exception(py, log, &context, "WSGIDispatchScript failed", &e);
                Dispatched::Failed
            }
        })
    });
    ran.unwrap_or_else(|e| {
        log.log(Level::Error, &format!("{context}: WSGIDispatchScript: interpreter {name:?}: {e}"));
        Dispatched::Failed
    })
}

fn dispatch_in(
    py: Python<'_>,
    r: &Request,
    w: &Worker,
    path: &Path,
    meta: &mut RequestMeta<'_>,
) -> PyResult<Dispatched> {
    let module = script::module(py, path, meta.app.script_reloading)?;
    let environ = w.environ(py, meta)?;
    // As mod_wsgi: the dispatch script's own context, no callable yet.
    environ.set_item("mod_wsgi.process_group", "")?;
    environ.set_item("mod_wsgi.application_group", "")?;
    environ.del_item("mod_wsgi.callable_object")?;
    let group = dispatch_result(&module, "process_group", &environ)?;
    if let Some(g) = &group {
        if let Err(e) = super::daemon_conf::process_group(g) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("process_group() returned {g:?}: {e}")));
        }
    }
    if let Some(g) = dispatch_result(&module, "application_group", &environ)? {
        let g = application_group(r, Some(&g), &meta.script_name);
        meta.app.application_group = Cow::Owned(g.into_bytes());
    }
    if let Some(c) = dispatch_result(&module, "callable_object", &environ)? {
        meta.app.callable = Cow::Owned(c.into_bytes());
    }
    Ok(group.map_or(Dispatched::Keep, Dispatched::Group))
}

/// `WSGIHandlerScript name script [process-group=%{GLOBAL}] [application-group=...]
/// [pass-authorization=On|Off]`: requests whose handler is `name` (`AddHandler`,
/// `SetHandler`) run the script's `handle_request`, with `SCRIPT_FILENAME` the requested file.
fn handler_script(cmd: &CmdParms, dc: &mut DirConf, args: &[String]) -> Result<(), String> {
    let name = "WSGIHandlerScript";
    let [handler, script, options @ ..] = args else {
        return Err(format!("{name} takes a handler name and a script path"));
    };
    if handler.contains(['\t', '\n']) {
        return Err(format!("{name}: invalid handler name {handler:?}"));
    }
    if !Path::new(script).is_file() {
        return Err(format!("{name}: script {script} does not exist"));
    }
    let o = parse_options(name, options, &["process-group", "application-group", "pass-authorization"])?;
    let index = with(|c| {
        if let Some(g) = &o.application_group {
            c.application_groups.insert(g.clone());
        }
        c.handler_scripts.push(HandlerScript {
            script: PathBuf::from(script),
            process_group: o.process_group,
            application_group: o.application_group,
            pass_authorization: o.pass_authorization,
        });
        c.handler_scripts.len() - 1
    });
    let mut lines = format!("{handler}\t{index}\n").into_bytes();
    lines.extend_from_slice(dc.handler_scripts().unwrap_or(b""));
    dc.set_handler_scripts(cmd, &lines);
    Ok(())
}

/// The `WSGIHandlerScript` for the request's handler name, if it is one.
pub fn handler_script_for<'c>(r: &Request, config: &'c Config) -> Option<&'c HandlerScript> {
    let handler = r.handler();
    let lines = r.dir_conf().handler_scripts()?;
    let index = lines.split(|&b| b == b'\n').find_map(|line| {
        let (name, index) = line.split_at(line.iter().position(|&b| b == b'\t')?);
        (name == handler).then(|| std::str::from_utf8(&index[1..]).ok()?.parse::<usize>().ok())?
    })?;
    config.handler_scripts.get(index)
}

/// `WSGIAccessScript` / `WSGIAuthUserScript`: `path [application-group=...]`. The script
/// must exist (a missing access script would otherwise deny or open by accident).
/// `WSGIAccessScript`/`WSGIAuthUserScript`/`WSGIAuthGroupScript path [application-group=]`:
/// the value to store (see [`script_and_group`]).
fn auth_script(name: &str, args: &[String]) -> Result<String, String> {
    let Some(path) = args.first() else { return Err(format!("{name} takes a script path")) };
    if !Path::new(path).is_file() {
        return Err(format!("{name}: script {path} does not exist"));
    }
    let o = parse_options(name, &args[1..], &["application-group"])?;
    Ok(with_group(o.application_group.as_deref(), path))
}

/// A script directive's value as stored in the directory configuration: the application
/// group (mod_wsgi's default for these scripts: `%{GLOBAL}`, the main interpreter), a
/// newline (no configuration argument holds one), the path. One string, so that httpd's
/// merge keeps a script and its group together.
fn with_group(group: Option<&str>, path: &str) -> String {
    format!("{}\n{path}", group.unwrap_or("%{GLOBAL}"))
}

/// The (application group, path) of a stored script value (see [`with_group`]).
pub fn script_and_group(v: &[u8]) -> (&str, &[u8]) {
    match v.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&v[..i]).unwrap_or("%{GLOBAL}"), &v[i + 1..]),
        None => ("%{GLOBAL}", v),
    }
}

/// The interpreter a request's access, auth or dispatch script runs in: its
/// `application-group=`, named as for applications (`%{GLOBAL}` the main interpreter).
pub fn script_interpreter(r: &Request, group: &str) -> String {
    application_group(r, Some(group), r.uri())
}

/// `WSGIErrorOverride On` for a request proxied to a daemon group: an error status (4xx,
/// 5xx) from the application is not sent; its body is discarded and the handler returns
/// the status, so httpd answers with its own error page (`ErrorDocument`), as mod_wsgi
/// does. Transparent when the directive is not On for the request.
pub struct ErrorOverride<'a> {
    inner: &'a mut dyn ResponseSink,
    on: bool,
    /// The application's error status, once its response was overridden.
    status: Option<u16>,
}

pub fn error_override<'a>(r: &Request, inner: &'a mut dyn ResponseSink) -> ErrorOverride<'a> {
    ErrorOverride { inner, on: r.dir_conf().error_override() == Some(true), status: None }
}

impl ErrorOverride<'_> {
    /// The error status to hand to httpd, when the application's response was overridden.
    pub fn overridden(&self) -> Option<u16> {
        self.status
    }
}

impl ResponseSink for ErrorOverride<'_> {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        if self.on && head.status >= 400 {
            self.status = Some(head.status);
            return Ok(());
        }
        self.inner.send_head(head)
    }
    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        if self.status.is_some() { Ok(()) } else { self.inner.write(data, flags) }
    }
    fn may_block(&self, len: usize, flags: WriteFlags) -> bool {
        self.status.is_none() && self.inner.may_block(len, flags)
    }
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        if self.status.is_some() { Ok(true) } else { self.inner.send_file(fd, offset, len, flags) }
    }
    fn abort(&mut self) {
        if self.status.is_none() {
            self.inner.abort()
        }
    }
}

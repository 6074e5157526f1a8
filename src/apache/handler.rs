//! Serving one request: `translate_name` for WSGIScriptAlias, then the content handler
//! that builds the environ from `request_rec` and runs the application.

use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::sync::Arc;

use oxwsgi_checks::msgid;
use pyo3::intern;
use pyo3::prelude::*;

use super::config::Alias;
use super::entry::{WORKER, Worker};
use super::io::{ApacheBody, ApacheSink, RequestLog};
use crate::core::environ::EnvironBuilder;
use crate::core::response::{Exchange, Outcome, RequestParts, log_exception};
use crate::core::{Level, LogSink, script};
use crate::ffi::httpd::*;
use crate::ffi::python;

/// Bytes of a C string (empty for NULL).
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string that outlives the returned slice.
unsafe fn bytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        return b"";
    }
    // SAFETY: p is non-null and NUL-terminated, and outlives 'a (caller's contract).
    unsafe { CStr::from_ptr(p) }.to_bytes()
}

/// Does `uri` fall under the alias prefix (whole path segments only)?
fn prefix_matches(prefix: &str, uri: &[u8]) -> bool {
    let p = prefix.as_bytes();
    uri.starts_with(p) && (uri.len() == p.len() || uri[p.len()] == b'/')
}

/// The note that tells the handler which alias matched: "<server key>:<index>".
const ALIAS_NOTE: &CStr = c"oxwsgi-alias";

/// WSGIScriptAlias / WSGIScriptAliasMatch: map the URL onto the script, like mod_alias's
/// ScriptAlias; httpd's directory walk then splits off PATH_INFO.
///
/// # Safety
/// `r` must be the live request of the calling hook.
pub unsafe fn translate_name(r: *mut request_rec) -> c_int {
    let Some(w) = WORKER.get() else { return DECLINED as c_int };
    if w.config.aliases.is_empty() {
        return DECLINED as c_int;
    }
    // SAFETY: r is live (caller).
    let (uri_ptr, server) = unsafe { ((*r).uri, (*r).server) };
    // SAFETY: r->uri is a NUL-terminated string in the request pool.
    let uri = unsafe { bytes(uri_ptr) };
    if uri.first() != Some(&b'/') {
        return DECLINED as c_int;
    }
    let key = super::config::server_key(server);
    let list = w.config.aliases.get(&key).or_else(|| w.config.aliases.get(&0));
    let Some(list) = list else { return DECLINED as c_int };
    for (i, alias) in list.iter().enumerate() {
        // SAFETY: r is live; results are allocated in its pool.
        let filename = unsafe { map_alias(r, alias, uri_ptr, uri) };
        if let Some(filename) = filename {
            let note = format!("{key}:{i}\0");
            // SAFETY: r is live; strings are copied into the request pool.
            unsafe {
                (*r).filename = filename;
                (*r).handler = c"wsgi-script".as_ptr();
                let pool = (*r).pool;
                apr_table_setn((*r).notes, c"alias-forced-type".as_ptr(), c"wsgi-script".as_ptr());
                apr_table_setn((*r).notes, ALIAS_NOTE.as_ptr(), apr_pstrdup(pool, note.as_ptr() as *const c_char));
            }
            return OK as c_int;
        }
    }
    DECLINED as c_int
}

/// The file name for `uri` under `alias` (target + the rest of the URI), if it matches.
///
/// # Safety
/// `r` must be live and `uri_ptr` its NUL-terminated URI (`uri` the same bytes).
unsafe fn map_alias(r: *mut request_rec, alias: &Alias, uri_ptr: *const c_char, uri: &[u8]) -> Option<*mut c_char> {
    // SAFETY: r is live (caller).
    let pool = unsafe { (*r).pool };
    let mut target;
    let rest: &[u8] = match &alias.regex {
        None => {
            if !prefix_matches(&alias.prefix, uri) {
                return None;
            }
            target = alias.target.clone().into_bytes();
            &uri[alias.prefix.len()..]
        }
        Some(re) => {
            let mut m = [ap_regmatch_t { rm_so: -1, rm_eo: -1 }; AP_MAX_REG_MATCH as usize];
            // SAFETY: the regex was compiled at configuration time and is read-only;
            // m has AP_MAX_REG_MATCH slots.
            if unsafe { ap_regexec(re.0, uri_ptr, m.len(), m.as_mut_ptr(), 0) } != 0 {
                return None;
            }
            let t = std::ffi::CString::new(alias.target.as_str()).ok()?;
            // SAFETY: substitutes $N from the match into a pool string.
            let sub = unsafe { ap_pregsub(pool, t.as_ptr(), uri_ptr, m.len(), m.as_mut_ptr()) };
            if sub.is_null() {
                return None;
            }
            // SAFETY: ap_pregsub returned a NUL-terminated pool string.
            target = unsafe { bytes(sub) }.to_vec();
            &uri[m[0].rm_eo as usize..]
        }
    };
    target.extend_from_slice(rest);
    // SAFETY: copies len bytes into the pool and NUL-terminates.
    Some(unsafe { apr_pstrmemdup(pool, target.as_ptr() as *const c_char, target.len()) })
}

/// Per-request settings: directory config, overridden by options of the matched alias.
struct Settings {
    callable: String,
    pass_authorization: bool,
    chunked_request: bool,
    script_reloading: bool,
    application_group: String,
}

/// # Safety
/// `r` must be live.
unsafe fn settings(r: *mut request_rec, w: &Worker) -> Settings {
    // SAFETY: the shim returns this module's merged dir config for r (never NULL: httpd
    // creates one per context).
    let dc = unsafe { &*oxwsgi_ap_dir_conf(r) };
    // SAFETY: notes is a live table; the value, if any, is a pool string.
    let note = unsafe { bytes(apr_table_get((*r).notes, ALIAS_NOTE.as_ptr())) };
    let alias = std::str::from_utf8(note).ok().and_then(|n| {
        let (k, i) = n.split_once(':')?;
        w.config.aliases.get(&k.parse().ok()?)?.get(i.parse::<usize>().ok()?)
    });
    // SAFETY: dir-config strings are NULL or pool strings of the configuration.
    let text = |p: *const c_char| unsafe { (!p.is_null()).then(|| String::from_utf8_lossy(bytes(p)).into_owned()) };
    Settings {
        callable: alias
            .and_then(|a| a.callable.clone())
            .or_else(|| text(dc.callable))
            .unwrap_or_else(|| "application".into()),
        pass_authorization: alias.and_then(|a| a.pass_authorization).unwrap_or(dc.pass_authorization == 1),
        chunked_request: dc.chunked_request == 1,
        script_reloading: dc.script_reloading != 0,
        application_group: alias
            .and_then(|a| a.application_group.clone())
            .or_else(|| text(dc.application_group))
            .unwrap_or_else(|| "%{GLOBAL}".into()),
    }
}

/// The content handler for `wsgi-script`.
///
/// # Safety
/// `r` must be the live request of the calling hook.
pub unsafe fn handle(r: *mut request_rec) -> c_int {
    let Some(w) = WORKER.get() else { return HTTP_INTERNAL_SERVER_ERROR as c_int };
    // SAFETY: r is live (caller).
    let server = unsafe { (*r).server };
    let log = Arc::new(RequestLog::new(r, server));
    // SAFETY: r->filename is a pool string (or NULL).
    let filename = String::from_utf8_lossy(unsafe { bytes((*r).filename) }).into_owned();
    if let Some(e) = &w.startup_error {
        let msg = format!("cannot serve: Python failed to start in this child: {e}");
        log.log(Level::Error, &msgid::line(msgid::PYTHON_START_FAILED, &filename, &msg));
        return HTTP_INTERNAL_SERVER_ERROR as c_int;
    }
    // SAFETY: finfo was filled by the directory walk.
    let filetype = unsafe { (*r).finfo.filetype };
    if filetype != APR_REG {
        let (status, why) = if filetype == APR_DIR {
            (HTTP_FORBIDDEN, "is a directory, not a WSGI script")
        } else {
            (HTTP_NOT_FOUND, "was not found (or cannot be read)")
        };
        log.log(Level::Error, &format!("oxwsgi: target WSGI script {filename} {why}"));
        return status as c_int;
    }
    // SAFETY: r is live.
    let s = unsafe { settings(r, w) };
    // SAFETY: r is live; headers_in is a live table.
    let chunked = unsafe { bytes(apr_table_get((*r).headers_in, c"Transfer-Encoding".as_ptr())) };
    if !chunked.is_empty() && !s.chunked_request {
        log.log(
            Level::Error,
            &format!("{filename}: chunked request body refused (411); set WSGIChunkedRequest On to accept it"),
        );
        return HTTP_LENGTH_REQUIRED as c_int;
    }

    python::keep_thread_state();
    let context: Arc<str> = Arc::from(filename.as_str());
    let outcome = Python::attach(|py| -> Result<Outcome, ()> {
        let app = script::application(py, Path::new(&filename), &s.callable, s.script_reloading).map_err(|e| {
            let context = format!("{}: {context}", msgid::SCRIPT_LOAD_FAILED);
            log_exception(py, &*log, &context, "failed to load the WSGI script", &e);
        })?;
        let template = w.template.as_ref().ok_or(())?;
        // SAFETY: r is live for the whole call.
        let environ = unsafe { build_environ(py, template.instantiate(py).map_err(|_| ())?, r, &s, &filename) }
            .map_err(|e| log_exception(py, &*log, &context, "failed to build the WSGI environ", &e))?;
        let parts = RequestParts {
            // SAFETY: r is live and handled on this thread until Exchange::run returns.
            body: Box::new(unsafe { ApacheBody::new(r) }),
            // SAFETY: as above.
            sink: Box::new(unsafe { ApacheSink::new(r) }),
            log: log.clone(),
            context: context.clone(),
        };
        Exchange::run(py, &app, environ, parts).map_err(|e| log_exception(py, &*log, &context, "internal error", &e))
    });
    log.expire();
    match outcome {
        Ok(Outcome::Failed) | Err(()) => HTTP_INTERNAL_SERVER_ERROR as c_int,
        Ok(Outcome::Complete | Outcome::Aborted | Outcome::ClientGone) => OK as c_int,
    }
}

/// The keys `build_environ` sets on every request (pre-sized into the template).
pub const ENVIRON_KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SERVER_ADDR",
    "DOCUMENT_ROOT",
    "SCRIPT_FILENAME",
    "wsgi.url_scheme",
    "mod_wsgi.application_group",
    "mod_wsgi.process_group",
    "mod_wsgi.callable_object",
    "mod_wsgi.script_reloading",
];

/// Fill the environ from the request (CGI variables, headers, `SetEnv` variables).
///
/// # Safety
/// `r` must be live.
unsafe fn build_environ<'py>(
    py: Python<'py>,
    env: EnvironBuilder<'py>,
    r: *mut request_rec,
    s: &Settings,
    filename: &str,
) -> PyResult<EnvironBuilder<'py>> {
    // SAFETY: every pointer read below belongs to the live request, its connection or
    // its pools; tables are iterated through their element arrays.
    unsafe {
        // Variables from SetEnv, mod_rewrite [E=], mod_ssl StdEnvVars ...: first, so that
        // the CGI variables below win.
        for (k, v) in table_entries((*r).subprocess_env) {
            env.set_dynamic(k, v)?;
        }
        let uri = bytes((*r).uri);
        let path_info = bytes((*r).path_info);
        let script_name =
            if !path_info.is_empty() && uri.ends_with(path_info) { &uri[..uri.len() - path_info.len()] } else { uri };
        env.set(intern!(py, "REQUEST_METHOD"), bytes((*r).method))?;
        env.set(intern!(py, "SCRIPT_NAME"), script_name)?;
        env.set(intern!(py, "PATH_INFO"), path_info)?;
        env.set(intern!(py, "QUERY_STRING"), bytes((*r).args))?;
        env.set(intern!(py, "REQUEST_URI"), bytes((*r).unparsed_uri))?;
        env.set(intern!(py, "SERVER_PROTOCOL"), bytes((*r).protocol))?;
        env.set(intern!(py, "SERVER_NAME"), bytes(ap_get_server_name(r)))?;
        env.set_str(intern!(py, "SERVER_PORT"), &ap_get_server_port(r).to_string())?;
        let c = (*r).connection;
        env.set(intern!(py, "REMOTE_ADDR"), bytes((*r).useragent_ip))?;
        if !(*c).client_addr.is_null() {
            env.set_str(intern!(py, "REMOTE_PORT"), &(*(*c).client_addr).port.to_string())?;
        }
        env.set(intern!(py, "SERVER_ADDR"), bytes((*c).local_ip))?;
        env.set(intern!(py, "DOCUMENT_ROOT"), bytes(ap_document_root(r)))?;
        env.set_str(intern!(py, "SCRIPT_FILENAME"), filename)?;
        let scheme = bytes(ap_run_http_scheme(r));
        let scheme = if scheme.is_empty() { b"http".as_slice() } else { scheme };
        env.set(intern!(py, "wsgi.url_scheme"), scheme)?;
        if scheme == b"https" {
            env.set_str(intern!(py, "HTTPS"), "on")?;
        }
        if !(*r).user.is_null() {
            env.set(intern!(py, "REMOTE_USER"), bytes((*r).user))?;
        }
        if !(*r).ap_auth_type.is_null() {
            env.set(intern!(py, "AUTH_TYPE"), bytes((*r).ap_auth_type))?;
        }
        for (k, v) in table_entries((*r).headers_in) {
            if k.eq_ignore_ascii_case(b"authorization") && !s.pass_authorization {
                continue;
            }
            if k.eq_ignore_ascii_case(b"proxy-authorization") {
                continue; // credentials for a proxy, never for the application
            }
            env.add_header(k, v)?;
        }
        env.set_str(
            intern!(py, "mod_wsgi.application_group"),
            if s.application_group == "%{GLOBAL}" { "" } else { &s.application_group },
        )?;
        env.set_str(intern!(py, "mod_wsgi.process_group"), "")?;
        env.set_str(intern!(py, "mod_wsgi.callable_object"), &s.callable)?;
        env.set_str(intern!(py, "mod_wsgi.script_reloading"), if s.script_reloading { "1" } else { "0" })?;
    }
    Ok(env)
}

/// The (key, value) pairs of an APR table.
///
/// # Safety
/// `t` must be a live table that is not modified while the result is used.
unsafe fn table_entries<'a>(t: *const apr_table_t) -> Vec<(&'a [u8], &'a [u8])> {
    if t.is_null() {
        return Vec::new();
    }
    // SAFETY: apr_table_elts exposes the table's array of apr_table_entry_t.
    unsafe {
        let arr = &*apr_table_elts(t);
        let elts = std::slice::from_raw_parts(arr.elts as *const apr_table_entry_t, arr.nelts as usize);
        elts.iter().filter(|e| !e.key.is_null()).map(|e| (bytes(e.key), bytes(e.val))).collect()
    }
}

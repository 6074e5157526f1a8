//! Serving one request: `translate_name` for WSGIScriptAlias, then the content handler
//! that builds the environ from `request_rec` and runs the application.

use std::borrow::Cow;
use std::ffi::{CStr, c_char, c_int};
use std::sync::Arc;

use pyo3::prelude::*;

use super::config::{self, Alias, Config};
use super::io::{ApacheBody, ApacheSink, RequestLog};
use crate::core::request::{AppSettings, Bytes, RequestMeta};
use crate::core::response::Outcome;
use crate::core::worker::{self, Channel};
use crate::core::{Level, LogSink};
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
    let Some(config) = config::child() else { return DECLINED as c_int };
    if config.aliases.is_empty() {
        return DECLINED as c_int;
    }
    // SAFETY: r is live (caller).
    let (uri_ptr, server) = unsafe { ((*r).uri, (*r).server) };
    // SAFETY: r->uri is a NUL-terminated string in the request pool.
    let uri = unsafe { bytes(uri_ptr) };
    if uri.first() != Some(&b'/') {
        return DECLINED as c_int;
    }
    let key = config::server_key(server);
    let list = config.aliases.get(&key).or_else(|| config.aliases.get(&0));
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
unsafe fn settings(r: *mut request_rec, config: &Config) -> Settings {
    // SAFETY: the shim returns this module's merged dir config for r (never NULL: httpd
    // creates one per context).
    let dc = unsafe { &*oxwsgi_ap_dir_conf(r) };
    // SAFETY: notes is a live table; the value, if any, is a pool string.
    let note = unsafe { bytes(apr_table_get((*r).notes, ALIAS_NOTE.as_ptr())) };
    let alias = std::str::from_utf8(note).ok().and_then(|n| {
        let (k, i) = n.split_once(':')?;
        config.aliases.get(&k.parse().ok()?)?.get(i.parse::<usize>().ok()?)
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
    let (Some(w), Some(config)) = (worker::get(), config::child()) else { return HTTP_INTERNAL_SERVER_ERROR as c_int };
    // SAFETY: r is live (caller).
    let server = unsafe { (*r).server };
    let log = Arc::new(RequestLog::new(r, server));
    // SAFETY: r->filename is a pool string (or NULL).
    let filename = String::from_utf8_lossy(unsafe { bytes((*r).filename) }).into_owned();
    if !w.ready(&*log, &filename) {
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
    let s = unsafe { settings(r, config) };
    // SAFETY: r is live; headers_in is a live table that nothing changes during the handler.
    let headers = unsafe { table_entries((*r).headers_in) };
    // SAFETY: r is live; the limit is read from its configuration.
    let limit = u64::try_from(unsafe { ap_get_limit_req_body(r) }).unwrap_or(0);
    let chunked = match body_framing(&headers, limit) {
        Ok(chunked) => chunked,
        Err((status, why)) => {
            log.log(Level::Error, &format!("{filename}: request refused ({status}): {why}"));
            return status as c_int;
        }
    };
    if chunked && !s.chunked_request {
        log.log(
            Level::Error,
            &format!("{filename}: chunked request body refused (411); set WSGIChunkedRequest On to accept it"),
        );
        return HTTP_LENGTH_REQUIRED as c_int;
    }
    // SAFETY: r is live for the whole handler, so the metadata may borrow its strings.
    let meta = unsafe { request_meta(r, &s, &filename) };

    python::keep_thread_state();
    let context: Arc<str> = Arc::from(filename.as_str());
    let outcome = Python::attach(|py| {
        let ch = Channel {
            // SAFETY: r is live and handled on this thread until the exchange ends.
            body: Box::new(unsafe { ApacheBody::new(r) }),
            // SAFETY: as above.
            sink: Box::new(unsafe { ApacheSink::new(r) }),
            log: log.clone(),
            context,
        };
        let mut ex = w.begin(py, &meta, ch)?;
        loop {
            if let Some(outcome) = ex.pump(py, None) {
                return Some(outcome);
            }
        }
    });
    log.expire();
    match outcome {
        Some(Outcome::Failed) | None => HTTP_INTERNAL_SERVER_ERROR as c_int,
        Some(Outcome::Complete | Outcome::Aborted | Outcome::ClientGone) => OK as c_int,
    }
}

/// How the request body is framed, checked before the application runs (as mod_wsgi does
/// through `ap_setup_client_block`): `Ok(true)` for a chunked body. A `Transfer-Encoding`
/// other than exactly one `chunked` is refused with 501 -- behind a proxy that frames the
/// body differently such a request smuggles another one; a `Content-Length` over
/// `LimitRequestBody` (`limit`, 0 for none) with 413, even when the application would not
/// read the body.
fn body_framing(headers: &[(&[u8], &[u8])], limit: u64) -> Result<bool, (u32, String)> {
    let named = |n: &'static [u8]| headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| *v);
    let codings: Vec<&[u8]> = named(b"Transfer-Encoding").collect();
    match codings.as_slice() {
        [] => {}
        [one] if one.trim_ascii().eq_ignore_ascii_case(b"chunked") => return Ok(true),
        _ => {
            let list: Vec<String> = codings.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            return Err((HTTP_NOT_IMPLEMENTED, format!("unsupported Transfer-Encoding {:?}", list.join(", "))));
        }
    }
    if let Some(cl) = named(b"Content-Length").next() {
        let n = std::str::from_utf8(cl.trim_ascii())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| (HTTP_BAD_REQUEST, format!("invalid Content-Length {:?}", String::from_utf8_lossy(cl))))?;
        if limit > 0 && n > limit {
            return Err((
                HTTP_REQUEST_ENTITY_TOO_LARGE,
                format!("Content-Length {n} is larger than the configured limit of {limit} (LimitRequestBody)"),
            ));
        }
    }
    Ok(false)
}

/// The request as the core sees it, borrowing the strings of `r`.
///
/// # Safety
/// `r` must be live, and stay live and unmodified while the result is used.
unsafe fn request_meta<'r>(r: *mut request_rec, s: &'r Settings, filename: &'r str) -> RequestMeta<'r> {
    let b = |p: *const c_char| -> Bytes<'r> {
        // SAFETY: every string read here is NULL or a pool string of the live request,
        // its connection or its server, which outlive 'r (caller).
        Cow::Borrowed(unsafe { bytes(p) })
    };
    let opt = |p: *const c_char| (!p.is_null()).then(|| b(p));
    // SAFETY: r, its connection and its tables are live (caller).
    unsafe {
        let c = (*r).connection;
        let uri = bytes((*r).uri);
        let path_info = bytes((*r).path_info);
        let script_name =
            if !path_info.is_empty() && uri.ends_with(path_info) { &uri[..uri.len() - path_info.len()] } else { uri };
        let scheme = bytes(ap_run_http_scheme(r));
        RequestMeta {
            method: b((*r).method),
            script_name: Cow::Borrowed(script_name),
            path_info: Cow::Borrowed(path_info),
            query: b((*r).args),
            request_uri: b((*r).unparsed_uri),
            protocol: b((*r).protocol),
            server_name: b(ap_get_server_name(r)),
            server_port: ap_get_server_port(r),
            server_addr: b((*c).local_ip),
            remote_addr: b((*r).useragent_ip),
            remote_port: (!(*c).client_addr.is_null()).then(|| (*(*c).client_addr).port),
            tls: scheme == b"https",
            headers: table_entries((*r).headers_in)
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
                .collect(),
            content_length: None,
            pass_authorization: s.pass_authorization,
            // SetEnv, mod_rewrite [E=], mod_ssl StdEnvVars ...
            server_vars: table_entries((*r).subprocess_env)
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
                .collect(),
            params: Vec::new(),
            document_root: Some(b(ap_document_root(r))),
            remote_user: opt((*r).user),
            auth_type: opt((*r).ap_auth_type),
            app: AppSettings {
                script: Cow::Borrowed(filename.as_bytes()),
                callable: Cow::Borrowed(s.callable.as_bytes()),
                application_group: Cow::Borrowed(s.application_group.as_bytes()),
                process_group: Cow::Borrowed(b""),
                script_reloading: s.script_reloading,
            },
        }
    }
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

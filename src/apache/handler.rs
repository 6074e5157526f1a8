//! Serving one request: `translate_name` for WSGIScriptAlias, then the content handler
//! that builds the environ from `request_rec` and runs the application.
//!
//! Safe code over the wrappers of [`super::httpd`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_int};
use std::rc::Rc;
use std::sync::Arc;

use pyo3::prelude::*;

use super::compat;
use super::config::{self, Alias, Config};
use super::daemon_conf::{DaemonGroup, ProcessGroup, process_group};
use super::httpd::{Matches, Request, RequestHandle, regsub};
use super::io::{ApacheBody, ApacheSink, RequestLog};
use crate::core::head::ResponseHead;
use crate::core::request::{AppSettings, Bytes, RequestMeta};
use crate::core::response::Outcome;
use crate::core::worker::{self, Channel};
use crate::core::{Level, LogSink, ResponseSink, SinkError, WriteFlags};
use crate::daemon::client::{self, ProxyError};
use crate::ffi::httpd::{
    APR_DIR, APR_REG, DECLINED, HTTP_BAD_GATEWAY, HTTP_BAD_REQUEST, HTTP_FORBIDDEN, HTTP_GATEWAY_TIME_OUT,
    HTTP_INTERNAL_SERVER_ERROR, HTTP_LENGTH_REQUIRED, HTTP_NOT_FOUND, HTTP_NOT_IMPLEMENTED,
    HTTP_REQUEST_ENTITY_TOO_LARGE, HTTP_SERVICE_UNAVAILABLE, OK, ap_regmatch_t,
};
use crate::ffi::python;

/// How many bytes of `uri` the alias URL path matches, as mod_alias (and mod_wsgi) match:
/// whole path segments, a run of slashes in the alias matching a run of one or more
/// slashes in the URI. `None` if it does not match.
fn alias_matches(alias: &[u8], uri: &[u8]) -> Option<usize> {
    let (mut a, mut u) = (0, 0);
    while a < alias.len() {
        if alias[a] == b'/' {
            if uri.get(u) != Some(&b'/') {
                return None;
            }
            while alias.get(a) == Some(&b'/') {
                a += 1;
            }
            while uri.get(u) == Some(&b'/') {
                u += 1;
            }
        } else {
            if uri.get(u) != Some(&alias[a]) {
                return None;
            }
            a += 1;
            u += 1;
        }
    }
    let whole_segment = alias.last() == Some(&b'/') || u == uri.len() || uri[u] == b'/';
    (u > 0 && whole_segment).then_some(u)
}

/// The note that tells the handler which alias matched: "<server key>:<index>".
const ALIAS_NOTE: &CStr = c"oxwsgi-alias";

/// WSGIScriptAlias / WSGIScriptAliasMatch: map the URL onto the script, like mod_alias's
/// ScriptAlias; httpd's directory walk then splits off PATH_INFO.
pub fn translate_name(r: &Request) -> c_int {
    let Some(config) = config::child() else { return DECLINED as c_int };
    if config.aliases.is_empty() {
        return DECLINED as c_int;
    }
    let uri = r.uri();
    if uri.first() != Some(&b'/') {
        return DECLINED as c_int;
    }
    // A virtual host's own aliases first, then the main server's, which every virtual host
    // inherits (mod_wsgi merges the server configurations the same way).
    let own = config::server_key(r.server());
    let keys: &[usize] = if own == 0 { &[0] } else { &[own, 0] };
    for &key in keys {
        let Some(list) = config.aliases.get(&key) else { continue };
        for (i, alias) in list.iter().enumerate() {
            if let Some(filename) = map_alias(r, alias) {
                r.set_filename_and_handler(&filename, c"wsgi-script");
                r.set_note(c"alias-forced-type", c"wsgi-script");
                let note = CString::new(format!("{key}:{i}")).expect("digits and a colon");
                r.set_note(ALIAS_NOTE, &note);
                return OK as c_int;
            }
        }
    }
    DECLINED as c_int
}

/// The file name for the request's URI under `alias` (target + the rest of the URI), if it
/// matches.
fn map_alias(r: &Request, alias: &Alias) -> Option<Vec<u8>> {
    let uri = r.uri();
    let mut target;
    let rest: &[u8] = match &alias.regex {
        None => {
            let n = alias_matches(alias.prefix.as_bytes(), uri)?;
            target = alias.target.clone().into_bytes();
            // `WSGIScriptAlias / app.wsgi`: the whole URI is the rest (mod_wsgi's rule).
            if alias.prefix == "/" { uri } else { &uri[n..] }
        }
        Some(re) => {
            let mut m: Matches = [ap_regmatch_t { rm_so: -1, rm_eo: -1 }; _];
            if !re.exec(r.uri_cstr(), &mut m) {
                return None;
            }
            let t = CString::new(alias.target.as_str()).ok()?;
            target = regsub(r.pool(), &t, r.uri_cstr(), &mut m)?.to_vec();
            &uri[usize::try_from(m[0].rm_eo).ok()?..]
        }
    };
    target.extend_from_slice(rest);
    Some(target)
}

/// Per-request settings: directory config, overridden by options of the matched alias.
struct Settings<'a> {
    callable: Cow<'a, str>,
    pass_authorization: bool,
    chunked_request: bool,
    script_reloading: bool,
    /// As configured (`%{RESOURCE}` & co. are expanded per request); `None`: not set.
    application_group: Option<Cow<'a, str>>,
    /// `process-group=` of the alias, else `WSGIProcessGroup` (unresolved).
    process_group: Option<Cow<'a, str>>,
}

/// Borrowed from the configuration and the request's directory configuration: nothing is
/// copied per request.
fn settings<'a>(r: &'a Request, config: &'a Config) -> Settings<'a> {
    let dc = r.dir_conf();
    let alias = r.note(ALIAS_NOTE).and_then(|n| std::str::from_utf8(n).ok()).and_then(|n| {
        let (k, i) = n.split_once(':')?;
        config.aliases.get(&k.parse().ok()?)?.get(i.parse::<usize>().ok()?)
    });
    let text = |b: Option<&'a [u8]>| b.map(String::from_utf8_lossy);
    let own = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
    Settings {
        callable: alias
            .and_then(|a| own(&a.callable))
            .or_else(|| text(dc.callable()))
            .unwrap_or(Cow::Borrowed("application")),
        pass_authorization: alias.and_then(|a| a.pass_authorization).or(dc.pass_authorization()).unwrap_or(false),
        chunked_request: dc.chunked_request().unwrap_or(false),
        script_reloading: dc.script_reloading().unwrap_or(true),
        application_group: alias.and_then(|a| own(&a.application_group)).or_else(|| text(dc.application_group())),
        process_group: alias.and_then(|a| own(&a.process_group)).or_else(|| text(dc.process_group())),
    }
}

/// The daemon group a request runs in (`None`: embedded), `%{ENV:var}` resolved.
fn daemon_group(r: &Request, v: Option<&str>) -> Result<Option<String>, String> {
    let Some(v) = v else { return Ok(None) };
    let name = match process_group(v)? {
        ProcessGroup::Embedded => return Ok(None),
        ProcessGroup::Named(n) => n.to_string(),
        ProcessGroup::Env(var) => {
            let key = CString::new(var).map_err(|_| "NUL in a variable name".to_string())?;
            match r.subprocess_env().get(&key) {
                None => return Ok(None),
                Some(v) => match String::from_utf8_lossy(v).into_owned() {
                    v if v.is_empty() || v == "%{GLOBAL}" => return Ok(None),
                    v => v,
                },
            }
        }
    };
    Ok(Some(name))
}

/// The content handler for `wsgi-script`.
pub fn handle(r: &Request) -> c_int {
    let Some(config) = config::child() else { return HTTP_INTERNAL_SERVER_ERROR as c_int };
    // SAFETY: the handle (kept by the log, body and sink) is used on this thread only, and
    // the log is expired below, before this handler returns; the body and sink are dropped
    // with the exchange, which ends inside this function.
    let handle = unsafe { RequestHandle::new(r) };
    let log = Arc::new(RequestLog::new(handle.clone()));
    let status = serve(r, config, &handle, &log);
    log.expire();
    status
}

fn serve(r: &Request, config: &Config, handle: &RequestHandle, log: &Arc<RequestLog>) -> c_int {
    let filename = String::from_utf8_lossy(r.filename());
    // A WSGIHandlerScript handles the requested file (which may not exist) itself.
    let handler_script = compat::handler_script_for(r, config);
    if let Some((status, why)) = compat::refused(r, handler_script.is_some()) {
        log.log(Level::Error, &format!("oxwsgi: {why}: {filename}"));
        return status as c_int;
    }
    let filetype = r.filetype();
    if filetype != APR_REG && handler_script.is_none() {
        let (status, why) = if filetype == APR_DIR {
            (HTTP_FORBIDDEN, "is a directory, not a WSGI script")
        } else {
            (HTTP_NOT_FOUND, "was not found (or cannot be read)")
        };
        log.log(Level::Error, &format!("oxwsgi: target WSGI script {filename} {why}"));
        return status as c_int;
    }
    let mut s = settings(r, config);
    if let Some(h) = handler_script {
        s.callable = Cow::Borrowed("handle_request");
        s.application_group = h.application_group.as_deref().map(Cow::Borrowed).or(s.application_group);
        s.pass_authorization = h.pass_authorization.unwrap_or(s.pass_authorization);
        s.process_group = h.process_group.as_deref().map(Cow::Borrowed).or(s.process_group);
    }
    let headers: Vec<(Bytes<'_>, Bytes<'_>)> =
        r.headers_in().iter().map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))).collect();
    let chunked = match body_framing(&headers, r.limit_req_body()) {
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
    // `%{ENV:...}` is resolved per request; a plain name is borrowed.
    let callable: Cow<'_, [u8]> = if s.callable.starts_with("%{") {
        Cow::Owned(compat::callable(r, &s.callable).into_bytes())
    } else {
        Cow::Borrowed(s.callable.as_bytes())
    };
    let mut meta = request_meta(r, headers, &s, &filename);
    meta.app.callable = callable;
    let enable_sendfile = compat::enable_sendfile(r);
    // Cow clones: the metadata borrows these from the request, so nothing is copied.
    let (script_name, path_info) = (meta.script_name.clone(), meta.path_info.clone());
    meta.server_vars.extend(compat::environ_vars(r, script_name, path_info, enable_sendfile));
    let handler_script_path;
    if let Some(h) = handler_script {
        handler_script_path = h.script.to_string_lossy().into_owned();
        let path = Cow::Borrowed(handler_script_path.as_bytes());
        meta.server_vars.push((Cow::Borrowed(b"mod_wsgi.handler_script"), path.clone()));
        // The handler script runs; SCRIPT_FILENAME stays the requested file.
        meta.params.push((Cow::Borrowed(b"SCRIPT_FILENAME"), Cow::Borrowed(r.filename())));
        meta.app.script = path;
    }
    compat::apply_trusted_proxies(r, &mut meta);
    let app_group = application_group(r, s.application_group.as_deref(), &meta.script_name);
    meta.app.application_group = Cow::Borrowed(&app_group);
    if compat::head_as_get(r) {
        meta.method = Cow::Borrowed(b"GET");
    }
    // As mod_wsgi: the dispatch script (in this child) may choose the group, then
    // WSGIRestrictProcess checks the choice, then the request goes where it says.
    let mut chosen = s.process_group.clone();
    if r.dir_conf().dispatch_script().is_some() {
        let Some(w) = worker::get() else {
            log.log(
                Level::Error,
                &format!("{filename}: WSGIDispatchScript needs Python in Apache's children (WSGIRestrictEmbedded Off)"),
            );
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        };
        if !w.ready(&**log, &filename) {
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        }
        python::keep_thread_state();
        match Python::attach(|py| compat::dispatch(py, r, w, &mut meta, &**log)) {
            compat::Dispatched::Keep => {}
            compat::Dispatched::Group(g) => chosen = Some(Cow::Owned(g)),
            compat::Dispatched::Failed => return HTTP_INTERNAL_SERVER_ERROR as c_int,
        }
    }
    let group = match daemon_group(r, chosen.as_deref())
        .and_then(|g| compat::restrict_process(r, g.as_deref().unwrap_or("")).map(|_| g))
    {
        Ok(g) => g,
        Err(e) => {
            log.log(Level::Error, &format!("{filename}: {e}"));
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        }
    };
    if let Some(name) = group {
        let Some(g) = config.group(&name) else {
            log.log(Level::Error, &format!("{filename}: no WSGI daemon process called {name:?} has been configured"));
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        };
        if let Err(e) = compat::group_reachable(r, g) {
            log.log(Level::Error, &format!("{filename}: {e}"));
            return HTTP_INTERNAL_SERVER_ERROR as c_int;
        }
        meta.app.process_group = Cow::Borrowed(g.name.as_bytes());
        // As mod_wsgi: when the request was queued for the daemon (microseconds).
        let queued = crate::core::environ::itoa(&mut [0; 20], client::now_us()).to_vec();
        meta.server_vars.push((Cow::Borrowed(b"mod_wsgi.queue_start"), Cow::Owned(queued)));
        return to_daemon(g, &meta, handle, &**log, &filename, r);
    }
    if config.restrict_embedded {
        log.log(
            Level::Error,
            &format!(
                "{filename}: embedded mode is disabled (WSGIRestrictEmbedded On): give the application a \
                 process group (WSGIProcessGroup or process-group=)"
            ),
        );
        return HTTP_INTERNAL_SERVER_ERROR as c_int;
    }
    let Some(w) = worker::get() else { return HTTP_INTERNAL_SERVER_ERROR as c_int };
    if !w.ready(&**log, &filename) {
        return HTTP_INTERNAL_SERVER_ERROR as c_int;
    }

    python::keep_thread_state();
    let context = context_for(&filename);
    // The application group's interpreter (docs/interpreters.md); the GIL is taken in it.
    let Some(interp) = w.interpreter(&meta, &**log, &filename) else { return HTTP_INTERNAL_SERVER_ERROR as c_int };
    let outcome = interp.attach(|py| {
        let ch = Channel {
            body: Box::new(ApacheBody::new(handle.clone())),
            sink: Box::new(ApacheSink::new(handle.clone())),
            log: log.clone(),
            context,
        };
        // (A dispatch script ran above, in the main interpreter, as under mod_wsgi.)
        w.serve(py, &meta, ch)
    });
    let outcome = outcome.unwrap_or_else(|e| {
        log.log(Level::Error, &format!("{filename}: {e}"));
        None
    });
    match outcome {
        Some(Outcome::Failed) | None => HTTP_INTERNAL_SERVER_ERROR as c_int,
        Some(Outcome::Complete | Outcome::Aborted | Outcome::ClientGone) => OK as c_int,
    }
}

/// The log context of a request for `filename`: the thread's previous one when it names
/// the same script (no allocation per request).
fn context_for(filename: &str) -> Arc<str> {
    thread_local! {
        static LAST: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
    }
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        match &*l {
            Some(c) if **c == *filename => c.clone(),
            _ => {
                let c: Arc<str> = Arc::from(filename);
                *l = Some(c.clone());
                c
            }
        }
    })
}

/// The application group of a request ([`compat::application_group`]). The usual settings
/// (none, `%{RESOURCE}`, `%{SERVER}`, `%{GLOBAL}`) give the same name for every request of
/// a mount on a virtual host and port, so each thread remembers the names it made instead
/// of formatting them per request.
fn application_group(r: &Request, configured: Option<&str>, script_name: &[u8]) -> Rc<[u8]> {
    let kind = match configured {
        None | Some("%{RESOURCE}") => 0u8,
        Some("%{SERVER}") => 1,
        Some("%{GLOBAL}") => 2,
        // A literal name or %{ENV:...}: not remembered.
        Some(_) => return Rc::from(compat::application_group(r, configured, script_name).into_bytes()),
    };
    type Made = (usize, u16, u8, Vec<u8>, Rc<[u8]>);
    thread_local! {
        static MADE: RefCell<Vec<Made>> = const { RefCell::new(Vec::new()) };
    }
    let (server, port) = (config::server_key(r.server()), r.server_port());
    let hit = MADE.with(|m| {
        let m = m.borrow();
        m.iter().find(|e| e.0 == server && e.1 == port && e.2 == kind && e.3 == script_name).map(|e| e.4.clone())
    });
    if let Some(name) = hit {
        return name;
    }
    let name: Rc<[u8]> = Rc::from(compat::application_group(r, configured, script_name).into_bytes());
    MADE.with(|m| {
        let mut m = m.borrow_mut();
        // Bounded: a server has a few mounts; a client choosing the port cannot grow it.
        if m.len() < 64 {
            m.push((server, port, kind, script_name.to_vec(), name.clone()));
        }
    });
    name
}

/// The response sink of a proxied request, remembering whether the head went out (after
/// that an error can only abort the response) and whether it was aborted (never twice).
struct Tracked {
    sink: ApacheSink,
    head_sent: bool,
    aborted: bool,
}

impl ResponseSink for Tracked {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        self.head_sent = true;
        self.sink.send_head(head)
    }
    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        self.sink.write(data, flags)
    }
    fn may_block(&self, len: usize, flags: WriteFlags) -> bool {
        self.sink.may_block(len, flags)
    }
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        self.sink.send_file(fd, offset, len, flags)
    }
    fn abort(&mut self) {
        if !self.aborted {
            self.aborted = true;
            self.sink.abort()
        }
    }
}

/// Daemon mode: forward the request to the group's socket and relay the response.
/// No Python here (the child may not even have started it: WSGIRestrictEmbedded On).
fn to_daemon(
    g: &DaemonGroup,
    meta: &RequestMeta<'_>,
    handle: &RequestHandle,
    log: &dyn LogSink,
    filename: &str,
    r: &Request,
) -> c_int {
    let t = g.client_timeouts();
    let mut body = ApacheBody::new(handle.clone());
    let mut sink = Tracked { sink: ApacheSink::new(handle.clone()), head_sent: false, aborted: false };
    // WSGIErrorOverride On: an error status becomes httpd's own error page.
    let mut overriding = compat::error_override(r, &mut sink);
    // `forward` sends the request again when the daemon that took it restarts for a
    // changed script (script reloading).
    let result = client::forward(&g.socket, meta, &mut body, &mut overriding, &t);
    if let (Some(code), Ok(_)) = (overriding.overridden(), &result) {
        return c_int::from(code);
    }
    let name = &g.name;
    let (status, what) = match result {
        Ok(Outcome::Failed) => (HTTP_INTERNAL_SERVER_ERROR, None),
        // Aborted: `proxy` aborted the sink (the client sees a truncated response).
        Ok(Outcome::Complete | Outcome::Aborted | Outcome::ClientGone) => (OK, None),
        Err(ProxyError::Connect(e)) => {
            (HTTP_SERVICE_UNAVAILABLE, Some(format!("cannot connect to daemon process group {name:?}: {e}")))
        }
        Err(ProxyError::Queue) => (
            HTTP_SERVICE_UNAVAILABLE,
            Some(format!("queue-timeout: no daemon process of group {name:?} took the request in time")),
        ),
        Err(ProxyError::Timeout) => {
            (HTTP_GATEWAY_TIME_OUT, Some(format!("timeout waiting for daemon process group {name:?}")))
        }
        Err(ProxyError::DaemonGone(e)) => {
            (HTTP_BAD_GATEWAY, Some(format!("the daemon process of group {name:?} went away during the request: {e}")))
        }
        Err(ProxyError::Status(code)) => (u32::from(code), None),
        Err(ProxyError::Restarting) => (
            HTTP_SERVICE_UNAVAILABLE,
            Some(format!("the daemon processes of group {name:?} kept restarting (script reloading)")),
        ),
        Err(ProxyError::Protocol(e)) => {
            (HTTP_INTERNAL_SERVER_ERROR, Some(format!("protocol error with daemon process group {name:?}: {e}")))
        }
    };
    if let Some(what) = what {
        log.log(Level::Error, &format!("{filename}: {what}"));
    }
    if status != OK && sink.head_sent {
        sink.abort(); // the head is out: the client sees a truncated response
        return OK as c_int;
    }
    status as c_int
}

/// How the request body is framed, checked before the application runs (as mod_wsgi does
/// through `ap_setup_client_block`): `Ok(true)` for a chunked body. A `Transfer-Encoding`
/// other than exactly one `chunked` is refused with 501 -- behind a proxy that frames the
/// body differently such a request smuggles another one; a `Content-Length` over
/// `LimitRequestBody` (`limit`, 0 for none) with 413, even when the application would not
/// read the body.
fn body_framing(headers: &[(Bytes<'_>, Bytes<'_>)], limit: u64) -> Result<bool, (u32, String)> {
    let named = |n: &'static [u8]| headers.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| &**v);
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

/// `f` of the request as an auth script sees it (mod_wsgi's auth environ): the CGI
/// variables and headers, without `Authorization`.
pub(super) fn with_auth_meta<R>(r: &Request, f: impl FnOnce(&RequestMeta<'_>) -> R) -> R {
    let s = Settings {
        callable: Cow::Borrowed(""),
        pass_authorization: false,
        chunked_request: false,
        script_reloading: true,
        application_group: None,
        process_group: None,
    };
    let filename = String::from_utf8_lossy(r.filename()).into_owned();
    let headers = r.headers_in().iter().map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))).collect();
    let meta = request_meta(r, headers, &s, &filename);
    f(&meta)
}

/// The request as the core sees it, borrowing the strings of `r`.
fn request_meta<'r>(
    r: &'r Request,
    headers: Vec<(Bytes<'r>, Bytes<'r>)>,
    s: &'r Settings<'_>,
    filename: &'r str,
) -> RequestMeta<'r> {
    let b = |v: &'r [u8]| -> Bytes<'r> { Cow::Borrowed(v) };
    let env = r.subprocess_env();
    // Room for the mod_wsgi.* keys the handler adds (no regrowth per request).
    let mut server_vars = Vec::with_capacity(env.iter().count() + 12);
    server_vars.extend(env.iter().map(|(k, v)| (b(k), b(v))));
    let uri = r.uri();
    let path_info = r.path_info();
    let script_name =
        if !path_info.is_empty() && uri.ends_with(path_info) { &uri[..uri.len() - path_info.len()] } else { uri };
    let c = r.connection();
    RequestMeta {
        method: b(r.method()),
        script_name: b(script_name),
        path_info: b(path_info),
        query: b(r.args()),
        request_uri: b(r.unparsed_uri()),
        protocol: b(r.protocol()),
        server_name: b(r.server_name()),
        server_port: r.server_port(),
        server_addr: b(c.local_ip()),
        remote_addr: b(r.useragent_ip()),
        remote_port: c.client_port(),
        tls: r.http_scheme() == b"https",
        headers,
        content_length: None,
        pass_authorization: s.pass_authorization,
        // SetEnv, mod_rewrite [E=], mod_ssl StdEnvVars ...
        server_vars,
        params: Vec::new(),
        document_root: Some(b(r.document_root())),
        remote_user: r.user().map(b),
        auth_type: r.auth_type().map(b),
        app: AppSettings {
            script: b(filename.as_bytes()),
            callable: b(s.callable.as_bytes()),
            application_group: b(b""),
            process_group: b(b""),
            script_reloading: s.script_reloading,
        },
    }
}

//! mod_wsgi's access and authentication scripts: `WSGIAccessScript` (`allow_access(environ,
//! host)` in the access phase) and `WSGIAuthUserScript` (`check_password(environ, user,
//! password)` / `get_realm_hash(environ, user, realm)` behind `AuthBasicProvider wsgi` /
//! `AuthDigestProvider wsgi`) and `WSGIAuthGroupScript` (`groups_for_user(environ, user)`
//! behind `Require wsgi-group`).
//!
//! Everything that goes wrong -- no worker, a script that cannot be loaded, a missing
//! function, an exception, a result of the wrong type -- denies (access) or is an
//! authentication error (500): these scripts guard URLs, so they fail closed.

use std::ffi::{OsStr, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyModule};

use super::compat;
use super::handler::with_auth_meta;
use super::httpd::Request;
use super::io::ServerLog;
use crate::core::errors::ErrorStream;
use crate::core::response::log_exception;
use crate::core::{Level, LogSink, interp, script, worker};
use crate::ffi::httpd::{
    OXWSGI_AUTH_DECLINED, OXWSGI_AUTH_DENIED, OXWSGI_AUTH_ERROR, OXWSGI_AUTH_GRANTED, OXWSGI_AUTH_USER_NOT_FOUND,
};
use crate::ffi::python;

/// A decision, or why there is none (logged by the caller).
type Decision = Result<c_int, String>;

/// Run `f` with the script's module and the request's auth environ, in the script's
/// application group's interpreter (`application-group=`, the main one by default).
fn run(
    r: &Request,
    stored: &[u8],
    failed: c_int,
    f: impl FnOnce(Python<'_>, &Bound<'_, PyModule>, &Bound<'_, PyDict>) -> PyResult<Decision>,
) -> c_int {
    let (group, script) = compat::script_and_group(stored);
    let path = Path::new(OsStr::from_bytes(script));
    let log: Arc<dyn LogSink> = Arc::new(ServerLog::new(r.server_static()));
    let context = path.display().to_string();
    let Some(w) = worker::get() else {
        log.log(Level::Error, &format!("{context}: Python is not running in this process"));
        return failed;
    };
    if !w.ready(&*log, &context) {
        return failed;
    }
    let reload = r.dir_conf().script_reloading().unwrap_or(true);
    let name = compat::script_interpreter(r, group);
    python::keep_thread_state();
    let ran = Python::attach(|py| {
        interp::get_or_create(py, &name)?.with(py, |py| {
            let result = (|| {
                let module = script::module(py, path, reload)?;
                let environ = with_auth_meta(r, |m| w.environ(py, m))?;
                environ.set_item("wsgi.errors", Py::new(py, ErrorStream::new(log.clone(), Level::Error))?)?;
                f(py, &module, &environ)
            })();
            match result {
                Ok(Ok(rc)) => rc,
                Ok(Err(why)) => {
                    log.log(Level::Error, &format!("{context}: {why}"));
                    failed
                }
                Err(e) => {
                    log_exception(py, &*log, &context, "auth script failed", &e);
                    failed
                }
            }
        })
    });
    ran.unwrap_or_else(|e| {
        log.log(Level::Error, &format!("{context}: interpreter {name:?}: {e}"));
        failed
    })
}

fn function<'py>(module: &Bound<'py, PyModule>, name: &str) -> Result<Bound<'py, PyAny>, String> {
    module.getattr(name).map_err(|_| format!("the script defines no {name}()"))
}

/// `WSGIAccessScript`: True allows, False denies, None leaves the decision to others.
pub fn allow_access(r: &Request, host: &[u8]) -> c_int {
    let Some(script) = r.dir_conf().access_script() else { return OXWSGI_AUTH_DECLINED as c_int };
    let host: String = host.iter().map(|&b| b as char).collect();
    run(r, script, OXWSGI_AUTH_DENIED as c_int, |_py, module, environ| {
        let f = match function(module, "allow_access") {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = f.call1((environ, host))?;
        Ok(if result.is_none() {
            Ok(OXWSGI_AUTH_DECLINED as c_int)
        } else if let Ok(b) = result.cast::<PyBool>() {
            Ok(if b.is_true() { OXWSGI_AUTH_GRANTED } else { OXWSGI_AUTH_DENIED } as c_int)
        } else {
            Err("allow_access() must return True, False or None".to_string())
        })
    })
}

/// `WSGIAuthUserScript` for Basic: True granted, False denied, None no such user.
pub fn check_password(r: &Request, user: &str, password: &str) -> c_int {
    let Some(script) = r.dir_conf().auth_user_script() else {
        r.log(Level::Error, "oxwsgi: AuthBasicProvider wsgi without a WSGIAuthUserScript for this location");
        return OXWSGI_AUTH_ERROR as c_int;
    };
    run(r, script, OXWSGI_AUTH_ERROR as c_int, |_py, module, environ| {
        let f = match function(module, "check_password") {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = f.call1((environ, user, password))?;
        Ok(if result.is_none() {
            Ok(OXWSGI_AUTH_USER_NOT_FOUND as c_int)
        } else if let Ok(b) = result.cast::<PyBool>() {
            Ok(if b.is_true() { OXWSGI_AUTH_GRANTED } else { OXWSGI_AUTH_DENIED } as c_int)
        } else {
            Err("check_password() must return True, False or None".to_string())
        })
    })
}

/// `WSGIAuthUserScript` for Digest: the hex MD5 of `user:realm:password`, or None.
pub fn get_realm_hash(r: &Request, user: &str, realm: &str) -> (c_int, Option<String>) {
    let Some(script) = r.dir_conf().auth_user_script() else {
        r.log(Level::Error, "oxwsgi: AuthDigestProvider wsgi without a WSGIAuthUserScript for this location");
        return (OXWSGI_AUTH_ERROR as c_int, None);
    };
    let mut hash = None;
    let rc = run(r, script, OXWSGI_AUTH_ERROR as c_int, |_py, module, environ| {
        let f = match function(module, "get_realm_hash") {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = f.call1((environ, user, realm))?;
        if result.is_none() {
            return Ok(Ok(OXWSGI_AUTH_USER_NOT_FOUND as c_int));
        }
        match result.extract::<String>() {
            Ok(h) => {
                hash = Some(h);
                Ok(Ok(OXWSGI_AUTH_GRANTED as c_int))
            }
            Err(_) => Ok(Err("get_realm_hash() must return a str or None".to_string())),
        }
    });
    (rc, hash)
}

/// The group names of a `Require wsgi-group` line (words, optionally quoted).
fn required_groups(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = args.trim_start();
    while let Some(c) = rest.chars().next() {
        let (word, tail) = if c == '"' || c == '\'' {
            match rest[1..].find(c) {
                Some(end) => (&rest[1..end + 1], &rest[end + 2..]),
                None => (&rest[1..], ""),
            }
        } else {
            rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()))
        };
        out.push(word.to_string());
        rest = tail.trim_start();
    }
    out
}

/// `Require wsgi-group g1 g2`: granted when `groups_for_user(environ, user)` names one of
/// them; anything else (no script, an error, a result that is not an iterable of str or
/// bytes) denies.
pub fn user_in_groups(r: &Request, user: &str, require_args: &str) -> c_int {
    let Some(script) = r.dir_conf().auth_group_script() else {
        r.log(Level::Error, "oxwsgi: Require wsgi-group without a WSGIAuthGroupScript for this location");
        return OXWSGI_AUTH_DENIED as c_int;
    };
    let wanted = required_groups(require_args);
    run(r, script, OXWSGI_AUTH_DENIED as c_int, |_py, module, environ| {
        let f = match function(module, "groups_for_user") {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let result = f.call1((environ, user))?;
        let mut granted = false;
        for item in result.try_iter()? {
            let item = item?;
            let name = match item.extract::<String>() {
                Ok(s) => s,
                Err(_) => match item.extract::<Vec<u8>>() {
                    Ok(b) if item.is_instance_of::<pyo3::types::PyBytes>() => b.iter().map(|&c| c as char).collect(),
                    _ => return Ok(Err("groups_for_user() must return an iterable of str or bytes".into())),
                },
            };
            granted |= wanted.contains(&name);
        }
        Ok(Ok(if granted { OXWSGI_AUTH_GRANTED } else { OXWSGI_AUTH_DENIED } as c_int))
    })
}

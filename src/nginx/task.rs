//! The thread-pool side of a request: build the environ, call the application, and pump
//! its body in batches. Runs only on nginx thread-pool threads and touches only owned
//! data (`RequestData`, `NgxBody`, the shared batch), never an nginx structure.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use oxwsgi_checks::msgid;
use pyo3::intern;
use pyo3::prelude::*;

use super::entry::WORKER;
use super::io::{NgxBody, NgxSink, Shared};
use crate::core::environ::EnvironBuilder;
use crate::core::response::{Exchange, Outcome, RequestParts, log_exception};
use crate::core::{LogSink, script};
use crate::ffi::python;

/// The keys set on every request (pre-sized in the environ template).
pub const ALWAYS_KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_ADDR",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "SCRIPT_FILENAME",
    "wsgi.url_scheme",
];

/// Body bytes produced per task before the thread hands back to the event loop.
pub const BUDGET: u64 = 256 * 1024;

/// Everything the environ needs, copied out of the request on the event loop.
#[derive(Default)]
pub struct RequestData {
    pub method: Vec<u8>,
    pub script_name: Vec<u8>,
    pub path_info: Vec<u8>,
    pub query: Vec<u8>,
    pub request_uri: Vec<u8>,
    pub protocol: Vec<u8>,
    pub server_name: Vec<u8>,
    pub server_port: u16,
    pub server_addr: Vec<u8>,
    pub remote_addr: Vec<u8>,
    pub remote_port: u16,
    pub https: bool,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body length when the body was read (also for chunked bodies), else the header.
    pub content_length: Option<u64>,
    /// `wsgi_param` values, applied last (they override).
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub pass_authorization: bool,
}

/// What the first task needs to start the exchange.
pub struct Start {
    pub data: RequestData,
    pub body: NgxBody,
    pub script: PathBuf,
    pub callable: String,
    pub log: Arc<dyn LogSink>,
    pub context: Arc<str>,
}

#[derive(Default)]
pub struct Job {
    pub start: Option<Start>,
    pub exchange: Option<Exchange>,
}

/// The part of a request the pool thread uses; `task->ctx` points at it.
#[derive(Default)]
pub struct TaskSide {
    pub job: Mutex<Job>,
    pub shared: Arc<Shared>,
}

/// One task: start the exchange if needed, then produce up to [`BUDGET`] bytes.
pub fn run(ts: &TaskSide) {
    python::keep_thread_state();
    let mut job = ts.job.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = Python::attach(|py| {
        if let Some(start) = job.start.take() {
            match begin(py, start, &ts.shared) {
                Some(ex) => job.exchange = Some(ex),
                None => return Some(Outcome::Failed),
            }
        }
        let Some(ex) = job.exchange.as_mut() else { return Some(Outcome::Failed) };
        let r = ex.pump(py, Some(BUDGET));
        if r.is_some() {
            // Python objects are released here, with the GIL held.
            job.exchange = None;
        }
        r
    });
    if let Some(o) = outcome {
        ts.shared.lock().outcome = Some(o);
    }
}

fn begin(py: Python<'_>, start: Start, shared: &Arc<Shared>) -> Option<Exchange> {
    let Start { data, body, script, callable, log, context } = start;
    let w = WORKER.get()?;
    let template = w.template.as_ref()?;
    let app = match script::application(py, &script, &callable, true) {
        Ok(app) => app,
        Err(e) => {
            let context = format!("{}: {context}", msgid::SCRIPT_LOAD_FAILED);
            log_exception(py, &*log, &context, "failed to load the WSGI script", &e);
            return None;
        }
    };
    let environ = template.instantiate(py).and_then(|env| fill_environ(py, env, &data, &script));
    let environ = match environ {
        Ok(env) => env,
        Err(e) => {
            log_exception(py, &*log, &context, "failed to build the WSGI environ", &e);
            return None;
        }
    };
    let parts = RequestParts {
        body: Box::new(body),
        sink: Box::new(NgxSink::new(shared.clone())),
        log: log.clone(),
        context: context.clone(),
    };
    match Exchange::begin(py, &app, environ, parts) {
        Ok(ex) => Some(ex),
        Err(e) => {
            log_exception(py, &*log, &context, "internal error", &e);
            None
        }
    }
}

fn fill_environ<'py>(
    py: Python<'py>,
    env: EnvironBuilder<'py>,
    d: &RequestData,
    script: &std::path::Path,
) -> PyResult<EnvironBuilder<'py>> {
    env.set(intern!(py, "REQUEST_METHOD"), &d.method)?;
    env.set(intern!(py, "SCRIPT_NAME"), &d.script_name)?;
    env.set(intern!(py, "PATH_INFO"), &d.path_info)?;
    env.set(intern!(py, "QUERY_STRING"), &d.query)?;
    env.set(intern!(py, "REQUEST_URI"), &d.request_uri)?;
    env.set(intern!(py, "SERVER_PROTOCOL"), &d.protocol)?;
    env.set(intern!(py, "SERVER_NAME"), &d.server_name)?;
    env.set_str(intern!(py, "SERVER_PORT"), &d.server_port.to_string())?;
    env.set(intern!(py, "SERVER_ADDR"), &d.server_addr)?;
    env.set(intern!(py, "REMOTE_ADDR"), &d.remote_addr)?;
    env.set_str(intern!(py, "REMOTE_PORT"), &d.remote_port.to_string())?;
    env.set_str(intern!(py, "SCRIPT_FILENAME"), &script.to_string_lossy())?;
    env.set_str(intern!(py, "wsgi.url_scheme"), if d.https { "https" } else { "http" })?;
    if d.https {
        env.set_str(intern!(py, "HTTPS"), "on")?;
    }
    for (k, v) in &d.headers {
        if k.eq_ignore_ascii_case(b"authorization") && !d.pass_authorization {
            continue;
        }
        if k.eq_ignore_ascii_case(b"proxy-authorization") {
            continue; // credentials for a proxy, never for the application
        }
        env.add_header(k, v)?;
    }
    if let Some(n) = d.content_length {
        env.set_str(intern!(py, "CONTENT_LENGTH"), &n.to_string())?;
    }
    for (k, v) in &d.params {
        env.set_dynamic(k, v)?;
    }
    Ok(env)
}

//! Driving one request through the application: call it, send what its iterable yields,
//! always call `close()`, and map every failure to the right answer (PEP 3333,
//! "Specification Details" and "Error Handling").
//!
//! [`Exchange::pump`] produces the body in steps so that an adapter can bound how much it
//! produces per step (nginx pulls in batches and stops while the client is slow); Apache
//! runs it to the end in one go with [`Exchange::run`].

use std::sync::Arc;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyIterator, PyList, PyTuple};

use super::environ::EnvironBuilder;
use super::errors::ErrorStream;
use super::file_wrapper::FileWrapper;
use super::input::Input;
use super::log::RequestScope;
use super::start_response::{EmitError, Responder};
use super::{Level, LogSink, RequestBody, ResponseSink, WriteFlags};

/// How a request ended, for the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response went out.
    Complete,
    /// Nothing was sent: the adapter answers 500 (the traceback is already logged).
    Failed,
    /// The head went out but the body could not be completed; the sink was aborted.
    Aborted,
    /// The client went away.
    ClientGone,
}

/// What an adapter hands the core for one request.
pub struct RequestParts {
    pub body: Box<dyn RequestBody>,
    pub sink: Box<dyn ResponseSink>,
    /// The error log for this request (`wsgi.errors`, tracebacks).
    pub log: Arc<dyn LogSink>,
    /// Names the application in log lines, e.g. the script path.
    pub context: Arc<str>,
}

/// Lists/tuples up to this size are joined and sent in one write.
const JOIN_LIMIT: usize = 256 * 1024;

enum Body {
    /// Not classified yet.
    Start,
    Iter(Py<PyIterator>),
    Done,
}

/// One request in flight.
pub struct Exchange {
    responder: Py<Responder>,
    input: Py<Input>,
    /// The iterable the application returned (kept to call `close()`).
    result: Option<Py<PyAny>>,
    body: Body,
    outcome: Option<Outcome>,
    items: u64,
    /// The request's log: `logging` and `print()` of the application write there while it
    /// runs (log::RequestScope).
    log: Arc<dyn LogSink>,
}

/// Log a Python exception with its traceback, one line per log entry.
pub fn log_exception(py: Python<'_>, log: &dyn LogSink, context: &str, what: &str, err: &PyErr) {
    log.log(Level::Error, &format!("{context}: {what}"));
    log_traceback(py, log, context, err);
}

/// Like [`log_exception`], with a stable message id (`core::worker::msgid`) first.
pub fn log_exception_id(py: Python<'_>, log: &dyn LogSink, id: &str, context: &str, what: &str, err: &PyErr) {
    log.log(Level::Error, &format!("{id}: {context}: {what}"));
    log_traceback(py, log, context, err);
}

fn log_traceback(py: Python<'_>, log: &dyn LogSink, context: &str, err: &PyErr) {
    let text = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.clone_ref(py).into_value(py),)))
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat())
        .unwrap_or_else(|_| format!("{err}\n"));
    for line in text.lines() {
        log.log(Level::Error, &format!("{context}: {line}"));
    }
}

impl Exchange {
    /// The request's input and output so far (mod_wsgi's `request_finished` keys).
    pub fn counters(&self, py: Python<'_>) -> super::modwsgi_module::IoCounters {
        let (input_reads, input_length, input_time) = self.input.borrow(py).counters();
        let r = self.responder.borrow(py);
        super::modwsgi_module::IoCounters {
            input_reads,
            input_length,
            input_time,
            output_length: r.written,
            output_writes: r.writes,
            output_time: r.write_time,
        }
    }

    /// Complete the environ with `wsgi.input` / `wsgi.errors` and call the application.
    pub fn begin(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        environ: EnvironBuilder<'_>,
        parts: RequestParts,
    ) -> PyResult<Exchange> {
        let input = Py::new(py, Input::new(parts.body))?;
        let errors = Py::new(py, ErrorStream::new(parts.log.clone(), Level::Error))?;
        environ.set_object(intern!(py, "wsgi.input"), input.bind(py).as_any())?;
        environ.set_object(intern!(py, "wsgi.errors"), errors.bind(py).as_any())?;
        let environ = environ.finish();
        let log = parts.log.clone();
        let _scope = RequestScope::enter(log.clone());
        let responder = Py::new(py, Responder::new(parts.sink, parts.log, parts.context))?;
        let mut ex = Exchange { responder, input, result: None, body: Body::Start, outcome: None, items: 0, log };
        ex.call_app(py, app, &environ);
        Ok(ex)
    }

    fn call_app(&mut self, py: Python<'_>, app: &Bound<'_, PyAny>, environ: &Bound<'_, PyDict>) {
        match app.call1((environ, self.responder.bind(py))) {
            Ok(result) => self.result = Some(result.unbind()),
            Err(err) => self.fail(py, "exception in the WSGI application", &err),
        }
    }

    /// Run the whole response (Apache: the worker thread may block on the client).
    pub fn run(
        py: Python<'_>,
        app: &Bound<'_, PyAny>,
        environ: EnvironBuilder<'_>,
        parts: RequestParts,
    ) -> PyResult<Outcome> {
        let mut ex = Exchange::begin(py, app, environ, parts)?;
        loop {
            if let Some(outcome) = ex.pump(py, None) {
                return Ok(outcome);
            }
        }
    }

    /// The request's outcome once finished.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    /// Produce more of the body: at most about `budget` bytes (None = all of it). Returns
    /// the outcome once the response is over; `None` means "call again".
    pub fn pump(&mut self, py: Python<'_>, budget: Option<u64>) -> Option<Outcome> {
        let _scope = RequestScope::enter(self.log.clone());
        if self.outcome.is_none() {
            self.step(py, budget);
        }
        if let Some(outcome) = self.outcome {
            self.close(py);
            return Some(outcome);
        }
        None
    }

    /// End the response with an error: log it, then answer 500 or abort.
    fn fail(&mut self, py: Python<'_>, what: &str, err: &PyErr) {
        let mut r = self.responder.borrow_mut(py);
        if r.client_gone {
            r.log(Level::Info, "client closed the connection before the response was complete");
            self.outcome = Some(Outcome::ClientGone);
            return;
        }
        log_exception(py, &*r.log, &r.context, what, err);
        self.outcome = Some(Self::broken(&mut r));
        self.body = Body::Done;
    }

    fn fail_msg(&mut self, py: Python<'_>, msg: &str) {
        let mut r = self.responder.borrow_mut(py);
        r.log(Level::Error, msg);
        self.outcome = Some(Self::broken(&mut r));
        self.body = Body::Done;
    }

    /// The response cannot be completed: a 500 if nothing went out yet, else abort it.
    fn broken(r: &mut Responder) -> Outcome {
        if r.head_sent {
            r.abort();
            Outcome::Aborted
        } else {
            Outcome::Failed
        }
    }

    fn emit_failed(&mut self, py: Python<'_>, e: EmitError) {
        match e {
            EmitError::ClientGone => {
                let r = self.responder.borrow(py);
                r.log(Level::Info, "client closed the connection before the response was complete");
                self.outcome = Some(Outcome::ClientGone);
            }
            EmitError::NoHead => {
                self.fail_msg(py, "the application returned a response body without calling start_response()")
            }
            EmitError::Finished => self.fail_msg(py, "response sink closed early"),
            EmitError::Failed(m) => self.fail_msg(py, &format!("sending the response failed: {m}")),
        }
        self.body = Body::Done;
    }

    fn step(&mut self, py: Python<'_>, budget: Option<u64>) {
        let Some(result) = self.result.as_ref().map(|r| r.clone_ref(py)) else {
            // call_app failed and set the outcome.
            return;
        };
        let result = result.bind(py);
        if let Body::Start = self.body {
            if let Some(done) = self.try_fast_paths(py, result) {
                if done {
                    self.finish(py);
                }
                return;
            }
            match result.try_iter() {
                Ok(it) => self.body = Body::Iter(it.unbind()),
                Err(err) => {
                    let msg = format!(
                        "the WSGI application returned {}, which is not an iterable of bytes",
                        super::head::type_name(result)
                    );
                    self.fail(py, &msg, &err);
                    return;
                }
            }
        }
        let Body::Iter(it) = &self.body else { return };
        let it = it.clone_ref(py);
        let it = it.bind(py);
        let mut produced = 0u64;
        loop {
            if budget.is_some_and(|b| produced >= b) {
                return;
            }
            let item = match it.call_method0(intern!(py, "__next__")) {
                Ok(item) => item,
                Err(err) if err.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => break,
                Err(err) => {
                    self.fail(py, "exception while iterating over the WSGI response", &err);
                    return;
                }
            };
            self.items += 1;
            let Ok(bytes) = item.cast::<PyBytes>() else {
                let msg = format!(
                    "response body item {} is {}, not bytes (PEP 3333 requires bytestrings)",
                    self.items,
                    super::head::type_name(&item)
                );
                self.fail_msg(py, &msg);
                return;
            };
            let data = bytes.as_bytes();
            let done_early = {
                let r = self.responder.borrow(py);
                r.remaining() == Some(0) && r.head_sent && !data.is_empty()
            };
            if done_early {
                // Content-Length reached: stop iterating; emit() logs the excess once.
                let _ = self.responder.borrow_mut(py).emit(py, data, WriteFlags::default());
                break;
            }
            let r = self.responder.borrow_mut(py).emit_bytes(py, bytes, WriteFlags { flush: true, last: false });
            if let Err(e) = r {
                self.emit_failed(py, e);
                return;
            }
            produced += data.len() as u64;
        }
        self.finish(py);
    }

    /// Lists and tuples: one write with a computed Content-Length. A file wrapper over a
    /// regular file: sendfile. Returns None when the generic path must be used, else
    /// whether the body is complete (false = failed, outcome set).
    fn try_fast_paths(&mut self, py: Python<'_>, result: &Bound<'_, PyAny>) -> Option<bool> {
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            return Some(self.send_sequence(py, result));
        }
        if let Ok(fw) = result.cast_exact::<FileWrapper>() {
            return self.send_file_wrapper(py, fw);
        }
        None
    }

    fn send_sequence(&mut self, py: Python<'_>, seq: &Bound<'_, PyAny>) -> bool {
        let items: Vec<Bound<'_, PyAny>> = match seq.try_iter().and_then(|it| it.collect()) {
            Ok(v) => v,
            Err(e) => {
                self.fail(py, "exception reading the WSGI response", &e);
                return false;
            }
        };
        let mut chunks = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.cast::<PyBytes>() {
                Ok(b) => chunks.push(b),
                Err(_) => {
                    let msg = format!(
                        "response body item {} is {}, not bytes (PEP 3333 requires bytestrings)",
                        i + 1,
                        super::head::type_name(item)
                    );
                    self.fail_msg(py, &msg);
                    return false;
                }
            }
        }
        let total: usize = chunks.iter().map(|c| c.as_bytes().len()).sum();
        {
            let mut r = self.responder.borrow_mut(py);
            // The whole body is known: declare its length, unless the app did or the
            // status forbids a body.
            let head_sent = r.head_sent;
            if let Some(head) = r.pending.as_mut().filter(|_| !head_sent) {
                let bodyless = head.status < 200 || head.status == 204 || head.status == 304;
                if head.content_length.is_none() && !bodyless {
                    head.content_length = Some(total as u64);
                    head.headers.push(("Content-Length".into(), total.to_string()));
                }
            }
        }
        let last = WriteFlags { flush: false, last: true };
        let r = if chunks.is_empty() {
            self.responder.borrow_mut(py).emit(py, &[], last)
        } else if chunks.len() == 1 {
            self.responder.borrow_mut(py).emit_bytes(py, chunks[0], last)
        } else if total <= JOIN_LIMIT {
            let mut joined = Vec::with_capacity(total);
            chunks.iter().for_each(|c| joined.extend_from_slice(c.as_bytes()));
            self.responder.borrow_mut(py).emit(py, &joined, last)
        } else {
            let n = chunks.len();
            chunks.iter().enumerate().try_for_each(|(i, c)| {
                let flags = if i + 1 == n { last } else { WriteFlags::default() };
                self.responder.borrow_mut(py).emit_bytes(py, c, flags)
            })
        };
        match r {
            Ok(()) => true,
            Err(e) => {
                self.emit_failed(py, e);
                false
            }
        }
    }

    fn send_file_wrapper(&mut self, py: Python<'_>, fw: &Bound<'_, FileWrapper>) -> Option<bool> {
        if self.responder.borrow(py).head_sent {
            return None; // write() was used: keep the byte order, read the file instead.
        }
        let filelike = fw.borrow().filelike.clone_ref(py);
        let f = filelike.bind(py);
        let fd: i32 = f.call_method0("fileno").ok()?.extract().ok()?;
        let offset: u64 = f.call_method0("tell").ok()?.extract().ok()?;
        let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?;
        if !meta.is_file() {
            return None;
        }
        let len = meta.len().saturating_sub(offset);
        {
            let mut r = self.responder.borrow_mut(py);
            if let Some(head) = r.pending.as_mut() {
                if head.content_length.is_none() {
                    head.content_length = Some(len);
                    head.headers.push(("Content-Length".into(), len.to_string()));
                }
            }
        }
        let r = self.responder.borrow_mut(py).emit_file(py, fd, offset, len, WriteFlags { flush: false, last: true });
        match r {
            Ok(true) => Some(true),
            Ok(false) => None,
            Err(e) => {
                self.emit_failed(py, e);
                Some(false)
            }
        }
    }

    /// The iterable is exhausted: end the response, checking the declared length.
    fn finish(&mut self, py: Python<'_>) {
        self.body = Body::Done;
        if self.outcome.is_some() {
            return;
        }
        let mut r = self.responder.borrow_mut(py);
        if !r.head_sent && r.pending.is_none() {
            drop(r);
            self.fail_msg(py, "the WSGI application returned without calling start_response()");
            return;
        }
        let short = r.content_length.filter(|&cl| r.written < cl);
        if let Some(cl) = short {
            let written = r.written;
            r.log(
                Level::Error,
                &format!(
                    "response truncated: the application declared Content-Length {cl} but produced only {written} bytes"
                ),
            );
            if let Err(e) = r.send_head() {
                drop(r);
                self.emit_failed(py, e);
                return;
            }
            r.abort();
            self.outcome = Some(Outcome::Aborted);
            return;
        }
        let res = if r.eos_sent { Ok(()) } else { r.emit(py, &[], WriteFlags { flush: false, last: true }) };
        drop(r);
        match res {
            Ok(()) => self.outcome = Some(Outcome::Complete),
            Err(e) => self.emit_failed(py, e),
        }
    }

    /// Call `close()` on the iterable (always, PEP 3333), then retire the request objects.
    fn close(&mut self, py: Python<'_>) {
        self.body = Body::Done;
        if let Some(result) = self.result.take() {
            let result = result.bind(py);
            // Lists and tuples have no close(); asking would build an AttributeError.
            let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
            if !plain && matches!(result.hasattr(intern!(py, "close")), Ok(true)) {
                if let Err(err) = result.call_method0(intern!(py, "close")) {
                    let r = self.responder.borrow(py);
                    log_exception(py, &*r.log, &r.context, "exception in close() of the WSGI response", &err);
                }
            }
        }
        self.input.borrow_mut(py).expire();
        drop(self.responder.borrow_mut(py).finish());
    }
}

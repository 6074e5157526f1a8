//! `start_response` and the `write()` callable it returns (PEP 3333, "The start_response()
//! Callable"), plus the response state they share with the body driver in `response.rs`.

use std::sync::Arc;

use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::head::{self, ResponseHead};
use super::{Level, LogSink, ResponseSink, SharedBytes, SinkError, WriteFlags};

/// Body items at least this big go to a sink that shares as the `bytes` object itself;
/// smaller ones are cheaper to copy and coalesce.
const SHARE_MIN: usize = 8 * 1024;

/// Why body data could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// No `start_response` yet.
    NoHead,
    /// The request is over; the sink is gone.
    Finished,
    ClientGone,
    Failed(String),
}

impl EmitError {
    pub fn to_pyerr(&self) -> PyErr {
        match self {
            EmitError::NoHead => {
                PyAssertionError::new_err("start_response() must be called before any response data is sent")
            }
            EmitError::Finished => PyRuntimeError::new_err("write() called after the request completed"),
            EmitError::ClientGone => PyOSError::new_err("client connection closed"),
            EmitError::Failed(m) => PyOSError::new_err(format!("failed to send response data: {m}")),
        }
    }
}

/// The `start_response` callable. Owns the response sink for the length of the request.
#[pyclass(module = "oxwsgi", immutable_type, name = "StartResponse")]
pub struct Responder {
    sink: Option<Box<dyn ResponseSink>>,
    pub(crate) log: Arc<dyn LogSink>,
    /// Where messages say they come from (the script path).
    pub(crate) context: Arc<str>,
    /// Status and headers given by the app and not sent yet.
    pub(crate) pending: Option<ResponseHead>,
    pub(crate) head_sent: bool,
    pub(crate) eos_sent: bool,
    pub(crate) written: u64,
    /// Writes and sendfiles handed to the sink, and the time they took (measured only
    /// while an application subscribed to mod_wsgi's events).
    pub(crate) writes: u64,
    pub(crate) write_time: std::time::Duration,
    pub(crate) content_length: Option<u64>,
    pub(crate) client_gone: bool,
    pub(crate) overflow_logged: bool,
}

impl Responder {
    pub fn new(sink: Box<dyn ResponseSink>, log: Arc<dyn LogSink>, context: Arc<str>) -> Responder {
        Responder {
            sink: Some(sink),
            log,
            context,
            pending: None,
            head_sent: false,
            eos_sent: false,
            written: 0,
            writes: 0,
            write_time: std::time::Duration::ZERO,
            content_length: None,
            client_gone: false,
            overflow_logged: false,
        }
    }

    pub(crate) fn log(&self, level: Level, msg: &str) {
        self.log.log(level, &format!("{}: {msg}", self.context));
    }

    /// Send the pending head if it has not gone out yet.
    pub(crate) fn send_head(&mut self) -> Result<(), EmitError> {
        if self.head_sent {
            return Ok(());
        }
        let sink = self.sink.as_mut().ok_or(EmitError::Finished)?;
        let head = self.pending.as_ref().ok_or(EmitError::NoHead)?;
        self.content_length = head.content_length;
        sink.send_head(head).map_err(|e| self.sink_error(e))?;
        self.head_sent = true;
        Ok(())
    }

    fn sink_error(&mut self, e: SinkError) -> EmitError {
        match e {
            SinkError::ClientGone => {
                self.client_gone = true;
                EmitError::ClientGone
            }
            SinkError::Failed(m) => EmitError::Failed(m),
        }
    }

    /// Bytes that may still be sent under the declared Content-Length.
    pub(crate) fn remaining(&self) -> Option<u64> {
        self.content_length.map(|cl| cl.saturating_sub(self.written))
    }

    /// Send body data (sending the head first). Never sends more than the declared
    /// Content-Length: the excess is dropped and logged once.
    pub(crate) fn emit(&mut self, py: Python<'_>, data: &[u8], flags: WriteFlags) -> Result<(), EmitError> {
        self.emit_from(py, data, None, flags)
    }

    /// `emit` of a body item that is a `bytes` object: a sink that shares keeps the object
    /// instead of copying its data, when it is big enough for the copy to matter.
    pub(crate) fn emit_bytes(
        &mut self,
        py: Python<'_>,
        bytes: &Bound<'_, PyBytes>,
        flags: WriteFlags,
    ) -> Result<(), EmitError> {
        let data = bytes.as_bytes();
        // Exact bytes only: a subclass's instance could run Python code when the sink drops
        // it, on whatever thread attaches next (pyo3 defers the decref).
        let share = data.len() >= SHARE_MIN
            && bytes.is_exact_instance_of::<PyBytes>()
            && self.sink.as_ref().is_some_and(|s| s.shares());
        self.emit_from(py, data, share.then_some(bytes), flags)
    }

    fn emit_from(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        owner: Option<&Bound<'_, PyBytes>>,
        flags: WriteFlags,
    ) -> Result<(), EmitError> {
        if self.client_gone {
            return Err(EmitError::ClientGone);
        }
        if self.sink.is_none() {
            return Err(EmitError::Finished);
        }
        if data.is_empty() && !flags.last {
            // PEP 3333: headers go out with the first non-empty body data, so an empty
            // chunk leaves the app free to replace them (exc_info) or fail with a 500.
            return Ok(());
        }
        self.send_head()?;
        let mut data = data;
        if let Some(rem) = self.remaining() {
            if data.len() as u64 > rem {
                if !self.overflow_logged {
                    self.overflow_logged = true;
                    let cl = self.content_length.unwrap_or(0);
                    self.log(
                        Level::Warning,
                        &format!(
                            "application sent more than its Content-Length of {cl} bytes; the excess was not sent"
                        ),
                    );
                }
                data = &data[..rem as usize];
            }
        }
        let mut flags = flags;
        if flags.last && self.remaining().is_some_and(|rem| (data.len() as u64) < rem) {
            // Shorter than declared: do not end the response normally; the driver sees
            // the shortfall and aborts, so the client can tell it is truncated (a
            // server could otherwise "fix" Content-Length to the real size).
            flags.last = false;
        }
        if data.is_empty() && !flags.last {
            return Ok(());
        }
        if self.eos_sent {
            return Ok(());
        }
        let sink = self.sink.as_mut().expect("checked above");
        let timed = super::modwsgi_module::subscribed().then(std::time::Instant::now);
        let blocks = sink.may_block(data.len(), flags);
        // `data` is a prefix of the owner's bytes (the Content-Length cut keeps the start).
        let r = match owner.map(|b| SharedBytes::new(b, data.len())) {
            Some(shared) if blocks => py.detach(|| sink.write_shared(shared, flags)),
            Some(shared) => sink.write_shared(shared, flags),
            None if blocks => py.detach(|| sink.write(data, flags)),
            None => sink.write(data, flags),
        };
        if let Some(t) = timed {
            self.write_time += t.elapsed();
        }
        r.map_err(|e| self.sink_error(e))?;
        self.written += data.len() as u64;
        self.writes += 1;
        if flags.last {
            self.eos_sent = true;
        }
        Ok(())
    }

    /// Send `len` bytes of file `fd` from `offset` through the sink's sendfile path.
    /// `Ok(false)`: the sink cannot; the caller reads the file instead.
    pub(crate) fn emit_file(
        &mut self,
        py: Python<'_>,
        fd: i32,
        offset: u64,
        len: u64,
        flags: WriteFlags,
    ) -> Result<bool, EmitError> {
        if self.client_gone {
            return Err(EmitError::ClientGone);
        }
        self.send_head()?;
        let len = self.remaining().map_or(len, |r| r.min(len));
        let sink = self.sink.as_mut().ok_or(EmitError::Finished)?;
        let r = py.detach(|| sink.send_file(fd, offset, len, flags));
        let sent = r.map_err(|e| self.sink_error(e))?;
        if sent {
            self.written += len;
            self.writes += 1;
            if flags.last {
                self.eos_sent = true;
            }
        }
        Ok(sent)
    }

    /// Make a broken response visible to the client.
    pub(crate) fn abort(&mut self) {
        if let Some(sink) = self.sink.as_mut() {
            sink.abort();
        }
        self.eos_sent = true;
    }

    /// The request is over: drop the sink so that a `write` kept by the app fails cleanly.
    pub(crate) fn finish(&mut self) -> Option<Box<dyn ResponseSink>> {
        self.sink.take()
    }
}

#[pymethods]
impl Responder {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        slf: Bound<'_, Self>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let mut me = slf.borrow_mut();
            match exc_info {
                // PEP 3333: headers already sent, so re-raise the app's exception.
                Some(info) if me.head_sent => {
                    let info = info.cast::<PyTuple>().map_err(|_| PyTypeError::new_err("exc_info must be a tuple"))?;
                    let value = info.get_item(1)?;
                    let tb = info.get_item(2)?;
                    let value = if tb.is_none() { value } else { value.call_method1("with_traceback", (tb,))? };
                    return Err(PyErr::from_value(value));
                }
                // Before the head: the new status and headers replace the pending ones.
                Some(_) => {}
                None if me.pending.is_some() => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called a second time without exc_info (PEP 3333)",
                    ));
                }
                None => {}
            }
            if me.sink.is_none() {
                return Err(PyRuntimeError::new_err("start_response() called after the request completed"));
            }
            me.pending = Some(head::from_python(status, headers)?);
        }
        super::modwsgi_module::response_started(slf.py(), status, headers, exc_info);
        Ok(slf.getattr(intern!(slf.py(), "write"))?.unbind())
    }

    /// The legacy `write(data)` callable (PEP 3333): sends at once, unbuffered.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() argument must be bytes, not {}", head::type_name(data)))
        })?;
        self.emit(py, bytes.as_bytes(), WriteFlags { flush: true, last: false }).map_err(|e| e.to_pyerr())
    }
}

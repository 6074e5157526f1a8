//! `wsgi.errors` (and the process's `sys.stdout` / `sys.stderr`): a text stream whose
//! lines go to the server's error log.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::{Level, LogSink};

#[pyclass(module = "oxwsgi", immutable_type, name = "ErrorLog")]
pub struct ErrorStream {
    log: Arc<dyn LogSink>,
    level: Level,
    /// `sys.stdout`/`sys.stderr`: write to the log of the request being served on the
    /// writing thread, when there is one ([`super::log::request_log`]).
    follow_request: bool,
    /// Text after the last newline, emitted on the next newline or flush().
    partial: String,
}

impl ErrorStream {
    /// `wsgi.errors` of one request: always `log`.
    pub fn new(log: Arc<dyn LogSink>, level: Level) -> ErrorStream {
        ErrorStream { log, level, follow_request: false, partial: String::new() }
    }

    /// A process-wide stream: the request's log inside a request, else `log`.
    pub fn process_wide(log: Arc<dyn LogSink>, level: Level) -> ErrorStream {
        ErrorStream { log, level, follow_request: true, partial: String::new() }
    }

    fn sink(&self) -> Arc<dyn LogSink> {
        let request = if self.follow_request { super::log::request_log() } else { None };
        request.unwrap_or_else(|| self.log.clone())
    }

    fn emit_lines(&mut self) {
        if !self.partial.contains('\n') {
            return;
        }
        let log = self.sink();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            log.log(self.level, line.trim_end_matches(['\n', '\r']));
        }
    }
}

impl Drop for ErrorStream {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.log.log(self.level, &self.partial);
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&mut self, s: &Bound<'_, PyAny>) -> PyResult<usize> {
        let s = s.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("write() argument must be str, not {}", super::head::type_name(s)))
        })?;
        let text = s.to_cow()?;
        self.partial.push_str(&text);
        self.emit_lines();
        Ok(text.chars().count())
    }

    fn writelines(&mut self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.sink().log(self.level, &line);
        }
    }

    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn closed(&self) -> bool {
        false
    }
}

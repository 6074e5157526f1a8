//! The thread-pool side of a request: build the environ, call the application, and pump
//! its body in batches. Runs only on nginx thread-pool threads and touches only owned
//! data (`RequestData`, `NgxBody`, the shared batch), never an nginx structure.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pyo3::prelude::*;

use super::io::{NgxBody, NgxSink, Shared};
use crate::core::LogSink;
use crate::core::modwsgi_module;
use crate::core::request::RequestMeta;
use crate::core::response::{Exchange, Outcome};
use crate::core::worker::{self, Channel};
use crate::ffi::python;

/// Body bytes produced per task before the thread hands back to the event loop.
pub const BUDGET: u64 = 256 * 1024;

/// What the first task needs to start the exchange.
pub struct Start {
    /// Owned: it crosses from the event loop to a pool thread.
    pub meta: RequestMeta<'static>,
    pub body: NgxBody,
    pub log: Arc<dyn LogSink>,
    pub context: Arc<str>,
}

#[derive(Default)]
pub struct Job {
    pub start: Option<Start>,
    pub exchange: Option<Exchange>,
    /// When the exchange began (mod_wsgi's request metrics and events).
    pub started: Option<Instant>,
}

/// The part of a request the pool thread uses; `task->ctx` points at it.
#[derive(Default)]
pub struct TaskSide {
    pub job: Mutex<Job>,
    pub shared: Arc<Shared>,
}

/// One task: start the exchange if needed, then produce up to [`BUDGET`] bytes.
pub fn run(ts: &TaskSide, got_gil: impl FnOnce()) {
    python::keep_thread_state();
    let mut job = ts.job.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = Python::attach(|py| {
        got_gil();
        if let Some(start) = job.start.take() {
            let started = Instant::now();
            match begin(py, start, &ts.shared) {
                Some(ex) => (job.exchange, job.started) = (Some(ex), Some(started)),
                None => return Some(Outcome::Failed),
            }
        }
        let Some(ex) = job.exchange.as_mut() else { return Some(Outcome::Failed) };
        let r = ex.pump(py, Some(BUDGET));
        if r.is_some() {
            let io = ex.counters(py);
            // Python objects are released here, with the GIL held.
            job.exchange = None;
            if let Some(started) = job.started.take() {
                modwsgi_module::request_finished(py, started, &io);
            }
        }
        r
    });
    if let Some(o) = outcome {
        ts.shared.lock().outcome = Some(o);
    }
}

fn begin(py: Python<'_>, start: Start, shared: &Arc<Shared>) -> Option<Exchange> {
    let Start { meta, body, log, context } = start;
    let ch = Channel { body: Box::new(body), sink: Box::new(NgxSink::new(shared.clone())), log, context };
    worker::get()?.begin(py, &meta, ch)
}

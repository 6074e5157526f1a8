//! The event-loop side of a request.
//!
//! Flow (DESIGN.md, "Request flow — nginx"):
//! 1. the content handler checks the in-flight cap and has nginx read the body;
//! 2. once it is read, the request is copied into owned data and a job is queued for the
//!    runner threads (dispatch.rs);
//! 3. the job (task.rs) runs the application for one batch of body data;
//! 4. its completion, here, sends the head and pushes the batch through the
//!    output filters; the next task is posted only when nginx has sent what it was given,
//!    else when the write event says the client took it. A slow client therefore holds
//!    back the application instead of growing memory.
//!
//! While a task runs, a timer (POLL_MS) hands over what the task produced so far, so that a
//! response that streams slowly (a chunk, then a pause) is not held back until a batch
//! fills, and a `write()`-heavy app that waits on a full batch can go on.
//!
//! The request cannot be freed while a job is queued or runs: the shim raises
//! `r->main->blocked` for every queued job (`Ctx::block`), and the body reading holds a reference (`r->main->count`) until the
//! single final `ngx_http_finalize_request`. This state is freed by a request-pool cleanup.

use std::collections::VecDeque;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::daemon_client::{DaemonConn, Next, Target};
use super::dispatch::{Dispatcher, Job};
use super::io::{BodyLoan, Held, Item, LoanOwner, NgxBody, Part, PoolBytes};
use super::ngx::{BufData, Ctx, ERROR, OK, Request};
use super::state::{Client, Head, State, Task};
use super::task::{Start, TaskSide};
use super::testhook;
use crate::core::head::ResponseHead;
use crate::core::request::{Bytes, RequestMeta};
use crate::core::response::Outcome;
use crate::core::{Level, LogSink};
use crate::daemon::client::ProxyError;
use crate::daemon::codec::Event;
use crate::ffi::ngx::*;

/// Requests of this worker between the content handler and the end of their pool (for the
/// exit notice; the cap counts per location, [`InFlightSlot`]).
pub static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A request's place in its location's count of requests in flight (`wsgi_max_in_flight`
/// is per location and per worker, as `limit_conn` counts per zone).
pub struct InFlightSlot(std::ptr::NonNull<ngx_uint_t>);

impl InFlightSlot {
    /// Count one more request in `counter`; dropping the slot counts it out.
    ///
    /// # Safety
    /// `counter` must be the `in_flight` field of a location configuration of this worker's
    /// cycle, used only on the event loop; the slot must be dropped on the event loop before
    /// the cycle goes away (request pools are freed first).
    pub unsafe fn take(counter: std::ptr::NonNull<ngx_uint_t>) -> InFlightSlot {
        // SAFETY: the counter is live and only the event loop uses it (caller).
        unsafe { *counter.as_ptr() += 1 };
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlightSlot(counter)
    }
}

impl Drop for InFlightSlot {
    fn drop(&mut self) {
        // SAFETY: the invariant of `take`: the counter outlives the slot, on the loop.
        unsafe { *self.0.as_ptr() -= 1 };
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How often a running task's output is handed over, in milliseconds.
const POLL_MS: ngx_msec_t = 20;

/// What the caller must do once it no longer borrows the request state.
#[must_use]
pub enum After {
    Nothing,
    /// `ngx_http_finalize_request(r, rc)`: may free the request and this state.
    Finalize(*mut ngx_http_request_t, ngx_int_t),
}

impl After {
    /// # Safety
    /// No reference to the request state may be alive (finalizing may free it).
    pub unsafe fn apply(self) {
        if let After::Finalize(r, rc) = self {
            // SAFETY: r is live: the state that produced this action held it (caller).
            unsafe { ngx_http_finalize_request(r, rc) }
        }
    }
}

/// An owned copy of request bytes (the metadata crosses to a pool thread).
fn own(b: &[u8]) -> Bytes<'static> {
    Bytes::Owned(b.to_vec())
}

/// SCRIPT_NAME and PATH_INFO: the location prefix and the rest of the (decoded) URI.
/// The prefix must match whole path segments; otherwise everything is PATH_INFO.
pub fn split_uri(prefix: Option<&[u8]>, uri: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match prefix {
        Some(p) if uri.starts_with(p) && (uri.len() == p.len() || uri[p.len()] == b'/') => {
            (p.to_vec(), uri[p.len()..].to_vec())
        }
        _ => (Vec::new(), uri.to_vec()),
    }
}

/// The body buffers nginx read: memory is lent (see [`BodyLoan`](super::io::BodyLoan)),
/// the temp file's descriptor duplicated.
fn body_parts(r: &Request, loan: Arc<BodyLoan>) -> Result<(VecDeque<Part>, u64), String> {
    let mut parts = VecDeque::new();
    let mut total = 0u64;
    let mut fds: Vec<(i32, Arc<OwnedFd>)> = Vec::new();
    for b in r.body().into_iter().flatten() {
        match b.data() {
            BufData::File { fd: raw, pos, end } => {
                let fd = match fds.iter().find(|(n, _)| *n == raw) {
                    Some((_, fd)) => fd.clone(),
                    None => {
                        // SAFETY: nginx keeps the temp file open while the request lives.
                        let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
                        let own = borrowed
                            .try_clone_to_owned()
                            .map_err(|e| format!("dup of the request body temp file: {e}"))?;
                        let fd = Arc::new(own);
                        fds.push((raw, fd.clone()));
                        fd
                    }
                };
                if end > pos {
                    total += end - pos;
                    parts.push_back(Part::File { fd, pos, end });
                }
            }
            BufData::Memory(m) if !m.is_empty() => {
                total += m.len() as u64;
                // SAFETY: a buffer of this request's body, read completely; `loan` is
                // this request's (its state holds the owner).
                parts.push_back(Part::Pool(unsafe { PoolBytes::new(m, loan.clone()) }));
            }
            BufData::Memory(_) => {}
        }
    }
    Ok((parts, total))
}

/// One WSGI request, on the event loop.
pub struct NgxRequest {
    r: *mut ngx_http_request_t,
    /// Set by the content handler right after the shim made it.
    pub ctx: Option<Ctx>,
    pub task: Arc<TaskSide>,
    /// The dispatcher of the location's thread pool (found on the first post).
    dispatcher: Option<&'static Dispatcher>,
    log: Arc<dyn LogSink>,
    context: Arc<str>,
    _slot: InFlightSlot,
    state: State,
    /// Body memory lent to nginx buffers, in output order, until they leave `busy`.
    lent: VecDeque<(*mut ngx_buf_t, Held)>,
    /// Daemon mode: the location's group, until the body is read.
    target: Option<Target>,
    /// Daemon mode: the conversation with the group's daemon (daemon.rs of this adapter).
    daemon: Option<DaemonConn>,
    /// Daemon mode: the client has not taken the response so far; the daemon waits.
    paused: bool,
    /// The body memory lent to `wsgi.input`, revoked when this state is freed.
    body_loan: LoanOwner,
}

impl NgxRequest {
    pub fn new(r: *mut ngx_http_request_t, log: Arc<dyn LogSink>, context: Arc<str>, slot: InFlightSlot) -> NgxRequest {
        NgxRequest {
            r,
            _slot: slot,
            ctx: None,
            task: Arc::new(TaskSide::default()),
            dispatcher: None,
            log,
            context,
            state: State::default(),
            lent: VecDeque::new(),
            target: None,
            daemon: None,
            paused: false,
            body_loan: LoanOwner::new(),
        }
    }

    /// Daemon mode: run this request in `target`'s group instead of this worker.
    pub fn set_target(&mut self, target: Target) {
        self.target = Some(target);
    }

    fn log(&self, level: Level, msg: &str) {
        self.log.log(level, &format!("{}: {msg}", self.context));
    }

    pub fn log_error(&self, msg: &str) {
        self.log(Level::Error, msg);
    }

    /// The request, for as long as this state borrows it.
    fn req(&mut self) -> &mut Request {
        // SAFETY: r is live while this state is (the state is freed by the request pool's
        // cleanup), it is used on the event loop only, and `&mut self` makes this the only
        // borrow of it through the state.
        unsafe { Request::from_ptr(self.r) }
    }

    /// The body is read: copy the request, then start the application.
    pub fn body_read(&mut self) -> After {
        match self.collect() {
            Ok(start) if self.target.is_some() => self.daemon_start(start),
            Ok(start) => {
                self.task.job.lock().unwrap_or_else(|p| p.into_inner()).start = Some(start);
                self.post()
            }
            Err(e) => {
                self.log(Level::Error, &e);
                self.finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
            }
        }
    }

    /// Copy what the application needs out of the request (its body completely read).
    #[allow(clippy::field_reassign_with_default)]
    fn collect(&mut self) -> Result<Start, String> {
        let (log, context, loan) = (self.log.clone(), self.context.clone(), self.body_loan.loan());
        let r = self.req();
        let lcf = r.loc_conf();
        let mut d = RequestMeta::default();
        d.method = own(r.method_name().as_bytes());
        let (script_name, path_info) = split_uri(lcf.prefix(), r.uri().as_bytes());
        (d.script_name, d.path_info) = (script_name.into(), path_info.into());
        d.query = own(r.args().as_bytes());
        d.request_uri = own(r.unparsed_uri().as_bytes());
        d.protocol = own(r.http_protocol().as_bytes());
        if d.protocol.is_empty() {
            d.protocol = own(b"HTTP/0.9");
        }
        d.server_name = own(r.server_name().as_bytes());
        let (server_addr, server_port) = r.connection_mut().local_addr();
        (d.server_addr, d.server_port) = (server_addr.into(), server_port);
        d.remote_port = Some(r.connection().remote_port());
        d.remote_addr = own(r.connection().addr_text().as_bytes());
        d.tls = r.connection().is_tls();
        d.pass_authorization = lcf.pass_authorization();
        d.headers = r
            .headers_in()
            .filter(|h| h.is_live())
            .map(|h| (own(h.key().as_bytes()), own(h.value().as_bytes())))
            .collect();
        for p in lcf.params() {
            let Some(v) = r.complex_value(p.value()) else {
                return Err(format!("evaluating wsgi_param {}", String::from_utf8_lossy(p.key().as_bytes())));
            };
            if p.skip_empty() && v.is_empty() {
                continue;
            }
            d.params.push((own(p.key().as_bytes()), v.into()));
        }
        let (parts, total) = body_parts(r, loan)?;
        d.content_length =
            if r.body().is_some() && (total > 0 || r.is_chunked()) { Some(total) } else { r.content_length_in() };
        d.app.script = own(lcf.script().as_bytes());
        d.app.callable = own(lcf.callable().as_bytes());
        d.app.script_reloading = true;
        Ok(Start { meta: d, body: NgxBody::new(parts), log, context })
    }

    /// The dispatcher of the location's thread pool.
    fn dispatcher(&mut self) -> Option<&'static Dispatcher> {
        if self.dispatcher.is_none() {
            self.dispatcher = Dispatcher::of(self.ctx().thread_pool());
        }
        self.dispatcher
    }

    fn post(&mut self) -> After {
        let Some(d) = self.dispatcher() else {
            if !self.state.post_failed() {
                self.log(Level::Error, "cannot set up the dispatch of requests to the thread pool: 503");
                return self.finalize(NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t);
            }
            self.ctx().poll_timer(10);
            return After::Nothing;
        };
        self.ctx().block();
        d.post(Job::Request { ts: self.task.clone(), token: self.ctx().token() });
        self.state.posted();
        self.ctx().poll_timer(POLL_MS);
        After::Nothing
    }

    /// `ngx_http_finalize_request(r, rc)` once the state is no longer borrowed.
    fn finalize(&mut self, rc: ngx_int_t) -> After {
        self.state.finish();
        After::Finalize(self.r, rc)
    }

    /// The client is gone: refuse further data; a waiting writer wakes up and fails.
    fn gone(&mut self) {
        self.lose(Client::Gone);
    }

    fn lose(&mut self, how: Client) {
        if self.state.lose_client(how) {
            let mut b = self.task.shared.lock();
            b.client_gone = true;
            b.items.clear();
            b.bytes = 0;
            self.task.shared.notify(b);
        }
    }

    fn failed_output(&mut self, rc: ngx_int_t) -> bool {
        rc == ERROR || self.req().connection().error()
    }

    fn ctx(&self) -> &Ctx {
        self.ctx.as_ref().expect("the content handler sets the context before any event")
    }

    fn backed_up(&self) -> bool {
        self.ctx().backed_up()
    }

    /// Wait for the client to take what nginx holds.
    fn wait_write(&mut self) {
        self.state.wait_for_client();
        if !self.ctx().wait_write() {
            self.gone();
        }
    }

    /// Take what the task produced and push it. With `final_`, also the outcome.
    fn drain(&mut self, final_: bool) -> (ngx_int_t, Option<Outcome>) {
        let (head, items, last, aborted, outcome) = {
            let mut b = self.task.shared.lock();
            let out = (
                b.head.take(),
                std::mem::take(&mut b.items),
                std::mem::take(&mut b.last),
                std::mem::take(&mut b.aborted),
                if final_ { b.outcome.take() } else { None },
            );
            b.bytes = 0;
            self.task.shared.notify(b);
            out
        };
        let mut rc = OK;
        if let Some(h) = head.filter(|_| !self.state.head_sent()) {
            rc = self.send_head(&h);
        }
        if self.failed_output(rc) {
            self.gone();
        }
        if self.state.delivers_body() && (!items.is_empty() || (last && !aborted)) {
            rc = self.push(items, last && !aborted);
        }
        if aborted {
            // What was pushed goes out if the socket takes it now; then the connection
            // closes without completing the body (no final chunk).
            self.req().connection_mut().set_error();
        }
        (rc, outcome)
    }

    fn send_head(&mut self, h: &ResponseHead) -> ngx_int_t {
        let latin1 = |s: &str| -> Vec<u8> { s.chars().map(|c| c as u32 as u8).collect() };
        let r = self.req();
        // A bare "200" (no reason phrase) gets nginx's own status line ("200 OK").
        let mut line = latin1(&h.status_line);
        if line.len() <= 4 || line[4..].iter().all(|&c| c == b' ') {
            line.clear();
        }
        if r.set_status(h.status, &line).is_err() {
            return ERROR;
        }
        // 204 and 304 have no body: what the application returns with them is dropped (it
        // would be read as the next response on a keep-alive connection), and a 204 carries
        // no Content-Length. nginx sets header_only for them only when it makes the status
        // line itself.
        let bodyless = matches!(h.status, 204 | 304);
        r.set_content_length(h.content_length.filter(|_| h.status != 204));
        for (name, value) in &h.headers {
            if name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            if r.add_header(&latin1(name), &latin1(value)).is_err() {
                return ERROR;
            }
        }
        if bodyless {
            // As for HEAD: the header filter ends the response with the head.
            r.set_header_only();
        }
        let rc = r.send_header();
        let header_only = r.header_only() || rc == ERROR || rc > OK;
        self.state.head_sent_with(rc, !header_only);
        rc
    }

    /// Hand body data to the output filters; the memory stays here until nginx is done.
    fn push(&mut self, items: Vec<Item>, last: bool) -> ngx_int_t {
        let Some(ctx) = self.ctx.as_ref() else { return ERROR };
        let mut out = ctx.out();
        for item in items {
            let held = match item {
                Item::Data(v) => Held::Owned(v),
                Item::Shared(s) => Held::Shared(s),
                Item::File { fd, offset, len } => {
                    if ctx.add_file(&mut out, fd, offset, len).is_none() {
                        return ERROR;
                    }
                    continue;
                }
            };
            // SAFETY: the memory does not move when `held` moves into `lent` (a Vec's heap
            // buffer; a bytes object's data, kept alive by the reference), where it stays
            // until nginx no longer holds the buffer (release_sent).
            let Some(b) = (unsafe { ctx.add_mem(&mut out, held.as_slice()) }) else { return ERROR };
            self.lent.push_back((b, held));
        }
        if ctx.add_last(&mut out, last).is_none() {
            return ERROR;
        }
        let rc = ctx.output(Some(out));
        self.release_sent();
        rc
    }

    /// Free the memory of buffers nginx has sent.
    fn release_sent(&mut self) {
        while let Some((b, _)) = self.lent.front() {
            if self.ctx().is_busy(*b) {
                break;
            }
            match self.lent.pop_front() {
                Some((_, Held::Owned(v))) => self.task.shared.lock().recycle(v),
                // Dropped without the GIL: pyo3 decrefs it the next time a thread attaches.
                Some((_, Held::Shared(s))) => drop(s),
                None => {}
            }
        }
    }

    /// Completion of a task, on the event loop.
    pub fn task_done(&mut self) -> After {
        self.state.task_completed();
        testhook::maybe_panic(if self.state.head_sent() { "task-done-streaming" } else { "task-done" });
        self.ctx().poll_timer(0);
        let (rc, outcome) = self.drain(true);
        self.proceed(rc, outcome)
    }

    fn proceed(&mut self, rc: ngx_int_t, outcome: Option<Outcome>) -> After {
        if self.failed_output(rc) {
            self.gone();
        }
        if let Some(o) = outcome {
            return self.finish(o, rc);
        }
        if self.state.client_gone() {
            // One more task: the core sees ClientGone and closes the iterable.
            return self.post();
        }
        if self.backed_up() {
            self.wait_write();
            if self.state.client_gone() {
                return self.post();
            }
            return After::Nothing;
        }
        self.ctx().stop_write_wait();
        self.post()
    }

    fn finish(&mut self, outcome: Outcome, rc: ngx_int_t) -> After {
        self.ctx().stop_write_wait();
        let (head, client) = (self.state.head(), self.state.client());
        let rc = match outcome {
            _ if client == Client::Abandoned => return self.fail(),
            Outcome::Complete if client != Client::Connected => NGX_HTTP_CLIENT_CLOSED_REQUEST as ngx_int_t,
            Outcome::Complete => match head {
                Head::Sent { rc: head_rc, body: false } => head_rc,
                _ => rc,
            },
            Outcome::Failed if head == Head::NotSent => NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
            Outcome::Failed | Outcome::Aborted => {
                // Close the connection, leaving the body incomplete.
                self.req().connection_mut().set_error();
                ERROR
            }
            Outcome::ClientGone if client == Client::TimedOut => NGX_HTTP_REQUEST_TIME_OUT as ngx_int_t,
            Outcome::ClientGone => NGX_HTTP_CLIENT_CLOSED_REQUEST as ngx_int_t,
        };
        self.finalize(rc)
    }

    /// Give up on the request (a panic in an event handler): 500 while the head is not out,
    /// else close the connection. A running task is told the client is gone and the
    /// request ends when it completes.
    pub fn fail(&mut self) -> After {
        self.lose(Client::Abandoned);
        match self.state.task() {
            Task::Running | Task::Finished => After::Nothing,
            _ => {
                if let Some(ctx) = &self.ctx {
                    ctx.stop_write_wait();
                    // No poll timer may fire for a finished request.
                    ctx.poll_timer(0);
                }
                if self.state.head_sent() {
                    // Close the connection, leaving the body incomplete.
                    self.req().connection_mut().set_error();
                    self.finalize(ERROR)
                } else {
                    self.finalize(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
                }
            }
        }
    }

    /// The write event: the client took data (or the send timeout expired).
    pub fn write_ready(&mut self) -> After {
        if self.daemon.is_some() {
            return self.daemon_write_ready();
        }
        if self.req().connection().write_timed_out() {
            self.log(Level::Info, "client timed out while receiving the response");
            self.lose(Client::TimedOut);
            return if self.state.running() { After::Nothing } else { self.post() };
        }
        // No new data: flush what nginx holds.
        let rc = self.ctx().output(None);
        self.release_sent();
        if self.failed_output(rc) {
            self.gone();
            return if self.state.running() { After::Nothing } else { self.post() };
        }
        if self.backed_up() {
            self.wait_write();
            return After::Nothing;
        }
        if self.state.running() {
            return self.drain_running();
        }
        self.proceed(OK, None)
    }

    /// Hand over what a running task produced so far (when the client keeps up).
    fn drain_running(&mut self) -> After {
        if self.state.client_gone() || self.backed_up() || !self.task.shared.lock().has_output() {
            return After::Nothing;
        }
        let (rc, _) = self.drain(false);
        if self.failed_output(rc) {
            self.gone();
        } else if self.backed_up() {
            self.wait_write();
        }
        After::Nothing
    }

    /// The request pool is going away. If the application is still in the middle of its
    /// response (nginx terminated the request between two tasks), one more task that owns
    /// only the Rust side tells the core the client is gone, so the iterable is closed.
    pub fn orphan(&mut self) {
        let running = self.task.job.lock().map(|j| j.exchange.is_some()).unwrap_or(false);
        if !running || self.ctx.is_none() {
            return;
        }
        self.gone();
        match self.dispatcher() {
            Some(d) => d.post(Job::Orphan(self.task.clone())),
            None => self.log(Level::Warning, "cannot post the task that closes a terminated request's iterable"),
        }
    }

    /// The poll timer.
    pub fn poll(&mut self) -> After {
        if self.daemon.is_some() {
            return self.daemon_timer();
        }
        if self.state.task() == Task::RepostPending {
            return self.post();
        }
        if !self.state.running() {
            return After::Nothing;
        }
        self.ctx().poll_timer(POLL_MS);
        self.drain_running()
    }

    // ---- daemon mode (docs/nginx-daemon.md): the same output path, no task ----

    /// The body is read: open the conversation with the group's daemon.
    fn daemon_start(&mut self, mut start: Start) -> After {
        let Some(target) = self.target.take() else { return self.finalize(ERROR) };
        start.meta.app.process_group = Bytes::Owned(target.group.as_bytes().to_vec());
        let data = self.ctx().token() as *mut std::ffi::c_void;
        let log = self.req().connection().log();
        // SAFETY: the client connection's log outlives this request; the context (data)
        // lives in the request pool, whose cleanup drops this state, and with it the
        // daemon connection, first.
        let conn = unsafe { DaemonConn::new(target, &start.meta, start.body, log, data, super::DAEMON_EVENT) };
        match conn {
            Ok(d) => {
                self.daemon = Some(d);
                self.daemon_run()
            }
            Err(e) => self.daemon_error(e),
        }
    }

    /// Take the daemon's events as far as they go.
    fn daemon_run(&mut self) -> After {
        let mut items: Vec<Item> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let paused = self.paused;
            let Some(d) = self.daemon.as_mut() else { return After::Nothing };
            let next = match d.pump(paused) {
                Ok(n) => n,
                Err(e) => return self.daemon_error(e),
            };
            let ev = match next {
                Next::Wait(ms) => {
                    if let Some(after) = self.daemon_push(std::mem::take(&mut items), false) {
                        return after;
                    }
                    // The timer measures the daemon's silence; the client's pace has its
                    // own (send_timeout) while we wait for it.
                    self.ctx().poll_timer(if self.paused { 0 } else { ms as ngx_msec_t });
                    return After::Nothing;
                }
                Next::Event(ev) => ev,
            };
            match ev {
                Event::Head(h) => {
                    let rc = self.send_head(&h);
                    if self.failed_output(rc) {
                        self.gone();
                        return self.daemon_finish(Outcome::ClientGone, rc);
                    }
                }
                // An empty chunk (a flush, or a generator's b"") carries nothing: nginx
                // refuses zero-size memory buffers, and the next push flushes anyway.
                Event::Data(v, _) if v.is_empty() => {}
                Event::Data(v, _) => {
                    bytes += v.len();
                    items.push(Item::Data(v));
                }
                Event::File { fd, offset, len, .. } => items.push(Item::File { fd, offset, len }),
                Event::End => {
                    let rc = if self.state.delivers_body() { self.push(std::mem::take(&mut items), true) } else { OK };
                    return self.daemon_finish(Outcome::Complete, rc);
                }
                Event::Abort => {
                    // What the application produced goes out before the truncation shows.
                    if let Some(after) = self.daemon_push(std::mem::take(&mut items), false) {
                        return after;
                    }
                    return self.daemon_finish(Outcome::Aborted, ERROR);
                }
                Event::Failed => return self.daemon_finish(Outcome::Failed, OK),
                Event::Accepted | Event::Read(_) => {}
            }
            if bytes >= 256 * 1024 || items.len() >= 64 {
                bytes = 0;
                if let Some(after) = self.daemon_push(std::mem::take(&mut items), false) {
                    return after;
                }
            }
        }
    }

    /// Hand response data to nginx; pause the daemon while the client lags.
    fn daemon_push(&mut self, items: Vec<Item>, last: bool) -> Option<After> {
        if items.is_empty() || !self.state.delivers_body() {
            return None;
        }
        let rc = self.push(items, last);
        if self.failed_output(rc) {
            self.gone();
            return Some(self.daemon_finish(Outcome::ClientGone, rc));
        }
        if self.backed_up() {
            self.paused = true;
            self.wait_write();
            if self.state.client_gone() {
                return Some(self.daemon_finish(Outcome::ClientGone, rc));
            }
        }
        None
    }

    /// The client's connection is writable again (or its send timeout expired).
    fn daemon_write_ready(&mut self) -> After {
        if self.req().connection().write_timed_out() {
            self.log(Level::Info, "client timed out while receiving the response");
            self.lose(Client::TimedOut);
            return self.daemon_finish(Outcome::ClientGone, OK);
        }
        let rc = self.ctx().output(None);
        self.release_sent();
        if self.failed_output(rc) {
            self.gone();
            return self.daemon_finish(Outcome::ClientGone, rc);
        }
        if self.backed_up() {
            self.wait_write();
            return After::Nothing;
        }
        self.ctx().stop_write_wait();
        self.paused = false;
        self.daemon_run()
    }

    /// An event of the daemon connection.
    pub fn daemon_event(&mut self) -> After {
        self.daemon_run()
    }

    /// The poll timer: a connection retry is due, or the daemon stayed silent too long.
    fn daemon_timer(&mut self) -> After {
        if let Some(e) = self.daemon.as_ref().and_then(|d| d.expired()) {
            return self.daemon_error(e);
        }
        self.daemon_run()
    }

    /// The end of a daemon request: close its connection (a daemon still writing gets
    /// EPIPE and closes the application's iterable), then end as embedded mode does.
    fn daemon_finish(&mut self, outcome: Outcome, rc: ngx_int_t) -> After {
        // A complete response (END) leaves the connection ready for the next request.
        match self.daemon.take() {
            Some(d) if outcome == Outcome::Complete => d.keep(),
            d => drop(d),
        }
        self.ctx().poll_timer(0);
        self.finish(outcome, rc)
    }

    /// The daemon could not be reached or failed: the status while no head went out,
    /// else the connection closes with the response truncated.
    fn daemon_error(&mut self, e: ProxyError) -> After {
        let group = self.daemon.as_ref().map(|d| d.group().to_string()).unwrap_or_default();
        self.log(Level::Error, &format!("process group {group:?}: {e}"));
        self.daemon = None;
        self.ctx().poll_timer(0);
        self.ctx().stop_write_wait();
        if self.state.head_sent() {
            self.req().connection_mut().set_error();
            return self.finalize(ERROR);
        }
        self.finalize(e.status() as ngx_int_t)
    }
}

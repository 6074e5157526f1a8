//! The core's server interfaces for nginx, all of them owned data: the thread-pool thread
//! that runs Python never touches an nginx structure.
//!
//! - [`NgxBody`] reads the request body nginx already read (memory copies, or `pread` on a
//!   dup of the temp file's descriptor).
//! - [`NgxSink`] collects the response into a [`Batch`] that the event loop takes and
//!   pushes through the output filters (see `request.rs`).
//! - [`CycleLog`] writes to the worker's error log, as nginx's own thread pool does.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::core::head::ResponseHead;
use crate::core::response::Outcome;
use crate::core::{Level, LogSink, RequestBody, ResponseSink, SharedBytes, SinkError, WriteFlags};
use crate::ffi::ngx::*;

/// Bytes a batch may hold before a writer waits for the event loop to take them. Bounds
/// the memory of the legacy `write()` callable (and of one huge body item, plus itself).
pub const WRITE_LIMIT: usize = 1024 * 1024;

/// Small writes are appended to the previous buffer up to this size.
const COALESCE: usize = 64 * 1024;

fn ngx_level(level: Level) -> ngx_uint_t {
    (match level {
        Level::Critical => NGX_LOG_CRIT,
        Level::Error => NGX_LOG_ERR,
        Level::Warning => NGX_LOG_WARN,
        Level::Notice => NGX_LOG_NOTICE,
        Level::Info => NGX_LOG_INFO,
        Level::Debug => NGX_LOG_DEBUG,
    }) as ngx_uint_t
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_context_drops_the_action() {
        let t = b" while reading client request body, client: 127.0.0.1, server: a, request: \"GET / HTTP/1.1\"";
        assert_eq!(super::request_context(t), ", client: 127.0.0.1, server: a, request: \"GET / HTTP/1.1\"");
        assert_eq!(super::request_context(b", client: ::1"), ", client: ::1");
        assert_eq!(super::request_context(b""), "");
    }
}

/// The worker's error log (`cycle->log`), usable from any thread.
pub struct CycleLog {
    log: *mut ngx_log_t,
}

// SAFETY: the cycle log of a worker lives as long as the worker process; writing to it
// from pool threads is what nginx's thread pool itself does (ngx_log_error only formats
// into a stack buffer and write()s to the log files).
unsafe impl Send for CycleLog {}
// SAFETY: see Send; the log is never modified through this pointer.
unsafe impl Sync for CycleLog {}

impl CycleLog {
    /// # Safety
    /// `log` must be the worker cycle's log, valid for the life of the process.
    pub unsafe fn new(log: *mut ngx_log_t) -> CycleLog {
        CycleLog { log }
    }

    /// The files this log writes to (descriptor and path), `error_log` after `error_log`;
    /// `stderr` and syslog targets are left out.
    pub fn files(&self) -> Vec<(std::os::fd::RawFd, std::path::PathBuf)> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Vec::new();
        let mut log = self.log;
        while !log.is_null() {
            // SAFETY: `log` is the cycle's log or a `next` of it: nginx keeps the chain
            // for the life of the cycle (see `new`), and nothing here modifies it.
            let l = unsafe { &*log };
            if !l.file.is_null() {
                // SAFETY: a log's `file` points into the cycle's open files, as long-lived.
                let f = unsafe { &*l.file };
                if f.name.len > 0 && !f.name.data.is_null() {
                    // SAFETY: an ngx_str_t's data holds `len` bytes.
                    let name = unsafe { std::slice::from_raw_parts(f.name.data, f.name.len) };
                    if name.first() == Some(&b'/') {
                        out.push((f.fd, std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name))));
                    }
                }
            }
            log = l.next;
        }
        out
    }
}

impl LogSink for CycleLog {
    fn log(&self, level: Level, msg: &str) {
        // SAFETY: see the Send impl; the message is passed with its length ("%*s").
        unsafe { ngx_http_oxwsgi_log(self.log, ngx_level(level), msg.as_ptr() as *mut u_char, msg.len()) }
    }
}

/// The log of one request: every line ends with nginx's request context (`, client: …,
/// server: …, request: "…"`), as nginx's own lines for the request do. The context is
/// captured on the event loop when the request starts (pool threads must not touch `r`).
pub struct RequestLog {
    inner: Arc<dyn LogSink>,
    tail: String,
}

impl RequestLog {
    pub fn new(inner: Arc<dyn LogSink>, tail: String) -> RequestLog {
        RequestLog { inner, tail }
    }
}

impl LogSink for RequestLog {
    fn log(&self, level: Level, msg: &str) {
        self.inner.log(level, &format!("{msg}{}", self.tail));
    }
}

/// The part of nginx's log-handler text that names the request: from `, client: ` on (a
/// ` while <action>` before it describes what the connection did when it was captured).
pub fn request_context(handler_text: &[u8]) -> String {
    let at = handler_text.windows(10).position(|w| w == b", client: ").unwrap_or(0);
    String::from_utf8_lossy(&handler_text[at..]).into_owned()
}

/// The request body memory nginx holds (its buffers, in the request's and connection's
/// pools), lent to the task threads instead of copied (a 1 MiB upload was copied once
/// more on the event loop, into memory allocated, page-faulted and unmapped again per
/// request). nginx neither writes nor frees those buffers while the request lives, and
/// jobs only run for a live request (`r->main->blocked`); but an orphan job (the iterable
/// of a terminated request being closed) runs after the pool is gone, so the owner
/// revokes the loan when the request's state is freed, and reads after that fail.
pub struct BodyLoan {
    live: RwLock<bool>,
}

/// The request's side of a [`BodyLoan`]: revokes it when dropped (the request pool's
/// cleanup frees the request state, before nginx frees or reuses the buffers).
pub struct LoanOwner(Arc<BodyLoan>);

impl LoanOwner {
    pub fn new() -> LoanOwner {
        LoanOwner(Arc::new(BodyLoan { live: RwLock::new(true) }))
    }

    pub fn loan(&self) -> Arc<BodyLoan> {
        self.0.clone()
    }
}

impl Drop for LoanOwner {
    fn drop(&mut self) {
        // Waits for a read in progress (none in practice: no job runs during the cleanup).
        *self.0.live.write().unwrap_or_else(|p| p.into_inner()) = false;
    }
}

/// `len` bytes at `ptr` in an nginx buffer of the request: valid while the loan is live.
pub struct PoolBytes {
    ptr: *const u8,
    len: usize,
    loan: Arc<BodyLoan>,
}

// SAFETY: the bytes are only read, under the loan's read lock, which the event loop
// takes for writing before the memory can be freed or reused (LoanOwner::drop); nginx
// does not write to a request's body buffers once the body is read.
unsafe impl Send for PoolBytes {}
// SAFETY: as for Send: shared access only reads the bytes, under the loan's read lock.
unsafe impl Sync for PoolBytes {}

impl PoolBytes {
    /// # Safety
    /// `mem` must be a body buffer of the request whose state holds the loan's
    /// [`LoanOwner`], read completely (nginx no longer writes it).
    pub unsafe fn new(mem: &[u8], loan: Arc<BodyLoan>) -> PoolBytes {
        PoolBytes { ptr: mem.as_ptr(), len: mem.len(), loan }
    }

    /// Copy `[off, off + buf.len())` (within the bytes) into `buf`.
    fn copy_to(&self, off: usize, buf: &mut [u8]) -> Result<(), String> {
        let live = self.loan.live.read().unwrap_or_else(|p| p.into_inner());
        if !*live {
            return Err("the request is over: its body is gone".into());
        }
        assert!(off + buf.len() <= self.len, "read past a body buffer");
        // SAFETY: the loan is live (held for the copy), so the buffer is nginx's, unchanged
        // and not freed (see the Send impl); [off, off + len) lies within it (asserted).
        let src = unsafe { std::slice::from_raw_parts(self.ptr.add(off), buf.len()) };
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// One piece of the request body.
pub enum Part {
    /// Memory of an nginx buffer, lent (see [`BodyLoan`]).
    Pool(PoolBytes),
    /// `[pos, end)` of the request body temp file.
    File { fd: Arc<OwnedFd>, pos: u64, end: u64 },
}

/// The request body as nginx read it (in memory or in its temp file).
pub struct NgxBody {
    parts: VecDeque<Part>,
    /// Read position in the first `Part::Pool`.
    off: usize,
}

impl NgxBody {
    pub fn new(parts: VecDeque<Part>) -> NgxBody {
        NgxBody { parts, off: 0 }
    }
}

impl RequestBody for NgxBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        while let Some(part) = self.parts.front_mut() {
            match part {
                Part::Pool(p) => {
                    let n = (p.len - self.off).min(buf.len());
                    p.copy_to(self.off, &mut buf[..n])?;
                    self.off += n;
                    if self.off == p.len {
                        self.parts.pop_front();
                        self.off = 0;
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
                Part::File { fd, pos, end } => {
                    let want = ((*end - *pos) as usize).min(buf.len());
                    if want == 0 && *pos < *end {
                        return Ok(0);
                    }
                    // SAFETY: buf is writable for `want` bytes; fd is our own dup of the
                    // temp file, open until the body is dropped.
                    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), want, *pos as libc::off_t) };
                    if n < 0 {
                        return Err(format!("reading the request body temp file: {}", std::io::Error::last_os_error()));
                    }
                    if n == 0 && want > 0 {
                        return Err("the request body temp file is shorter than the body".into());
                    }
                    *pos += n as u64;
                    if *pos >= *end {
                        self.parts.pop_front();
                    }
                    if n > 0 {
                        return Ok(n as usize);
                    }
                }
            }
        }
        Ok(0)
    }
}

/// A piece of response body produced by the application.
pub enum Item {
    Data(Vec<u8>),
    /// A `bytes` object of the application's, sent from its own memory (no copy).
    Shared(SharedBytes),
    File {
        fd: OwnedFd,
        offset: u64,
        len: u64,
    },
}

/// Memory an nginx buffer points into, held until nginx has sent it.
pub enum Held {
    /// Ours: goes back to the batch for reuse.
    Owned(Vec<u8>),
    /// The application's: dropped without the GIL, so pyo3 decrefs it at the next attach.
    Shared(SharedBytes),
}

impl Held {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Held::Owned(v) => v,
            Held::Shared(s) => s.as_slice(),
        }
    }
}

/// What the application produced and the event loop has not taken yet.
#[derive(Default)]
pub struct Batch {
    pub head: Option<ResponseHead>,
    pub items: Vec<Item>,
    /// Bytes of `Item::Data` in `items`.
    pub bytes: usize,
    /// The end of the body is in `items`.
    pub last: bool,
    /// The response must be cut short (the core aborted it).
    pub aborted: bool,
    /// Set by the event loop: the client is gone, refuse further data.
    pub client_gone: bool,
    /// Set by the task when the exchange is over.
    pub outcome: Option<Outcome>,
    /// A writer waits for the event loop to take the batch (`Shared::notify` wakes it).
    writer_waits: bool,
    /// Buffers nginx has finished sending, for the sink to fill again: a streamed
    /// response then reuses a few buffers instead of allocating (and page-faulting) a fresh
    /// one for every batch.
    pub spare: Vec<Vec<u8>>,
}

/// How many sent buffers a request keeps for reuse.
const SPARE_BUFFERS: usize = 8;

impl Batch {
    /// Keep a buffer nginx has finished with, for the next body data.
    pub fn recycle(&mut self, mut v: Vec<u8>) {
        if v.capacity() >= COALESCE && self.spare.len() < SPARE_BUFFERS {
            v.clear();
            self.spare.push(v);
        }
    }

    /// A buffer holding `data`, with room to coalesce more after it unless it is the last
    /// data of the response (a small response must not cost a 64 KiB allocation, which
    /// glibc hands back to the kernel and faults in again on the next request).
    fn buffer_with(&mut self, data: &[u8], last: bool) -> Vec<u8> {
        let mut v = match self.spare.pop() {
            Some(v) => v,
            None if last => Vec::with_capacity(data.len()),
            None => Vec::with_capacity(COALESCE.max(data.len())),
        };
        v.extend_from_slice(data);
        v
    }
}

impl Batch {
    pub fn has_output(&self) -> bool {
        self.head.is_some() || !self.items.is_empty() || self.last || self.aborted
    }
}

/// The batch shared between the task thread (producer) and the event loop (consumer).
#[derive(Default)]
pub struct Shared {
    batch: Mutex<Batch>,
    /// Signalled when the loop took the batch or the client went away.
    drained: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake a writer waiting for the batch to be taken; `b` is the batch's guard, released
    /// here. Without a waiter this costs nothing (a condvar's notify is a syscall).
    pub fn notify(&self, b: MutexGuard<'_, Batch>) {
        let waits = b.writer_waits;
        drop(b);
        if waits {
            self.drained.notify_all();
        }
    }
}

/// The response sink of one request: appends to the shared batch. Never blocks, except
/// when the batch already holds [`WRITE_LIMIT`] bytes: then it waits (without the GIL)
/// until the event loop has taken them, which it does only while the client keeps up.
pub struct NgxSink {
    shared: Arc<Shared>,
}

impl NgxSink {
    pub fn new(shared: Arc<Shared>) -> NgxSink {
        NgxSink { shared }
    }

    /// The batch, once it has room: waits while it holds [`WRITE_LIMIT`] bytes (shared
    /// items count too: they keep the application's memory alive until sent).
    fn room(&self) -> Result<MutexGuard<'_, Batch>, SinkError> {
        let mut b = self.shared.lock();
        while b.bytes >= WRITE_LIMIT && !b.client_gone {
            b.writer_waits = true;
            b = self.shared.drained.wait(b).unwrap_or_else(|p| p.into_inner());
            b.writer_waits = false;
        }
        if b.client_gone {
            return Err(SinkError::ClientGone);
        }
        Ok(b)
    }
}

impl ResponseSink for NgxSink {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        let mut b = self.shared.lock();
        if b.client_gone {
            return Err(SinkError::ClientGone);
        }
        b.head = Some(head.clone());
        Ok(())
    }

    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        let mut b = self.room()?;
        if !data.is_empty() {
            match b.items.last_mut() {
                Some(Item::Data(v)) if v.len() + data.len() <= v.capacity().max(COALESCE) => v.extend_from_slice(data),
                _ => {
                    let v = b.buffer_with(data, flags.last);
                    b.items.push(Item::Data(v));
                }
            }
            b.bytes += data.len();
        }
        if flags.last {
            b.last = true;
        }
        Ok(())
    }

    fn shares(&self) -> bool {
        // The event loop sends after write() returned, so write() copies; a bytes object
        // can be kept instead.
        true
    }

    fn write_shared(&mut self, data: SharedBytes, flags: WriteFlags) -> Result<(), SinkError> {
        let mut b = self.room()?;
        if !data.is_empty() {
            b.bytes += data.len();
            b.items.push(Item::Shared(data));
        }
        if flags.last {
            b.last = true;
        }
        Ok(())
    }

    fn may_block(&self, _len: usize, _flags: WriteFlags) -> bool {
        // Only a full batch makes write() wait; the loop only ever empties it.
        self.shared.lock().bytes >= WRITE_LIMIT
    }

    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        // SAFETY: the core passes the descriptor of the application's open file, valid
        // during this call; we keep our own duplicate.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .map_err(|e| SinkError::Failed(format!("dup of the file_wrapper descriptor: {e}")))?;
        let mut b = self.shared.lock();
        if b.client_gone {
            return Err(SinkError::ClientGone);
        }
        b.items.push(Item::File { fd, offset, len });
        if flags.last {
            b.last = true;
        }
        Ok(true)
    }

    fn abort(&mut self) {
        self.shared.lock().aborted = true;
    }
}

//! The core's server interfaces implemented on httpd: request body from the input filters,
//! response to the output filters on one reused brigade, and the error log.
//!
//! Safe code over the wrappers of [`super::httpd`].

use std::ffi::CString;
use std::sync::Mutex;

use super::httpd::{Brigade, Read, RequestHandle, SendFile, Server};
use crate::core::head::ResponseHead;
use crate::core::{Level, LogSink, RequestBody, ResponseSink, SinkError, WriteFlags};
use crate::ffi::httpd::{OXWSGI_W_EOS, OXWSGI_W_FLUSH, OXWSGI_W_NO_SENDFILE};

/// The error log of a server (virtual host), usable from any thread.
pub struct ServerLog {
    s: &'static Server,
}

impl ServerLog {
    /// `s` lives in the configuration pool, which outlives every hook and child thread
    /// that logs through it.
    pub fn new(s: &'static Server) -> ServerLog {
        ServerLog { s }
    }
}

impl LogSink for ServerLog {
    fn log(&self, level: Level, msg: &str) {
        self.s.log(level, msg)
    }
}

/// The error log of one request (adds the client address). Once the request is over the
/// handle is dropped and messages fall back to the server log, because the application
/// may keep `wsgi.errors` longer than the request lives.
pub struct RequestLog {
    r: Mutex<Option<RequestHandle>>,
    server: ServerLog,
}

impl RequestLog {
    pub fn new(r: RequestHandle) -> RequestLog {
        let server = ServerLog::new(r.get().server_static());
        RequestLog { r: Mutex::new(Some(r)), server }
    }

    /// The request is finished: stop using it.
    pub fn expire(&self) {
        *self.r.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl LogSink for RequestLog {
    fn log(&self, level: Level, msg: &str) {
        match &*self.r.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(r) => r.get().log(level, msg),
            None => self.server.log(level, msg),
        }
    }
}

/// Reads the request body through httpd's input filters (de-chunking, 100-continue,
/// LimitRequestBody included).
pub struct ApacheBody {
    r: RequestHandle,
    bb: Brigade,
    eos: bool,
}

impl ApacheBody {
    pub fn new(r: RequestHandle) -> ApacheBody {
        let bb = r.get().brigade();
        ApacheBody { r, bb, eos: false }
    }
}

impl RequestBody for ApacheBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        while !self.eos && !buf.is_empty() {
            match self.r.get().read(&self.bb, buf) {
                Read::Error => return Err("the client connection failed or sent a malformed body".into()),
                Read::Data { got, eos } => {
                    self.eos = eos;
                    if got > 0 {
                        return Ok(got);
                    }
                }
            }
        }
        Ok(0)
    }
}

/// Sends the response through httpd's output filters.
pub struct ApacheSink {
    r: RequestHandle,
    bb: Brigade,
}

impl ApacheSink {
    pub fn new(r: RequestHandle) -> ApacheSink {
        let bb = r.get().brigade();
        ApacheSink { r, bb }
    }

    fn failure(&self) -> SinkError {
        if self.r.get().connection().aborted() {
            SinkError::ClientGone
        } else {
            SinkError::Failed("the output filters returned an error".into())
        }
    }
}

/// A header name or value as a C string of latin-1 bytes (what WSGI's native strings
/// stand for); NULs, which the core refuses anyway, are dropped.
fn latin1(s: &str) -> CString {
    CString::new(latin1_bytes(s).into_owned()).expect("NULs dropped")
}

/// [`latin1`] without the terminating NUL, borrowed when `s` is ASCII without NULs (the
/// usual status line and content type: no allocation).
fn latin1_bytes(s: &str) -> std::borrow::Cow<'_, [u8]> {
    if s.bytes().all(|b| b.is_ascii() && b != 0) {
        return std::borrow::Cow::Borrowed(s.as_bytes());
    }
    std::borrow::Cow::Owned(s.chars().map(|c| c as u32 as u8).filter(|&b| b != 0).collect())
}

/// Chunks this large reach the client without a FLUSH bucket (see `write`).
const NO_FLUSH_NEEDED: usize = 4096;

/// Writes up to this size (without FLUSH) keep the GIL (see `may_block`).
const SMALL_WRITE: usize = 16 * 1024;

fn flag_bits(flags: WriteFlags) -> i32 {
    (if flags.flush { OXWSGI_W_FLUSH } else { 0 } | if flags.last { OXWSGI_W_EOS } else { 0 }) as i32
}

impl ResponseSink for ApacheSink {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        let r = self.r.get();
        r.set_status(head.status, &latin1_bytes(&head.status_line));
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case("content-type") {
                r.set_content_type(&latin1_bytes(value));
            } else if name.eq_ignore_ascii_case("content-length") {
                r.set_content_length(head.content_length.unwrap_or(0));
            } else {
                r.add_header_out(&latin1(name), &latin1(value));
            }
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        let mut flags = flags;
        if data.len() >= NO_FLUSH_NEEDED {
            // httpd's core output filter writes a brigade of 4 KiB or more at once
            // (THRESHOLD_MIN_WRITE), so a FLUSH would only force a blocking write per
            // chunk. Small chunks (events of a server-sent stream) keep their FLUSH so
            // they are not held back.
            flags.flush = false;
        }
        if self.r.get().write(&self.bb, data, flag_bits(flags)) { Ok(()) } else { Err(self.failure()) }
    }

    fn may_block(&self, len: usize, flags: WriteFlags) -> bool {
        // httpd's core output filter writes without blocking and sets aside what the
        // socket does not take, blocking only for a FLUSH bucket or once about 64 KiB are
        // pending (THRESHOLD_MAX_BUFFER in server/core_filters.c). A small unflushed
        // write -- in practice the whole body of a small response -- never blocks.
        flags.flush || len > SMALL_WRITE
    }

    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        let mut bits = flag_bits(flags);
        if !super::compat::enable_sendfile(self.r.get()) {
            bits |= OXWSGI_W_NO_SENDFILE as i32;
        }
        match self.r.get().send_file(&self.bb, fd, offset, len, bits) {
            SendFile::Sent => Ok(true),
            SendFile::Unsupported => Ok(false),
            SendFile::Failed => Err(self.failure()),
        }
    }

    fn abort(&mut self) {
        self.r.get().abort(&self.bb);
    }
}

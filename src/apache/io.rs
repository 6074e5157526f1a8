//! The core's server interfaces implemented on httpd: request body from the input filters,
//! response to the output filters on one reused brigade, and the error log.

use std::ffi::{CString, c_char};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::core::head::ResponseHead;
use crate::core::{Level, LogSink, RequestBody, ResponseSink, SinkError, WriteFlags};
use crate::ffi::httpd::*;

fn aplog_level(level: Level) -> i32 {
    (match level {
        Level::Critical => APLOG_CRIT,
        Level::Error => APLOG_ERR,
        Level::Warning => APLOG_WARNING,
        Level::Notice => APLOG_NOTICE,
        Level::Info => APLOG_INFO,
        Level::Debug => APLOG_DEBUG,
    }) as i32
}

/// A log message as a C string (NUL bytes would cut it short; replace them).
fn c_msg(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).expect("NULs replaced")
}

/// The error log of a server (virtual host), usable from any thread.
pub struct ServerLog {
    s: *const server_rec,
}

// SAFETY: server_rec lives in the configuration pool, which outlives every child thread;
// ap_log_error is thread-safe.
unsafe impl Send for ServerLog {}
// SAFETY: as above; only read.
unsafe impl Sync for ServerLog {}

impl ServerLog {
    pub fn new(s: *const server_rec) -> ServerLog {
        ServerLog { s }
    }
}

impl LogSink for ServerLog {
    fn log(&self, level: Level, msg: &str) {
        let m = c_msg(msg);
        // SAFETY: `s` is a live server_rec (see Send impl); the shim logs "%s", m.
        unsafe { oxwsgi_ap_log_server(self.s, aplog_level(level), m.as_ptr()) }
    }
}

/// The error log of one request (adds the client address). Once the request is over the
/// pointer is cleared and messages fall back to the server log, because the application
/// may keep `wsgi.errors` longer than the request lives.
pub struct RequestLog {
    r: AtomicPtr<request_rec>,
    server: ServerLog,
}

impl RequestLog {
    pub fn new(r: *mut request_rec, s: *const server_rec) -> RequestLog {
        RequestLog { r: AtomicPtr::new(r), server: ServerLog::new(s) }
    }

    /// The request is finished: stop using it.
    pub fn expire(&self) {
        self.r.store(std::ptr::null_mut(), Ordering::Release);
    }
}

impl LogSink for RequestLog {
    fn log(&self, level: Level, msg: &str) {
        let r = self.r.load(Ordering::Acquire);
        if r.is_null() {
            return self.server.log(level, msg);
        }
        let m = c_msg(msg);
        // SAFETY: `r` is non-null only while the handler runs (expire() is called before it
        // returns), so the request is alive; ap_log_rerror may be called from any thread.
        unsafe { oxwsgi_ap_log_request(r, aplog_level(level), m.as_ptr()) }
    }
}

/// Reads the request body through httpd's input filters (de-chunking, 100-continue,
/// LimitRequestBody included).
pub struct ApacheBody {
    r: *mut request_rec,
    bb: *mut apr_bucket_brigade,
    eos: bool,
}

// SAFETY: the body is only used on the handler's thread, during the request (the core
// drops it when the request ends); Send/Sync are needed because Python objects hold it.
unsafe impl Send for ApacheBody {}
// SAFETY: see Send; every access is through &mut.
unsafe impl Sync for ApacheBody {}

impl ApacheBody {
    /// # Safety
    /// `r` must be the live request being handled on this thread.
    pub unsafe fn new(r: *mut request_rec) -> ApacheBody {
        // SAFETY: r is live (caller); the brigade is allocated from its pool.
        let bb = unsafe { oxwsgi_ap_brigade(r) };
        ApacheBody { r, bb, eos: false }
    }
}

impl RequestBody for ApacheBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        while !self.eos && !buf.is_empty() {
            let mut got = 0usize;
            // SAFETY: r and bb are live for the request; buf is writable for buf.len().
            let rc = unsafe { oxwsgi_ap_read(self.r, self.bb, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut got) };
            match rc as u32 {
                OXWSGI_READ_EOS => self.eos = true,
                OXWSGI_READ_OK => {}
                _ => return Err("the client connection failed or sent a malformed body".into()),
            }
            if got > 0 {
                return Ok(got);
            }
        }
        Ok(0)
    }
}

/// Sends the response through httpd's output filters.
pub struct ApacheSink {
    r: *mut request_rec,
    bb: *mut apr_bucket_brigade,
}

// SAFETY: as ApacheBody: used on the handler's thread during the request only.
unsafe impl Send for ApacheSink {}
// SAFETY: every access is through &mut.
unsafe impl Sync for ApacheSink {}

impl ApacheSink {
    /// # Safety
    /// `r` must be the live request being handled on this thread.
    pub unsafe fn new(r: *mut request_rec) -> ApacheSink {
        // SAFETY: r is live (caller).
        let bb = unsafe { oxwsgi_ap_brigade(r) };
        ApacheSink { r, bb }
    }

    fn failure(&self) -> SinkError {
        // SAFETY: r and its connection are live during the request.
        if unsafe { (*(*self.r).connection).aborted } != 0 {
            SinkError::ClientGone
        } else {
            SinkError::Failed("the output filters returned an error".into())
        }
    }

    /// A copy of `s` in the request pool, as latin-1 bytes (header values are latin-1).
    fn pool_str(&self, s: &str) -> *const c_char {
        let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).filter(|&b| b != 0).collect();
        // SAFETY: apr_pstrmemdup copies len bytes and NUL-terminates, in the live pool.
        unsafe { apr_pstrmemdup((*self.r).pool, bytes.as_ptr() as *const c_char, bytes.len()) }
    }
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
        let r = self.r;
        // SAFETY: r is live; every string handed to httpd is copied into its pool first.
        unsafe {
            (*r).status = head.status as i32;
            (*r).status_line = self.pool_str(&head.status_line);
            for (name, value) in &head.headers {
                if name.eq_ignore_ascii_case("content-type") {
                    ap_set_content_type(r, self.pool_str(value));
                } else if name.eq_ignore_ascii_case("content-length") {
                    ap_set_content_length(r, head.content_length.unwrap_or(0) as apr_off_t);
                } else {
                    apr_table_addn((*r).headers_out, self.pool_str(name), self.pool_str(value));
                }
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
        // SAFETY: r and bb are live; data outlives the call (transient bucket: filters
        // that keep it copy it).
        let rc =
            unsafe { oxwsgi_ap_write(self.r, self.bb, data.as_ptr() as *const c_char, data.len(), flag_bits(flags)) };
        if rc == 0 { Ok(()) } else { Err(self.failure()) }
    }

    fn may_block(&self, len: usize, flags: WriteFlags) -> bool {
        // httpd's core output filter writes without blocking and sets aside what the
        // socket does not take, blocking only for a FLUSH bucket or once about 64 KiB are
        // pending (THRESHOLD_MAX_BUFFER in server/core_filters.c). A small unflushed
        // write -- in practice the whole body of a small response -- never blocks.
        flags.flush || len > SMALL_WRITE
    }

    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        // SAFETY: r and bb are live; the shim dups fd, so the bucket does not depend on
        // the application's file object staying open.
        let rc = unsafe {
            oxwsgi_ap_send_file(self.r, self.bb, fd, offset as apr_off_t, len as apr_off_t, flag_bits(flags))
        };
        match rc {
            0 => Ok(true),
            -2 => Ok(false),
            _ => Err(self.failure()),
        }
    }

    fn abort(&mut self) {
        // SAFETY: r and bb are live.
        unsafe {
            oxwsgi_ap_abort(self.r, self.bb);
        }
    }
}

//! The server-agnostic WSGI engine.
//!
//! A server adapter gives the core a [`RequestBody`] to read the request body from, a
//! [`ResponseSink`] to send the response to and a [`LogSink`] for the error log, builds the
//! environ with [`environ::EnvironBuilder`], and drives the application with
//! [`response::Exchange`]. Nothing here knows about Apache or nginx, so the same code
//! serves both (and, later, a daemon process behind a socket).
//!
//! Threading contract: every method that takes a `Python<'py>` runs with the GIL held;
//! the core releases it (`py.detach`) around every call into `RequestBody::read`,
//! `ResponseSink::write` and `ResponseSink::send_file`, which may block.

#![forbid(unsafe_code)]

pub mod environ;
pub mod errors;
pub mod exit;
pub mod file_wrapper;
pub mod head;
pub mod input;
pub mod interp;
pub mod log;
pub mod modpython;
pub mod modwsgi_module;
pub mod proxy;
pub mod request;
pub mod response;
pub mod runtime;
pub mod script;
pub mod start_response;
pub mod worker;

pub use crate::ffi::shared_bytes::SharedBytes;
pub use log::{Level, LogSink};

/// The request body, read on demand by `wsgi.input`.
/// `Sync` only because Python objects must be shareable; the core calls it through `&mut`.
pub trait RequestBody: Send + Sync {
    /// Read up to `buf.len()` bytes, blocking as needed; `Ok(0)` means the end of the body.
    /// Called without the GIL.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String>;
}

/// A request without a body.
pub struct EmptyBody;

impl RequestBody for EmptyBody {
    fn read(&mut self, _buf: &mut [u8]) -> Result<usize, String> {
        Ok(0)
    }
}

/// Why a sink refused data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The client closed the connection; nothing more can be sent.
    ClientGone,
    /// Anything else (the message goes to the error log).
    Failed(String),
}

/// Hints for [`ResponseSink::write`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteFlags {
    /// Push the data to the client now (streamed bodies).
    pub flush: bool,
    /// This is the last data of the response.
    pub last: bool,
}

/// Where the response goes.
/// `Sync` only because Python objects must be shareable; the core calls it through `&mut`.
pub trait ResponseSink: Send + Sync {
    /// The status line and headers are final. Called with the GIL held, right before the
    /// first body data (or the end of an empty body); must not block.
    fn send_head(&mut self, head: &head::ResponseHead) -> Result<(), SinkError>;
    /// Send body data. Called without the GIL when [`ResponseSink::may_block`] says the
    /// call may block until the client takes the data.
    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError>;
    /// Whether `write(data, flags)` of `len` bytes can block. Releasing and re-taking the
    /// GIL costs a thread hand-off when other threads wait for it, so the core keeps the
    /// GIL across writes the server is known to buffer without blocking.
    fn may_block(&self, _len: usize, _flags: WriteFlags) -> bool {
        true
    }
    /// Whether the sink copies what `write` gets and would rather keep a `bytes` object
    /// instead ([`ResponseSink::write_shared`]): nginx's, whose event loop sends later.
    fn shares(&self) -> bool {
        false
    }
    /// `write` of a body item that is a Python `bytes` object, for a sink that
    /// [`shares`](ResponseSink::shares): it keeps the reference until the data is sent.
    /// Same GIL and blocking rules as `write` (the core asks `may_block` first).
    fn write_shared(&mut self, data: SharedBytes, flags: WriteFlags) -> Result<(), SinkError> {
        self.write(data.as_slice(), flags)
    }
    /// Send `len` bytes of the regular file `fd` from `offset` (sendfile), or answer
    /// `Ok(false)` to make the core read and write the file itself. Called without the GIL.
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError>;
    /// The response cannot be completed after its head was sent (app error, short body):
    /// make the truncation visible to the client (no final chunk, close the connection).
    fn abort(&mut self);
}

#[cfg(test)]
pub(crate) mod tests;

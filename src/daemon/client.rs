//! The server side of daemon mode: connect to a group's socket, forward one request, relay
//! the response into the server's own sink.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::core::request::RequestMeta;
use crate::core::response::Outcome;
use crate::core::{RequestBody, ResponseSink};

/// How long the server side waits for the daemon.
#[derive(Clone, Debug)]
pub struct ClientTimeouts {
    /// connect-timeout: how long to keep trying to connect.
    pub connect: Duration,
    /// socket-timeout: per read/write on the daemon socket.
    pub socket: Duration,
    /// queue-timeout: how long a request may wait for a daemon thread.
    pub queue: Option<Duration>,
}

/// Why a request could not be proxied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// No daemon could be reached within the connect timeout: answer 503.
    Connect(String),
    /// queue-timeout: answer 503.
    Queue,
    /// socket-timeout or request-timeout: answer 504.
    Timeout,
    /// The daemon crashed mid-request: 502/500, or abort once the head is out.
    DaemonGone(String),
    /// The peer broke the protocol (or is another build): 500.
    Protocol(String),
    /// The daemon answered this status before any head (e.g. 503 when Python failed to
    /// start there); 500 and 504 come back as `Ok(Outcome::Failed)` and `Err(Timeout)`.
    Status(u16),
}

/// Connect to the group's socket (respecting timeouts.connect / queue).
pub fn connect(socket: &Path, t: &ClientTimeouts) -> Result<UnixStream, ProxyError> {
    let _ = t;
    UnixStream::connect(socket).map_err(|e| ProxyError::Connect(format!("{}: {e}", socket.display())))
}

/// Forward one request over `stream` and relay the response into `sink`, pulling the body
/// from `body` when the daemon asks. Blocking; runs on a server thread WITHOUT the GIL.
/// Returns the outcome as the core defines it, or an error the adapter maps to a status
/// (when no head was sent yet) or an abort.
pub fn proxy(
    stream: UnixStream,
    meta: &RequestMeta<'_>,
    body: &mut dyn RequestBody,
    sink: &mut dyn ResponseSink,
    t: &ClientTimeouts,
) -> Result<Outcome, ProxyError> {
    let _ = (stream, meta, body, sink, t);
    Err(ProxyError::Protocol("daemon mode is not implemented yet".into()))
}

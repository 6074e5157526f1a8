//! Frames over a socket: a buffered reader that also collects passed descriptors, and a
//! writer that sends a frame's header and payload in one `sendmsg` without copying.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::protocol::{self, HEADER_LEN, Kind, ProtocolError};
use crate::ffi::unix as sys;

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum WireError {
    /// The peer closed the connection at a frame boundary.
    Closed,
    /// The socket timeout expired.
    Timeout,
    /// The peer closed mid-frame, or the socket failed.
    Io(io::Error),
    Protocol(ProtocolError),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Closed => f.write_str("connection closed"),
            WireError::Timeout => f.write_str("timed out"),
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => WireError::Timeout,
            _ => WireError::Io(e),
        }
    }
}

impl From<ProtocolError> for WireError {
    fn from(e: ProtocolError) -> Self {
        WireError::Protocol(e)
    }
}

/// First size of a reader's buffer; it grows to the largest frame it meets (bounded by
/// the protocol's per-kind maximum).
const INITIAL_BUFFER: usize = 64 * 1024;

/// Reads frames from a socket.
pub struct FrameReader {
    stream: UnixStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Descriptors received (SCM_RIGHTS), in order, for FILE frames.
    fds: VecDeque<OwnedFd>,
    /// Read with recvmsg to receive descriptors (the server side).
    with_fds: bool,
}

impl FrameReader {
    pub fn new(stream: UnixStream, with_fds: bool) -> FrameReader {
        FrameReader { stream, buf: vec![0; INITIAL_BUFFER], start: 0, end: 0, fds: VecDeque::new(), with_fds }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The next frame; its payload borrows the reader's buffer until the next call.
    pub fn next(&mut self) -> Result<(Kind, &[u8]), WireError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            let need = match protocol::split_frame(avail)? {
                Some((kind, payload, _)) => {
                    let from = self.start + HEADER_LEN;
                    let len = payload.len();
                    self.start = from + len;
                    return Ok((kind, &self.buf[from..from + len]));
                }
                None => match avail.first_chunk::<HEADER_LEN>() {
                    Some(h) => HEADER_LEN + protocol::parse_header(h)?.1,
                    None => HEADER_LEN,
                },
            };
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if self.buf.len() < need {
                self.buf.resize(need, 0);
            }
            if self.start + need > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = self.fill()?;
            if n == 0 {
                return Err(if self.start == self.end {
                    WireError::Closed
                } else {
                    WireError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-frame"))
                });
            }
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        loop {
            let space = &mut self.buf[self.end..];
            let r = if self.with_fds {
                sys::recv_msg(self.stream.as_fd(), space, &mut self.fds)
            } else {
                self.stream.read(space)
            };
            match r {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The oldest received descriptor not yet taken.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.fds.pop_front()
    }
}

/// Writes frames to a socket. Blocking writes are the backpressure: a peer that does not
/// read stops the writer instead of growing a buffer.
pub struct FrameWriter {
    stream: UnixStream,
}

impl FrameWriter {
    pub fn new(stream: UnixStream) -> FrameWriter {
        FrameWriter { stream }
    }

    /// Send `parts` (already framed) in order; `pass` rides with the first byte.
    pub fn send(&mut self, parts: &[&[u8]], mut pass: Option<BorrowedFd<'_>>) -> Result<(), WireError> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut sent = 0;
        // Up to 8 parts (every frame we send) without allocating.
        let mut fixed = [IoSlice::new(&[]); 8];
        let mut more: Vec<IoSlice<'_>> = Vec::new();
        while sent < total {
            let mut skip = sent;
            let mut n = 0;
            more.clear();
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                let slice = IoSlice::new(&p[skip..]);
                if parts.len() <= fixed.len() {
                    fixed[n] = slice;
                    n += 1;
                } else {
                    more.push(slice);
                }
                skip = 0;
            }
            let slices = if parts.len() <= fixed.len() { &fixed[..n] } else { &more[..] };
            match sys::send_msg(self.stream.as_fd(), slices, pass) {
                Ok(n) => {
                    sent += n;
                    pass = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Whether a write error means the peer went away (rather than a timeout or a bug).
pub fn is_gone(e: &WireError) -> bool {
    match e {
        WireError::Closed => true,
        WireError::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

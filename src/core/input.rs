//! `wsgi.input`: the request body as a file-like object (PEP 3333, "Input and Error Streams").
//!
//! Reads go to the adapter's [`RequestBody`] with the GIL released. A small buffer serves
//! `readline`; `read(n)` bypasses it for large reads. Errors are sticky: once the body
//! failed (client gone, bad chunk framing) every later read raises again. When the request
//! is over the adapter's body is dropped ([`Input::expire`]) and reads raise, because the
//! server's request may no longer exist.

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::RequestBody;

const CHUNK: usize = 64 * 1024;

/// `read(size)` up to this size allocates the bytes object first and reads into it
/// ([`Input::read_direct`]); larger sizes grow a buffer as the body comes, so that a
/// `read(1 << 30)` of a small body does not allocate (and zero) a gigabyte.
const DIRECT_MAX: usize = 4 * CHUNK;

#[pyclass(module = "oxwsgi", immutable_type, name = "Input")]
pub struct Input {
    body: Option<Box<dyn RequestBody>>,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    error: Option<String>,
    /// For mod_wsgi's `request_finished`: calls, bytes returned, time waited.
    reads: u64,
    length: u64,
    waited: std::time::Duration,
}

impl Input {
    pub fn new(body: Box<dyn RequestBody>) -> Input {
        Input {
            body: Some(body),
            buf: Vec::new(),
            pos: 0,
            eof: false,
            error: None,
            reads: 0,
            length: 0,
            waited: std::time::Duration::ZERO,
        }
    }

    /// (calls, bytes returned, time waited for the body) so far.
    pub fn counters(&self) -> (u64, u64, std::time::Duration) {
        (self.reads, self.length, self.waited)
    }

    fn count(&mut self, n: usize) {
        self.reads += 1;
        self.length += n as u64;
    }

    /// The request is over: drop the adapter's body reader.
    pub fn expire(&mut self) {
        self.body = None;
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Read from the body into `out`, appending up to `want` bytes, GIL released: once
    /// (whatever is available), or with `fill_all` until `want` bytes or the end.
    fn pull(&mut self, py: Python<'_>, out: &mut Vec<u8>, want: usize, fill_all: bool) -> PyResult<usize> {
        let start = out.len();
        out.resize(start + want, 0);
        let r = self.pull_into(py, &mut out[start..], fill_all);
        out.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }

    /// [`Input::pull`] into `dst` (its length is what is wanted).
    fn pull_into(&mut self, py: Python<'_>, dst: &mut [u8], fill_all: bool) -> PyResult<usize> {
        if let Some(e) = &self.error {
            return Err(PyOSError::new_err(e.clone()));
        }
        if self.eof {
            return Ok(0);
        }
        let Some(body) = self.body.as_mut() else {
            return Err(PyRuntimeError::new_err("wsgi.input read after the request completed"));
        };
        // One GIL release for the whole fill: servers hand the body over in socket-sized
        // pieces (8 KiB under httpd), and re-taking the GIL per piece costs a thread
        // hand-off each time other threads are waiting for it.
        let timed = super::modwsgi_module::subscribed().then(std::time::Instant::now);
        let (n, at_eof, error) = py.detach(|| {
            let mut filled = 0;
            while filled < dst.len() {
                match body.read(&mut dst[filled..]) {
                    Ok(0) => return (filled, true, None),
                    Ok(n) => filled += n,
                    // Data already read is delivered; the error is raised by the next read.
                    Err(e) => return (filled, false, Some(e)),
                }
                if !fill_all {
                    break;
                }
            }
            (filled, false, None)
        });
        if let Some(t) = timed {
            self.waited += t.elapsed();
        }
        if at_eof {
            self.eof = true;
        }
        if let Some(e) = error {
            let msg = format!("error reading request body: {e}");
            self.error = Some(msg.clone());
            if n == 0 {
                return Err(PyOSError::new_err(msg));
            }
        }
        Ok(n)
    }

    /// Make sure the buffer holds at least one more byte, unless at EOF. False at EOF.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.pull(py, &mut buf, CHUNK, false);
        self.buf = buf;
        Ok(r? > 0)
    }

    /// `read(size)` with nothing buffered: the body goes straight into the bytes object
    /// returned, without the intermediate buffer and its copy (a 1 MiB upload read in
    /// 64 KiB pieces was copied twice in user space, once here). A short read (the end
    /// of the body) copies its part into a bytes object of the right length.
    fn read_direct<'py>(&mut self, py: Python<'py>, size: usize) -> PyResult<Bound<'py, PyBytes>> {
        let mut got = 0;
        let bytes = PyBytes::new_with(py, size, |dst| {
            got = self.pull_into(py, dst, true)?;
            Ok(())
        })?;
        if got == size { Ok(bytes) } else { Ok(PyBytes::new(py, &bytes.as_bytes()[..got])) }
    }

    /// Up to `limit` bytes (None = all).
    fn read_bytes(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut out = Vec::new();
        let avail = self.buffered().len();
        let take = limit.map_or(avail, |l| l.min(avail));
        out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
        self.pos += take;
        loop {
            let want = match limit {
                Some(l) if out.len() >= l => break,
                Some(l) => (l - out.len()).min(4 * CHUNK),
                None => CHUNK.max(out.len() / 4),
            };
            if self.pull(py, &mut out, want, true)? == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// One line including its '\n', at most `limit` bytes.
    fn read_line(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let mut scanned = 0;
        loop {
            let avail = self.buffered();
            let cap = limit.map_or(avail.len(), |l| l.min(avail.len()));
            if let Some(i) = avail[scanned..cap].iter().position(|&c| c == b'\n') {
                return Ok(self.take(scanned + i + 1));
            }
            if limit.is_some_and(|l| avail.len() >= l) {
                return Ok(self.take(cap));
            }
            scanned = cap;
            if !self.fill(py)? {
                let n = self.buffered().len();
                return Ok(self.take(n));
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        v
    }
}

/// Python's "size" arguments: None or a negative number mean "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        if let Some(n) = limit(size).filter(|&n| n > 0 && n <= DIRECT_MAX && self.buffered().is_empty()) {
            let data = self.read_direct(py, n)?;
            self.count(data.as_bytes().len());
            return Ok(data);
        }
        let data = self.read_bytes(py, limit(size))?;
        self.count(data.len());
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, limit(size))?;
        self.count(line.len());
        Ok(PyBytes::new(py, &line))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let list = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            self.count(line.len());
            list.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(list)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_line(py, None)?;
        if line.is_empty() {
            return Err(PyStopIteration::new_err(()));
        }
        self.count(line.len());
        Ok(PyBytes::new(py, &line))
    }

    /// Accepted for file-object compatibility; the server closes the body itself.
    fn close(&mut self) {}
}

//! mod_python's `req` object on httpd: `mp_request` (one per request, kept across its
//! phases so that attributes a handler sets survive into later phases), `mp_table` (a live
//! view of one of the request's APR tables) and snapshots of the connection and server.
//!
//! A `req` lends the `request_rec` to Python, which may keep the object after the request
//! ended or hand it to another thread. So every use checks, under a lock, that the request
//! is still live (the request pool's cleanup marks it ended) and that the caller is the
//! thread serving it; anything else raises instead of touching freed memory.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::httpd::{Brigade, Read, Related, Request, RequestHandle, SendFile, TableId};
use super::modpython_conf::{Handler, MpConf, PHASES};
use crate::ffi::httpd::{APR_NOFILE, OXWSGI_W_FLUSH};

/// Who may use the request: the thread serving it, while it lives.
struct Owner {
    alive: bool,
    thread: ThreadId,
    /// In the request pool's cleanup: no more output.
    ending: bool,
}

/// What the handlers of a request changed or queued.
struct State {
    out: Option<Brigade>,
    input: Option<Brigade>,
    body_done: bool,
    /// Body bytes read ahead by `readline`.
    pending: Vec<u8>,
    phase: String,
    interpreter: String,
    conf: Arc<MpConf>,
    /// `req.add_handler`: (phase index, handler).
    added: Vec<(usize, Handler)>,
    /// `req.register_cleanup`: (callable, data).
    cleanups: Vec<(Py<PyAny>, Py<PyAny>)>,
    /// A handler set `req.content_type` (publisher guesses one otherwise).
    content_type_set: bool,
}

#[pyclass(dict, frozen, module = "mod_python._oxwsgi", name = "mp_request")]
pub struct MpRequest {
    handle: RequestHandle,
    owner: Mutex<Owner>,
    state: Mutex<State>,
}

/// A str for a byte string httpd keeps: UTF-8, or latin-1 when it is not (mod_python
/// fails on such bytes; see docs/differences-from-mod_python.md).
pub fn text<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(b) {
        Ok(s) => PyString::new(py, s),
        Err(_) => crate::ffi::python::latin1_str(py, b),
    }
}

fn opt_text<'py>(py: Python<'py>, b: Option<&[u8]>) -> Option<Bound<'py, PyString>> {
    b.map(|b| text(py, b))
}

/// A C string from a str (latin-1, as mod_python's tables store it) or bytes.
fn c_arg(what: &str, v: &Bound<'_, PyAny>) -> PyResult<CString> {
    let bytes: Vec<u8> = if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_str()?;
        let mut out = Vec::with_capacity(s.len());
        for c in s.chars() {
            let n = c as u32;
            if n > 0xff {
                return Err(PyTypeError::new_err(format!("{what} must be latin-1 text, not {s:?}")));
            }
            out.push(n as u8);
        }
        out
    } else if let Ok(b) = v.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else {
        return Err(PyTypeError::new_err(format!("{what} must be str or bytes")));
    };
    CString::new(bytes).map_err(|_| PyValueError::new_err(format!("{what} contains a NUL byte")))
}

impl MpRequest {
    /// A `req` for `r`.
    ///
    /// The caller must call [`MpRequest::end`] from the request pool's cleanup (that is
    /// what keeps the lent request from being used after it is freed).
    pub fn new(r: &Request, conf: Arc<MpConf>, interpreter: String) -> MpRequest {
        // SAFETY (Lent::new's contract): every use goes through `with_r`, which
        // checks that the request is live (`end` runs from its pool's cleanup) and that
        // the caller is the thread serving it.
        let handle = unsafe { RequestHandle::new(r) };
        MpRequest {
            handle,
            owner: Mutex::new(Owner { alive: true, thread: std::thread::current().id(), ending: false }),
            state: Mutex::new(State {
                out: None,
                input: None,
                body_done: false,
                pending: Vec::new(),
                phase: String::new(),
                interpreter,
                conf,
                added: Vec::new(),
                cleanups: Vec::new(),
                content_type_set: false,
            }),
        }
    }

    fn check(&self, output: bool) -> PyResult<()> {
        let o = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        if !o.alive {
            return Err(PyRuntimeError::new_err("the request this req object served has ended"));
        }
        if o.thread != std::thread::current().id() {
            return Err(PyRuntimeError::new_err("a req object can only be used by the thread serving its request"));
        }
        if output && o.ending {
            return Err(PyRuntimeError::new_err("the request has ended: no more output (cleanup phase)"));
        }
        Ok(())
    }

    /// Run `f` with the live request (see the module's comment).
    fn with_r<T>(&self, f: impl FnOnce(&Request, &mut State) -> PyResult<T>) -> PyResult<T> {
        self.check(false)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(self.handle.get(), &mut st)
    }

    /// The request's pool cleanup is running (on whatever thread frees the request).
    pub fn begin_end(&self) {
        let mut o = self.owner.lock().unwrap_or_else(|p| p.into_inner());
        o.thread = std::thread::current().id();
        o.ending = true;
    }

    /// The request is gone: every later use raises.
    pub fn end(&self) {
        self.owner.lock().unwrap_or_else(|p| p.into_inner()).alive = false;
    }

    /// The phase about to run, with the configuration of the request's context now and
    /// the interpreter its handlers run in.
    pub fn enter_phase(&self, phase: &str, conf: Arc<MpConf>, interpreter: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.phase = phase.to_string();
        st.conf = conf;
        if st.interpreter != interpreter {
            st.interpreter = interpreter.to_string();
        }
    }

    /// The `req` of a related request (made on first use, as mod_python).
    fn related(&self, py: Python<'_>, which: Related) -> PyResult<Option<Py<MpRequest>>> {
        let (conf, interp) = self.with_r(|_, st| Ok((st.conf.clone(), st.interpreter.clone())))?;
        self.check(false)?;
        let Some(other) = self.handle.get().related(which) else { return Ok(None) };
        let conf = other.dir_conf().modpython().unwrap_or(conf);
        super::modpython::request(py, other, &conf, &interp).map(Some)
    }

    /// mod_python's name of the interpreter the request's handlers run in.
    pub fn interpreter_name(&self) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).interpreter.clone()
    }

    pub fn conf(&self) -> Arc<MpConf> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).conf.clone()
    }

    /// Handlers `req.add_handler` queued for phase `i`.
    pub fn added(&self, i: usize) -> Vec<Handler> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.added.iter().filter(|(p, _)| *p == i).map(|(_, h)| h.clone()).collect()
    }

    /// `req.register_cleanup` was called.
    pub fn has_cleanups(&self) -> bool {
        !self.state.lock().unwrap_or_else(|p| p.into_inner()).cleanups.is_empty()
    }

    /// The callables of `req.register_cleanup`, taken.
    pub fn take_cleanups(&self) -> Vec<(Py<PyAny>, Py<PyAny>)> {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).cleanups)
    }

    /// Read up to `max` body bytes (fewer only at the end of the body), GIL released.
    fn read_body(&self, py: Python<'_>, st: &mut State, r: &Request, max: usize) -> PyResult<Vec<u8>> {
        let mut out = std::mem::take(&mut st.pending);
        if out.len() > max {
            st.pending = out.split_off(max);
            return Ok(out);
        }
        if st.input.is_none() {
            st.input = Some(r.brigade());
        }
        let bb = st.input.as_ref().expect("set above");
        let h = self.handle.clone();
        while out.len() < max && !st.body_done {
            let want = (max - out.len()).min(64 * 1024);
            let start = out.len();
            out.resize(start + want, 0);
            let buf = &mut out[start..];
            let got = py.detach(|| h.get().read(bb, buf));
            match got {
                Read::Data { got, eos } => {
                    out.truncate(start + got);
                    if eos || got == 0 {
                        st.body_done = true;
                    }
                }
                Read::Error => {
                    out.truncate(start);
                    st.body_done = true;
                    return Err(PyOSError::new_err("Client read error (Timeout?)"));
                }
            }
        }
        Ok(out)
    }

    /// The output brigade, taken out of the state: the state's lock is not held while
    /// httpd's output filters run (a mod_python output filter uses `req` too).
    fn take_out_brigade(&self) -> Brigade {
        let taken = self.state.lock().unwrap_or_else(|p| p.into_inner()).out.take();
        taken.unwrap_or_else(|| self.handle.get().brigade())
    }

    fn put_out_brigade(&self, bb: Brigade) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).out = Some(bb);
    }

    fn write_bytes(&self, py: Python<'_>, data: &[u8], flush: bool) -> PyResult<()> {
        self.check(true)?;
        if data.is_empty() && !flush {
            return Ok(());
        }
        let bb = self.take_out_brigade();
        let h = self.handle.clone();
        let flags = if flush { OXWSGI_W_FLUSH as i32 } else { 0 };
        let ok = py.detach(|| h.get().write(&bb, data, flags));
        self.put_out_brigade(bb);
        if ok { Ok(()) } else { Err(PyOSError::new_err("Write failed, client closed connection.")) }
    }
}

fn table_id(name: &str) -> TableId {
    match name {
        "headers_in" => TableId::HeadersIn,
        "headers_out" => TableId::HeadersOut,
        "err_headers_out" => TableId::ErrHeadersOut,
        "subprocess_env" => TableId::SubprocessEnv,
        _ => TableId::Notes,
    }
}

fn table(py: Python<'_>, req: &Bound<'_, MpRequest>, name: &str) -> PyResult<Py<MpTable>> {
    Py::new(py, MpTable { req: req.clone().unbind(), id: table_id(name) })
}

#[pymethods]
impl MpRequest {
    // ---- output ---------------------------------------------------------------------

    /// `req.write(data, flush=1)`: str goes out as UTF-8, bytes as they are.
    #[pyo3(signature = (data, flush = 1))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>, flush: i32) -> PyResult<()> {
        if let Ok(s) = data.cast::<PyString>() {
            self.write_bytes(py, s.to_str()?.as_bytes(), flush != 0)
        } else if let Ok(b) = data.cast::<PyBytes>() {
            let v = b.as_bytes().to_vec();
            self.write_bytes(py, &v, flush != 0)
        } else {
            Err(PyTypeError::new_err("req.write() takes str or bytes"))
        }
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.write_bytes(py, b"", true)
    }

    /// `req.sendfile(path, offset=0, len=-1)`: the bytes sent.
    #[pyo3(signature = (path, offset = 0, len = -1))]
    fn sendfile(&self, py: Python<'_>, path: std::path::PathBuf, offset: i64, len: i64) -> PyResult<i64> {
        use std::os::fd::AsRawFd;
        self.check(true)?;
        let f = std::fs::File::open(&path)
            .map_err(|e| PyOSError::new_err(format!("Could not open file for reading: {} ({e})", path.display())))?;
        let size = f.metadata().map_err(|e| PyOSError::new_err(e.to_string()))?.len() as i64;
        let offset = offset.clamp(0, size);
        let len = if len < 0 || offset + len > size { size - offset } else { len };
        if len == 0 {
            return Ok(0);
        }
        let bb = self.take_out_brigade();
        let h = self.handle.clone();
        let fd = f.as_raw_fd();
        let sent = py.detach(|| h.get().send_file(&bb, fd, offset as u64, len as u64, OXWSGI_W_FLUSH as i32));
        self.put_out_brigade(bb);
        match sent {
            SendFile::Sent => Ok(len),
            SendFile::Unsupported => Err(PyOSError::new_err(format!("cannot send {}", path.display()))),
            SendFile::Failed => Err(PyOSError::new_err("Write failed, client closed connection.")),
        }
    }

    fn set_content_length(&self, len: u64) -> PyResult<()> {
        self.with_r(|r, _| {
            r.set_content_length(len);
            Ok(())
        })
    }

    /// mod_python 2's header call: headers go out with the first write anyway.
    fn send_http_header(&self) {}

    #[getter]
    fn get_content_type<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.content_type())))
    }
    #[setter]
    fn set_content_type(&self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = c_arg("content_type", v)?;
        self.with_r(|r, st| {
            r.set_content_type(v.as_bytes());
            st.content_type_set = true;
            Ok(())
        })
    }
    #[getter(_content_type_set)]
    fn content_type_set(&self) -> PyResult<bool> {
        self.with_r(|_, st| Ok(st.content_type_set))
    }

    #[getter]
    fn get_status(&self) -> PyResult<i32> {
        self.with_r(|r, _| Ok(r.status()))
    }
    #[setter]
    fn set_status(&self, v: i32) -> PyResult<()> {
        self.with_r(|r, _| {
            r.set_status_code(v);
            Ok(())
        })
    }

    #[getter]
    fn headers_in(slf: &Bound<'_, Self>) -> PyResult<Py<MpTable>> {
        table(slf.py(), slf, "headers_in")
    }
    #[getter]
    fn headers_out(slf: &Bound<'_, Self>) -> PyResult<Py<MpTable>> {
        table(slf.py(), slf, "headers_out")
    }
    #[getter]
    fn err_headers_out(slf: &Bound<'_, Self>) -> PyResult<Py<MpTable>> {
        table(slf.py(), slf, "err_headers_out")
    }
    #[getter]
    fn subprocess_env(slf: &Bound<'_, Self>) -> PyResult<Py<MpTable>> {
        table(slf.py(), slf, "subprocess_env")
    }
    #[getter]
    fn notes(slf: &Bound<'_, Self>) -> PyResult<Py<MpTable>> {
        table(slf.py(), slf, "notes")
    }

    // ---- input ----------------------------------------------------------------------

    /// `req.read(len=-1)`: the whole (rest of the) body, or up to `len` bytes.
    #[pyo3(signature = (len = -1))]
    fn read<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Bound<'py, PyBytes>> {
        let max = if len < 0 { usize::MAX } else { len as usize };
        let data = self.with_r(|r, st| self.read_body(py, st, r, max))?;
        Ok(PyBytes::new(py, &data))
    }

    /// `req.readline(len=-1)`: up to and including the next newline.
    #[pyo3(signature = (len = -1))]
    fn readline<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Bound<'py, PyBytes>> {
        let limit = if len < 0 { usize::MAX } else { len as usize };
        let line = self.with_r(|r, st| {
            let mut line: Vec<u8> = Vec::new();
            loop {
                if let Some(i) = st.pending.iter().position(|&b| b == b'\n') {
                    let take = (i + 1).min(limit - line.len());
                    line.extend(st.pending.drain(..take));
                    return Ok(line);
                }
                let take = st.pending.len().min(limit - line.len());
                line.extend(st.pending.drain(..take));
                if line.len() >= limit || st.body_done {
                    return Ok(line);
                }
                let more = self.read_body(py, st, r, 8192.min(limit - line.len()))?;
                if more.is_empty() {
                    return Ok(line);
                }
                st.pending = more;
            }
        })?;
        Ok(PyBytes::new(py, &line))
    }

    /// `req.readlines(sizehint=-1)`.
    #[pyo3(signature = (sizehint = -1))]
    fn readlines<'py>(slf: &Bound<'py, Self>, sizehint: i64) -> PyResult<Bound<'py, PyList>> {
        let py = slf.py();
        let out = PyList::empty(py);
        let mut total = 0i64;
        loop {
            let line = slf.get().readline(py, -1)?;
            if line.as_bytes().is_empty() {
                break;
            }
            total += line.as_bytes().len() as i64;
            out.append(line)?;
            if sizehint > 0 && total >= sizehint {
                break;
            }
        }
        Ok(out)
    }

    // ---- request data ---------------------------------------------------------------

    #[getter]
    fn uri<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with_r(|r, _| Ok(text(py, r.uri())))
    }
    #[setter(uri)]
    fn set_uri_attr(&self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = c_arg("uri", v)?;
        self.with_r(|r, _| {
            r.set_uri(Some(v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn unparsed_uri<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with_r(|r, _| Ok(text(py, r.unparsed_uri())))
    }
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.opt_args())))
    }
    #[setter(args)]
    fn set_args_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("args", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_args(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn method<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with_r(|r, _| Ok(text(py, r.method())))
    }
    #[getter]
    fn protocol<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with_r(|r, _| Ok(text(py, r.protocol())))
    }
    #[getter]
    fn proto_num(&self) -> PyResult<i32> {
        self.with_r(|r, _| Ok(r.proto_num()))
    }
    #[getter]
    fn the_request<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.the_request())))
    }
    #[getter]
    fn header_only(&self) -> PyResult<bool> {
        self.with_r(|r, _| Ok(r.header_only()))
    }
    #[getter]
    fn status_line<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.status_line())))
    }
    #[getter]
    fn clength(&self) -> PyResult<i64> {
        self.with_r(|r, _| Ok(r.clength()))
    }
    #[getter]
    fn sent_bodyct(&self) -> PyResult<bool> {
        self.with_r(|r, _| Ok(r.sent_bodyct()))
    }
    /// `req.allow_methods(methods, reset=0)`: the methods a 405 names in `Allow`.
    #[pyo3(signature = (methods, reset = 0))]
    fn allow_methods(&self, methods: Vec<String>, reset: i32) -> PyResult<()> {
        let names = methods
            .iter()
            .map(|m| CString::new(m.as_str()).map_err(|_| PyValueError::new_err("method contains a NUL byte")))
            .collect::<PyResult<Vec<_>>>()?;
        self.with_r(|r, _| {
            if reset != 0 {
                r.clear_allowed();
            }
            for n in &names {
                r.allow_method(n);
            }
            Ok(())
        })
    }
    /// `req.get_remote_host(type=apache.REMOTE_NAME)`: the client's host name or address.
    #[pyo3(signature = (kind = 1, _str_is_ip = None))]
    fn get_remote_host<'py>(
        &self,
        py: Python<'py>,
        kind: i32,
        _str_is_ip: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(r.remote_host(kind).map(|h| text(py, &h))))
    }
    #[getter]
    fn bytes_sent(&self) -> PyResult<i64> {
        self.with_r(|r, _| Ok(r.bytes_sent()))
    }
    #[getter]
    fn path_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.opt_path_info())))
    }
    #[setter(path_info)]
    fn set_path_info_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("path_info", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_path_info(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn filename<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.opt_filename())))
    }
    #[setter(filename)]
    fn set_filename_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("filename", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_filename(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn canonical_filename<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.canonical_filename())))
    }
    /// Whether the request maps to an existing file (mod_python's `req.finfo` is richer).
    #[getter]
    fn has_file(&self) -> PyResult<bool> {
        self.with_r(|r, _| Ok(r.filetype() != APR_NOFILE))
    }
    #[getter]
    fn handler<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.opt_handler())))
    }
    #[setter(handler)]
    fn set_handler_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("handler", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_handler(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn hostname<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.hostname())))
    }
    #[getter]
    fn user<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.user())))
    }
    #[setter(user)]
    fn set_user_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("user", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_user(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    #[getter]
    fn ap_auth_type<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.auth_type())))
    }
    #[setter(ap_auth_type)]
    fn set_ap_auth_type_attr(&self, v: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let v = v.filter(|v| !v.is_none()).map(|v| c_arg("ap_auth_type", v)).transpose()?;
        self.with_r(|r, _| {
            r.set_auth_type(v.as_ref().map(|v| v.as_bytes()));
            Ok(())
        })
    }
    fn auth_name<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.auth_name())))
    }
    fn auth_type<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(opt_text(py, r.auth_type())))
    }

    /// The password of the request's Basic credentials (the user goes to `req.user`);
    /// `None` when there are none.
    fn get_basic_auth_pw<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyString>>> {
        self.with_r(|r, _| Ok(r.basic_auth_pw().ok().map(|pw| text(py, &pw))))
    }

    /// `Options` bits of the request's directory (`apache.OPT_*`).
    fn get_options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let conf = self.with_r(|_, st| Ok(st.conf.clone()))?;
        let d = PyDict::new(py);
        for (k, v) in conf.effective_options() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let conf = self.with_r(|_, st| Ok(st.conf.clone()))?;
        let d = PyDict::new(py);
        for (k, v) in conf.config_table() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    fn allow_options(&self) -> PyResult<i32> {
        self.with_r(|r, _| Ok(r.allow_options()))
    }
    fn add_common_vars(&self) -> PyResult<()> {
        self.with_r(|r, _| {
            r.add_common_vars();
            Ok(())
        })
    }
    fn add_cgi_vars(&self) -> PyResult<()> {
        self.with_r(|r, _| {
            r.add_cgi_vars();
            Ok(())
        })
    }
    fn document_root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        self.with_r(|r, _| Ok(text(py, r.document_root())))
    }
    fn is_https(&self) -> PyResult<bool> {
        self.with_r(|r, _| Ok(r.http_scheme() == b"https"))
    }
    fn construct_url<'py>(&self, py: Python<'py>, uri: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyString>> {
        let uri = c_arg("uri", uri)?;
        self.with_r(|r, _| Ok(text(py, &r.construct_url(&uri))))
    }
    fn is_initial_req(&self) -> PyResult<bool> {
        self.with_r(|r, _| Ok(r.is_initial()))
    }

    #[getter]
    fn connection(&self, py: Python<'_>) -> PyResult<Py<MpConnection>> {
        let c = self.with_r(|r, _| {
            let c = r.connection();
            let ip = String::from_utf8_lossy(c.client_ip()).into_owned();
            let port = c.client_port().unwrap_or(0);
            Ok(MpConnection {
                remote_ip: ip.clone(),
                client_ip: ip.clone(),
                remote_addr: (ip, port),
                local_ip: String::from_utf8_lossy(c.local_ip()).into_owned(),
                local_addr: (String::from_utf8_lossy(c.local_ip()).into_owned(), c.local_port()),
                remote_host: c.remote_host().map(|h| String::from_utf8_lossy(h).into_owned()),
                id: c.id(),
                keepalive: c.keepalive(),
            })
        })?;
        Py::new(py, c)
    }
    #[getter]
    fn server(&self, py: Python<'_>) -> PyResult<Py<MpServer>> {
        let s = self.with_r(|r, _| {
            let s = r.server();
            let (defn_name, defn_line_number) = s.definition();
            Ok(MpServer {
                server_hostname: String::from_utf8_lossy(s.hostname()).into_owned(),
                port: s.port(),
                server_admin: String::from_utf8_lossy(s.admin()).into_owned(),
                is_virtual: s.is_virtual(),
                defn_name: String::from_utf8_lossy(defn_name).into_owned(),
                defn_line_number,
            })
        })?;
        Py::new(py, s)
    }

    /// The request this is a subrequest of, or `None`.
    #[getter]
    fn main(&self, py: Python<'_>) -> PyResult<Option<Py<MpRequest>>> {
        self.related(py, Related::Main)
    }
    /// The request this one was internally redirected from, or `None`.
    #[getter]
    fn prev(&self, py: Python<'_>) -> PyResult<Option<Py<MpRequest>>> {
        self.related(py, Related::Prev)
    }
    /// The request this one was internally redirected to, or `None`.
    #[getter]
    fn next(&self, py: Python<'_>) -> PyResult<Option<Py<MpRequest>>> {
        self.related(py, Related::Next)
    }

    #[getter]
    fn interpreter(&self) -> PyResult<String> {
        self.with_r(|_, st| Ok(st.interpreter.clone()))
    }
    #[getter]
    fn phase(&self) -> PyResult<String> {
        self.with_r(|_, st| Ok(st.phase.clone()))
    }

    // ---- control --------------------------------------------------------------------

    /// Serve `uri` instead (the new request runs to its end before this returns).
    fn internal_redirect(&self, py: Python<'_>, uri: &Bound<'_, PyAny>) -> PyResult<()> {
        let uri = c_arg("uri", uri)?;
        self.check(true)?;
        let h = self.handle.clone();
        // The new request runs its own phases (and maybe handlers) on this thread; the GIL
        // is released so that they can take it.
        py.detach(|| h.get().internal_redirect(&uri));
        Ok(())
    }

    /// `req.add_handler(phase, handler, dir=None)`: run `handler` in `phase` of this
    /// request too (after the configured ones; now, if `phase` is the running one).
    #[pyo3(signature = (phase, handler, dir = None))]
    fn add_handler(&self, phase: &str, handler: &str, dir: Option<String>) -> PyResult<()> {
        let i = PHASES
            .iter()
            .position(|p| *p == phase)
            .ok_or_else(|| PyValueError::new_err(format!("Invalid phase: {phase}")))?;
        if handler.split("::").next().unwrap_or("").is_empty() {
            return Err(PyValueError::new_err(format!("not a handler: {handler:?}")));
        }
        self.with_r(|_, st| {
            st.added.push((
                i,
                Handler {
                    spec: handler.to_string(),
                    default_object: phase["Python".len()..].to_ascii_lowercase(),
                    directory: dir,
                    is_location: false,
                    extensions: vec![],
                    silent: false,
                },
            ));
            Ok(())
        })
    }

    /// `req.log_error(message, level=APLOG_ERR)`.
    #[pyo3(signature = (message, level = 3))]
    fn log_error(&self, message: &str, level: i32) -> PyResult<()> {
        self.with_r(|r, _| {
            r.log(super::modpython::aplog_to_level(level), message);
            Ok(())
        })
    }

    /// `req.register_cleanup(callable, data=None)`: called with `data` when the request
    /// ends.
    #[pyo3(signature = (callable, data = None))]
    fn register_cleanup(&self, py: Python<'_>, callable: Py<PyAny>, data: Option<Py<PyAny>>) -> PyResult<()> {
        if !callable.bind(py).is_callable() {
            return Err(PyTypeError::new_err("register_cleanup() needs a callable"));
        }
        let data = data.unwrap_or_else(|| py.None());
        self.with_r(|_, st| {
            st.cleanups.push((callable, data));
            Ok(())
        })
    }
}

/// A live view of one of the request's tables, with mod_python's `mp_table` behaviour:
/// case-insensitive keys, several values per key (`add`), `t[k]` a list when there are.
#[pyclass(frozen, module = "mod_python._oxwsgi", name = "mp_table")]
pub struct MpTable {
    req: Py<MpRequest>,
    id: TableId,
}

impl MpTable {
    fn entries(&self, _py: Python<'_>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let id = self.id;
        self.req.get().with_r(|r, _| Ok(r.table_entries(id)))
    }
    fn values_of(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
        let k = c_arg("key", key)?;
        Ok(self
            .entries(py)?
            .into_iter()
            .filter(|(ek, _)| ek.eq_ignore_ascii_case(k.as_bytes()))
            .map(|(_, v)| v)
            .collect())
    }
    fn change(&self, _py: Python<'_>, f: impl FnOnce(&Request, TableId)) -> PyResult<()> {
        let id = self.id;
        self.req.get().with_r(|r, _| {
            f(r, id);
            Ok(())
        })
    }
}

#[pymethods]
impl MpTable {
    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let vals = self.values_of(py, key)?;
        match vals.len() {
            0 => Err(PyKeyError::new_err(key.clone().unbind())),
            1 => Ok(text(py, &vals[0]).into_any()),
            _ => Ok(PyList::new(py, vals.iter().map(|v| text(py, v)))?.into_any()),
        }
    }
    fn __setitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (k, v) = (c_arg("key", key)?, c_arg("value", value)?);
        self.change(py, |r, id| r.table_set(id, &k, &v))
    }
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.values_of(py, key)?.is_empty() {
            return Err(PyKeyError::new_err(key.clone().unbind()));
        }
        let k = c_arg("key", key)?;
        self.change(py, |r, id| r.table_unset(id, &k))
    }
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(!self.values_of(py, key)?.is_empty())
    }
    fn has_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.__contains__(py, key)
    }
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.entries(py)?.len())
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.into_any().try_iter().map(|i| i.into_any())
    }
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.values_of(py, key)?.first() {
            Some(v) => Ok(text(py, v).into_any()),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }
    fn add(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (k, v) = (c_arg("key", key)?, c_arg("value", value)?);
        self.change(py, |r, id| r.table_add(id, &k, &v))
    }
    #[pyo3(signature = (key, default = None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(v) = self.values_of(py, key)?.first() {
            return Ok(text(py, v).into_any());
        }
        let d = default.unwrap_or_else(|| PyString::new(py, "").into_any());
        self.__setitem__(py, key, &d)?;
        Ok(d)
    }
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries(py)?.iter().map(|(k, _)| text(py, k)))
    }
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries(py)?.iter().map(|(_, v)| text(py, v)))
    }
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Bound<'py, PyTuple>> = self
            .entries(py)?
            .iter()
            .map(|(k, v)| PyTuple::new(py, [text(py, k), text(py, v)]))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.change(py, |r, id| r.table_clear(id))
    }
    /// A dict of the table (the last value of a repeated key wins).
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.entries(py)? {
            d.set_item(text(py, &k), text(py, &v))?;
        }
        Ok(d)
    }
    fn update(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = if other.hasattr("items")? { other.call_method0("items")? } else { other.clone() };
        for item in items.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            self.__setitem__(py, &k, &v)?;
        }
        Ok(())
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut out: HashMap<String, String> = HashMap::new();
        for (k, v) in self.entries(py)? {
            out.insert(String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned());
        }
        Ok(format!("{out:?}"))
    }
}

/// `req.connection`, a snapshot.
#[pyclass(module = "mod_python._oxwsgi", name = "mp_conn", get_all)]
pub struct MpConnection {
    remote_ip: String,
    client_ip: String,
    remote_addr: (String, u16),
    local_ip: String,
    local_addr: (String, u16),
    remote_host: Option<String>,
    id: i64,
    keepalive: i32,
}

/// `req.server`, a snapshot.
#[pyclass(module = "mod_python._oxwsgi", name = "mp_server", get_all)]
pub struct MpServer {
    server_hostname: String,
    port: u16,
    server_admin: String,
    is_virtual: bool,
    defn_name: String,
    defn_line_number: u32,
}

#[pymethods]
impl MpServer {
    /// `server.register_cleanup(req, callable, data=None)`: run when the child exits.
    #[pyo3(signature = (_req, callable, data = None))]
    fn register_cleanup(
        &self,
        py: Python<'_>,
        _req: &Bound<'_, PyAny>,
        callable: Py<PyAny>,
        data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let data = data.unwrap_or_else(|| py.None());
        py.import("atexit")?.call_method1("register", (callable, data))?;
        Ok(())
    }
}

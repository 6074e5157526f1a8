//! mod_python filters: `PythonOutputFilter module[::function] NAME` /
//! `PythonInputFilter ...` register `NAME` with httpd; `SetOutputFilter NAME` /
//! `SetInputFilter NAME` (or `Add*Filter NAME .ext`) put it on a request. Each time httpd
//! calls the filter, the Python function is called with a `filter` object. Output:
//! `read()` gives the data of the brigade httpd passed (`b""` when it is used up, `None`
//! once the response ended), `write()` sends data on, `close()` ends the response. Input:
//! `read()` reads from the filter before (`None` at the end of the body), `write()` gives
//! data to the reader, `close()` ends the body.
//!
//! The `filter` object lends httpd's filter to Python only while a call runs, on its
//! thread; any other use raises.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::httpd::{Filter, FilterBrigade, FilterHandle, InputCall};
use super::modpython_conf::MpConf;
use super::modpython_req::MpRequest;
use crate::core::response::log_exception;
use crate::core::worker;
use crate::ffi::httpd::{OXWSGI_W_EOS, OXWSGI_W_FLUSH, apr_status_t};
use crate::ffi::python;

/// A `PythonOutputFilter` line.
#[derive(Clone, Debug)]
pub struct FilterDef {
    pub spec: String,
    pub directory: Option<String>,
}

/// Filters by (input?, lower-cased name), read in the parent, inherited by the children.
static DEFS: Mutex<Option<HashMap<(bool, String), FilterDef>>> = Mutex::new(None);

/// The `filter` object of each running filter instance, by `ap_filter_t` address;
/// removed when the request ends.
static LIVE: Mutex<Option<HashMap<usize, Py<MpFilter>>>> = Mutex::new(None);

pub fn reset() {
    *DEFS.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

pub fn define(is_input: bool, name: &str, def: FilterDef) {
    DEFS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert((is_input, name.to_ascii_lowercase()), def);
}

fn def(is_input: bool, name: &str) -> Option<FilterDef> {
    DEFS.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(&(is_input, name.to_string())).cloned())
}

struct FilterState {
    handle: Option<FilterHandle>,
    thread: Option<ThreadId>,
    data: Vec<u8>,
    pos: usize,
    eos: bool,
    closed: bool,
    disabled: bool,
    /// Input filters: the caller's brigade and how it called.
    input: Option<(FilterBrigade, InputCall)>,
    /// The function used the filter during this call.
    touched: bool,
}

#[pyclass(frozen, module = "mod_python._oxwsgi", name = "mp_filter")]
pub struct MpFilter {
    state: Mutex<FilterState>,
    #[pyo3(get)]
    req: Py<MpRequest>,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    is_input: bool,
}

impl MpFilter {
    /// The filter, if a call of it runs now on this thread.
    fn with_f<T>(&self, f: impl FnOnce(&Filter, &mut FilterState) -> PyResult<T>) -> PyResult<T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let live = st.thread == Some(std::thread::current().id());
        let h = match (&st.handle, live) {
            (Some(h), true) => h.clone(),
            _ => return Err(PyRuntimeError::new_err("a filter object can only be used while its filter runs")),
        };
        st.touched = true;
        f(h.get(), &mut st)
    }
}

impl MpFilter {
    /// Input filters: when the data read so far is used up and the body has not ended,
    /// read more from the filter before (GIL released).
    fn fill(&self, py: Python<'_>, len: i64) -> PyResult<()> {
        let todo = self.with_f(|_, st| {
            if st.pos < st.data.len() || st.eos {
                return Ok(None);
            }
            let call = st.input.as_ref().map(|(_, c)| *c).expect("an input filter call");
            Ok(Some((st.handle.clone().expect("checked by with_f"), call)))
        })?;
        let Some((h, call)) = todo else { return Ok(()) };
        let got = py.detach(|| h.get().get(call, (len > 0).then_some(len)));
        let Some((data, eos)) = got else {
            return Err(PyOSError::new_err("Client read error (Timeout?)"));
        };
        self.with_f(|_, st| {
            st.data = data;
            st.pos = 0;
            st.eos = eos;
            Ok(())
        })
    }
}

fn bytes_of(data: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = data.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes().to_vec())
    } else if let Ok(b) = data.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else {
        Err(PyTypeError::new_err("filter.write() takes str or bytes"))
    }
}

#[pymethods]
impl MpFilter {
    /// Data of the current brigade (up to `len` bytes); `b""` when it is used up, `None`
    /// when the response ended.
    #[pyo3(signature = (len = -1))]
    fn read<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.is_input {
            self.fill(py, len)?;
        }
        self.with_f(|_, st| {
            if st.pos >= st.data.len() {
                return Ok(if st.eos { None } else { Some(PyBytes::new(py, b"")) });
            }
            let end = if len < 0 { st.data.len() } else { (st.pos + len as usize).min(st.data.len()) };
            let out = PyBytes::new(py, &st.data[st.pos..end]);
            st.pos = end;
            Ok(Some(out))
        })
    }

    #[pyo3(signature = (len = -1))]
    fn readline<'py>(&self, py: Python<'py>, len: i64) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if self.is_input {
            self.fill(py, -1)?;
        }
        self.with_f(|_, st| {
            if st.pos >= st.data.len() {
                return Ok(if st.eos { None } else { Some(PyBytes::new(py, b"")) });
            }
            let rest = &st.data[st.pos..];
            let mut end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            if len >= 0 {
                end = end.min(len as usize);
            }
            let out = PyBytes::new(py, &rest[..end]);
            st.pos += end;
            Ok(Some(out))
        })
    }

    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = bytes_of(data)?;
        let h = self.with_f(|f, st| {
            if st.closed {
                return Err(PyRuntimeError::new_err("filter is closed"));
            }
            if let Some((bb, _)) = &st.input {
                f.append(bb, &data, false);
                return Ok(None);
            }
            Ok(Some(st.handle.clone().expect("checked by with_f")))
        })?;
        let Some(h) = h else { return Ok(()) };
        // Not under the state's lock: the next filters may run Python that uses this one.
        if py.detach(|| h.get().pass(&data, 0)) {
            Ok(())
        } else {
            Err(PyOSError::new_err("Write failed, client closed connection."))
        }
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let (h, closed) =
            self.with_f(|_, st| Ok((st.handle.clone().expect("checked by with_f"), st.closed || st.input.is_some())))?;
        if closed || py.detach(|| h.get().pass(b"", OXWSGI_W_FLUSH as i32)) {
            Ok(())
        } else {
            Err(PyOSError::new_err("Flush failed, client closed connection."))
        }
    }

    /// End the filtered response (an EOS goes to the next filter).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.with_f(|f, st| {
            let was_closed = std::mem::replace(&mut st.closed, true);
            if let Some((bb, _)) = &st.input {
                if !was_closed {
                    f.append(bb, b"", true);
                }
                return Ok(None);
            }
            Ok((!was_closed).then(|| st.handle.clone().expect("checked by with_f")))
        })?;
        if let Some(h) = h {
            py.detach(|| h.get().pass(b"", OXWSGI_W_EOS as i32));
        }
        Ok(())
    }

    /// Send the rest of the current brigade on unchanged (input: one read of the filter
    /// before, given to the reader).
    fn pass_on(&self, py: Python<'_>) -> PyResult<()> {
        if self.is_input {
            self.fill(py, -1)?;
            return self.with_f(|f, st| {
                let rest = st.data[st.pos.min(st.data.len())..].to_vec();
                st.pos = st.data.len();
                if let Some((bb, _)) = &st.input {
                    f.append(bb, &rest, st.eos && !st.closed);
                }
                st.closed |= st.eos;
                Ok(())
            });
        }
        let (h, rest, flags) = self.with_f(|_, st| {
            let rest = st.data[st.pos.min(st.data.len())..].to_vec();
            st.pos = st.data.len();
            let flags = if st.eos { OXWSGI_W_EOS as i32 } else { 0 };
            if st.eos {
                st.closed = true;
            }
            Ok((st.handle.clone().expect("checked by with_f"), rest, flags))
        })?;
        py.detach(|| h.get().pass(&rest, flags));
        Ok(())
    }

    /// From now on, the filter lets everything through without calling Python.
    fn disable(&self) -> PyResult<()> {
        self.with_f(|_, st| {
            st.disabled = true;
            Ok(())
        })
    }

    #[getter]
    fn closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed
    }
}

/// The request pool's cleanup: forget the request's filter objects.
///
/// # Safety
/// Registered with a filter's address as data; called by APR only.
unsafe extern "C" fn filter_ended(data: *mut c_void) -> apr_status_t {
    crate::ffi::guard::guard("mod_python filter cleanup", 0, || {
        let gone = LIVE.lock().unwrap_or_else(|p| p.into_inner()).as_mut().and_then(|m| m.remove(&(data as usize)));
        drop(gone); // released when Python next runs if the GIL is not held
        0
    })
}

/// One call of a mod_python output filter.
pub fn output_filter(f: &Filter, bb: &FilterBrigade) -> apr_status_t {
    let through = |f: &Filter| if f.pass_brigade(bb) { 0 } else { -1 };
    let name = String::from_utf8_lossy(f.name()).into_owned();
    let (Some(_), Some(def)) = (f.request(), def(false, &name)) else { return through(f) };
    if disabled(f) {
        return through(f);
    }
    let Some((data, eos)) = f.take(bb) else { return -1 };
    run(f, &name, &def, false, |st| {
        st.data = data;
        st.pos = 0;
        st.eos = eos;
        st.input = None;
    })
}

/// One call of a mod_python input filter.
pub fn input_filter(f: &Filter, bb: &FilterBrigade, call: InputCall) -> apr_status_t {
    let through = |f: &Filter| if f.get_brigade(bb, call) { 0 } else { -1 };
    let name = String::from_utf8_lossy(f.name()).into_owned();
    let (Some(_), Some(def)) = (f.request(), def(true, &name)) else { return through(f) };
    // Only reads of the body go through Python (httpd also asks for header lines, and
    // "is there more?" with non-blocking or speculative reads).
    const AP_MODE_READBYTES: i32 = 0;
    if disabled(f) || call.mode != AP_MODE_READBYTES {
        return through(f);
    }
    if closed(f) {
        // The filter ended the body: every later read (httpd discarding the rest of the
        // body, say) gets the end again.
        f.append(bb, b"", true);
        return 0;
    }
    let bb = bb.clone();
    run(f, &name, &def, true, move |st| {
        // Data read ahead in an earlier call stays; the body's end too.
        st.input = Some((bb, call));
    })
}

fn closed(f: &Filter) -> bool {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&(f.as_ptr() as usize)))
        .is_some_and(|o| o.get().state.lock().unwrap_or_else(|e| e.into_inner()).closed)
}

fn disabled(f: &Filter) -> bool {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&(f.as_ptr() as usize)))
        .is_some_and(|o| o.get().state.lock().unwrap_or_else(|e| e.into_inner()).disabled)
}

/// Call the Python filter function with the filter object set up by `setup`.
fn run(f: &Filter, name: &str, def: &FilterDef, is_input: bool, setup: impl FnOnce(&mut FilterState)) -> apr_status_t {
    let Some(r) = f.request() else { return -1 };
    let Some(w) = worker::get() else { return -1 };
    let log = w.log().clone();
    let directive = if is_input { "PythonInputFilter" } else { "PythonOutputFilter" };
    if !w.ready(&*log, directive) {
        return -1;
    }
    let key = f.as_ptr() as usize;
    let conf = r.dir_conf().modpython().unwrap_or_else(|| Arc::new(MpConf::default()));
    python::keep_thread_state();
    // SAFETY (Lent::new's contract): the handle is stored for this call only; the
    // object checks the thread and clears it before this function returns.
    let handle = unsafe { FilterHandle::new(f) };
    let interp = super::modpython::interpreter_name(r, &conf, None);
    let ok = Python::attach(|py| {
        super::modpython::in_interpreter(py, &interp, |py| -> PyResult<bool> {
            let obj = LIVE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|m| m.get(&key))
                .map(|o| o.clone_ref(py));
            let obj = match obj {
                Some(o) => o,
                None => {
                    let req = super::modpython::request(py, r, &conf, &interp)?;
                    let o = Py::new(
                        py,
                        MpFilter {
                            state: Mutex::new(FilterState {
                                handle: None,
                                thread: None,
                                data: Vec::new(),
                                pos: 0,
                                eos: false,
                                closed: false,
                                disabled: false,
                                input: None,
                                touched: false,
                            }),
                            req,
                            name: name.to_string(),
                            is_input,
                        },
                    )?;
                    LIVE.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(HashMap::new)
                        .insert(key, o.clone_ref(py));
                    r.pool().on_clear_data(key, filter_ended);
                    o
                }
            };
            {
                let mut st = obj.get().state.lock().unwrap_or_else(|p| p.into_inner());
                st.handle = Some(handle.clone());
                st.thread = Some(std::thread::current().id());
                st.touched = false;
                setup(&mut st);
            }
            let result = py.import("mod_python.apache").and_then(|m| m.getattr("_filter_dispatch")).and_then(|d| {
                d.call1((
                    obj.clone_ref(py),
                    def.spec.as_str(),
                    def.directory.clone(),
                    conf.debug.unwrap_or(false),
                    conf.autoreload.unwrap_or(true),
                    conf.path.clone(),
                ))
            });
            if let Err(e) = result {
                log_exception(py, &*log, &format!("{directive} {}", def.spec), "failed", &e);
            }
            let (must_close, input) = {
                let mut st = obj.get().state.lock().unwrap_or_else(|p| p.into_inner());
                st.handle = None;
                st.thread = None;
                if let Some((bb, call)) = st.input.clone().filter(|_| !st.touched) {
                    // An input filter that neither read nor wrote: this read goes through, or
                    // the reader would get nothing, forever.
                    st.input = None;
                    drop(st);
                    return Ok(handle.get().get_brigade(&bb, call));
                }
                if !is_input {
                    st.data = Vec::new();
                }
                // The body or response ended (and everything read was handed on) but the
                // filter did not close: close it, or the other side would wait forever.
                let must = st.eos && !st.closed && st.pos >= st.data.len();
                st.closed |= must;
                (must, st.input.take())
            };
            if !must_close {
                return Ok(true);
            }
            Ok(match input {
                Some((bb, _)) => {
                    handle.get().append(&bb, b"", true);
                    true
                }
                None => py.detach(|| handle.get().pass(b"", OXWSGI_W_EOS as i32)),
            })
        })
    });
    match ok {
        Ok(Ok(true)) => 0,
        Err(e) => {
            r.log(crate::core::Level::Error, &format!("{directive}: interpreter {interp:?}: {e}"));
            -1
        }
        _ => -1,
    }
}

//! mod_python output filters: `PythonOutputFilter module[::function] NAME` registers
//! `NAME` with httpd; `SetOutputFilter NAME` / `AddOutputFilter NAME .ext` put it on a
//! request. Each time httpd hands the filter a brigade, the Python function is called with
//! a `filter` object: `read()` gives that brigade's data (`b""` when it is used up, `None`
//! once the response ended), `write()` sends data on, `close()` ends the response.
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

use super::httpd::{Filter, FilterBrigade, FilterHandle};
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

/// Filters by (lower-cased) name, read in the parent, inherited by the children.
static DEFS: Mutex<Option<HashMap<String, FilterDef>>> = Mutex::new(None);

/// The `filter` object of each running filter instance, by `ap_filter_t` address;
/// removed when the request ends.
static LIVE: Mutex<Option<HashMap<usize, Py<MpFilter>>>> = Mutex::new(None);

pub fn reset() {
    *DEFS.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

pub fn define(name: &str, def: FilterDef) {
    DEFS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(name.to_ascii_lowercase(), def);
}

fn def(name: &str) -> Option<FilterDef> {
    DEFS.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(name).cloned())
}

struct FilterState {
    handle: Option<FilterHandle>,
    thread: Option<ThreadId>,
    data: Vec<u8>,
    pos: usize,
    eos: bool,
    closed: bool,
    disabled: bool,
}

#[pyclass(frozen, module = "mod_python._oxwsgi", name = "mp_filter")]
pub struct MpFilter {
    state: Mutex<FilterState>,
    #[pyo3(get)]
    req: Py<MpRequest>,
    #[pyo3(get)]
    name: String,
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
        f(h.get(), &mut st)
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
        let h = self.with_f(|_, st| {
            if st.closed {
                return Err(PyRuntimeError::new_err("filter is closed"));
            }
            Ok(st.handle.clone().expect("checked by with_f"))
        })?;
        // Not under the state's lock: the next filters may run Python that uses this one.
        if py.detach(|| h.get().pass(&data, 0)) {
            Ok(())
        } else {
            Err(PyOSError::new_err("Write failed, client closed connection."))
        }
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let (h, closed) = self.with_f(|_, st| Ok((st.handle.clone().expect("checked by with_f"), st.closed)))?;
        if closed || py.detach(|| h.get().pass(b"", OXWSGI_W_FLUSH as i32)) {
            Ok(())
        } else {
            Err(PyOSError::new_err("Flush failed, client closed connection."))
        }
    }

    /// End the filtered response (an EOS goes to the next filter).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.with_f(|_, st| {
            let was_closed = std::mem::replace(&mut st.closed, true);
            Ok((!was_closed).then(|| st.handle.clone().expect("checked by with_f")))
        })?;
        if let Some(h) = h {
            py.detach(|| h.get().pass(b"", OXWSGI_W_EOS as i32));
        }
        Ok(())
    }

    /// Send the rest of the current brigade on unchanged.
    fn pass_on(&self, py: Python<'_>) -> PyResult<()> {
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

    #[getter]
    fn is_input(&self) -> bool {
        false
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
    let name = String::from_utf8_lossy(f.name()).into_owned();
    let (Some(r), Some(def)) = (f.request(), def(&name)) else {
        return if f.pass_brigade(bb) { 0 } else { -1 };
    };
    let key = f.as_ptr() as usize;
    // filter.disable(): everything goes through from now on, without Python.
    let disabled = LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
        .is_some_and(|o| o.get().state.lock().unwrap_or_else(|e| e.into_inner()).disabled);
    if disabled {
        return if f.pass_brigade(bb) { 0 } else { -1 };
    }
    let Some((data, eos)) = f.take(bb) else { return -1 };
    let Some(w) = worker::get() else { return -1 };
    let log = w.log().clone();
    if !w.ready(&*log, "PythonOutputFilter") {
        return -1;
    }
    let conf = r.dir_conf().modpython().unwrap_or_else(|| Arc::new(MpConf::default()));
    python::keep_thread_state();
    // SAFETY (FilterHandle::new's contract): the handle is stored for this call only; the
    // object checks the thread and clears it before this function returns.
    let handle = unsafe { FilterHandle::new(f) };
    let ok = Python::attach(|py| -> PyResult<bool> {
        let obj =
            LIVE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|m| m.get(&key)).map(|o| o.clone_ref(py));
        let obj = match obj {
            Some(o) => o,
            None => {
                let interp = String::from_utf8_lossy(r.server().hostname()).into_owned();
                let req = super::modpython::request_for(py, r, &conf, &interp)?;
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
                        }),
                        req,
                        name: name.clone(),
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
            st.data = data;
            st.pos = 0;
            st.eos = eos;
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
            log_exception(py, &*log, &format!("PythonOutputFilter {}", def.spec), "failed", &e);
        }
        let must_close = {
            let mut st = obj.get().state.lock().unwrap_or_else(|p| p.into_inner());
            st.handle = None;
            st.thread = None;
            st.data = Vec::new();
            let must = st.eos && !st.closed;
            st.closed |= must;
            must
        };
        // The response ended and the filter did not close it: close it, or the client
        // would wait for the rest forever.
        Ok(!must_close || py.detach(|| handle.get().pass(b"", OXWSGI_W_EOS as i32)))
    });
    match ok {
        Ok(true) => 0,
        _ => -1,
    }
}

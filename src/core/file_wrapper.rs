//! `wsgi.file_wrapper` (PEP 3333, "Optional Platform-Specific File Handling").
//!
//! Returned unchanged from the application, a wrapper over a real file lets the adapter
//! send the file with sendfile (see `response.rs`); otherwise it is an ordinary iterable
//! that reads `blksize` blocks.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pyclass(module = "oxwsgi", immutable_type, name = "FileWrapper")]
pub struct FileWrapper {
    pub(crate) filelike: Py<PyAny>,
    pub(crate) blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> FileWrapper {
        FileWrapper { filelike, blksize: if blksize > 0 { blksize as usize } else { 8192 } }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        let empty = match data.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => data.len().map(|n| n == 0).unwrap_or(false),
        };
        if empty {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(data)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}

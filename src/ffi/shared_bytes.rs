//! [`SharedBytes`]: part of a Python `bytes` object that a server sends from the object's
//! own memory, without the GIL and without copying it first.
//!
//! A streamed response under nginx used to be copied once in user space (into the batch
//! the event loop sends): 17 % of the workers' CPU for 16 KiB pieces (docs/profiles.md,
//! "stream"). CPython's `bytes` is immutable and keeps its data inside the object
//! (`ob_sval`), which never moves while the object lives, so a strong reference is all it
//! takes to read that memory from any thread.

use pyo3::types::{PyBytes, PyBytesMethods};
use pyo3::{Bound, Py};

/// A strong reference to a `bytes` object and a range of its data.
///
/// Invariant: `ptr..ptr + len` lies inside the data of `obj`, which this value keeps alive
/// and which CPython never changes or moves (bytes are immutable, their data inline).
/// Dropping it without the GIL defers the decref to pyo3's pool, drained the next time
/// any thread of the process attaches to Python.
pub struct SharedBytes {
    /// Never read: held for what it keeps alive.
    #[allow(dead_code)]
    obj: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointed-to memory is immutable and owned by `obj`, a `Py` (which is Send and
// Sync); reading it from several threads at once is safe.
unsafe impl Send for SharedBytes {}
// SAFETY: as above: `&SharedBytes` only gives out a shared slice of immutable memory.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    /// The first `len` bytes of `bytes` (all of them if it is shorter).
    pub fn new(bytes: &Bound<'_, PyBytes>, len: usize) -> SharedBytes {
        let data = bytes.as_bytes();
        let len = len.min(data.len());
        SharedBytes { obj: bytes.clone().unbind(), ptr: data.as_ptr(), len }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the struct's invariant: `obj` is alive while self is, and its data from
        // `ptr` is at least `len` bytes, immutable.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

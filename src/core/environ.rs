//! Building the WSGI environ dict.
//!
//! Per process, a template dict holds the keys that never change (`wsgi.version`,
//! `wsgi.multithread`, ...); each request copies it and adds its own keys. Values from the
//! request are bytes and become "native strings" decoded as latin-1 (PEP 3333, "Unicode
//! Issues"): every byte maps to the code point of the same value, so nothing is lost.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

/// Decode bytes as latin-1 into a Python str.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    crate::ffi::python::latin1_str(py, bytes)
}

/// The `HTTP_*` environ key for a request header name, or `None` for headers that must not
/// reach the application under that name: Content-Type and Content-Length have their own
/// CGI keys, and names with characters other than letters, digits and '-' are dropped
/// because `X_Forwarded_For` would otherwise spoof `X-Forwarded-For` (as Apache's CGI
/// and mod_wsgi do).
pub fn header_key(name: &[u8]) -> Option<Cow<'static, str>> {
    if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return None;
    }
    // Precomputed keys for the headers almost every request carries.
    const COMMON: [(&str, &str); 14] = [
        ("host", "HTTP_HOST"),
        ("user-agent", "HTTP_USER_AGENT"),
        ("accept", "HTTP_ACCEPT"),
        ("accept-encoding", "HTTP_ACCEPT_ENCODING"),
        ("accept-language", "HTTP_ACCEPT_LANGUAGE"),
        ("connection", "HTTP_CONNECTION"),
        ("cookie", "HTTP_COOKIE"),
        ("referer", "HTTP_REFERER"),
        ("cache-control", "HTTP_CACHE_CONTROL"),
        ("x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        ("x-forwarded-proto", "HTTP_X_FORWARDED_PROTO"),
        ("x-requested-with", "HTTP_X_REQUESTED_WITH"),
        ("origin", "HTTP_ORIGIN"),
        ("authorization", "HTTP_AUTHORIZATION"),
    ];
    for (n, k) in COMMON {
        if name.eq_ignore_ascii_case(n.as_bytes()) {
            return Some(Cow::Borrowed(k));
        }
    }
    if name.eq_ignore_ascii_case(b"content-type") {
        return Some(Cow::Borrowed("CONTENT_TYPE"));
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        return Some(Cow::Borrowed("CONTENT_LENGTH"));
    }
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.iter().map(|&c| if c == b'-' { '_' } else { c.to_ascii_uppercase() as char }));
    Some(Cow::Owned(key))
}

/// A fast hasher for the per-thread key caches, seeded per thread. Header names come from
/// clients, so the seed keeps collisions unpredictable; the caches are also bounded
/// ([`KEY_CACHE_LIMIT`]). SipHash (std's default) cost ~200 instructions per header here.
#[derive(Clone, Copy)]
struct SeededFx {
    seed: u64,
}

struct FxState(u64);

impl std::hash::Hasher for FxState {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl std::hash::BuildHasher for SeededFx {
    type Hasher = FxState;
    fn build_hasher(&self) -> FxState {
        FxState(self.seed)
    }
}

impl SeededFx {
    fn new() -> SeededFx {
        use std::hash::BuildHasher;
        SeededFx { seed: std::collections::hash_map::RandomState::new().hash_one(0x6f78_7773_6769u64) }
    }
}

/// Raw name -> interned environ key, or None for a name that is dropped.
type KeyCache = RefCell<HashMap<Vec<u8>, Option<Py<PyString>>, SeededFx>>;

thread_local! {
    /// Run-time keys (`SetEnv` names, `wsgi_param`): few, and the same on every request, so
    /// each thread makes each key string once.
    static KEYS: KeyCache = RefCell::new(HashMap::with_hasher(SeededFx::new()));
    /// Header name as received (any case) -> its `HTTP_*` key. Clients send the same few
    /// spellings on every request, so after the first request a header costs one lookup
    /// instead of validating and upper-casing its name.
    static HEADER_KEYS: KeyCache = RefCell::new(HashMap::with_hasher(SeededFx::new()));
}

/// Most distinct keys cached per thread (a client inventing header names must not grow
/// the cache without bound).
const KEY_CACHE_LIMIT: usize = 1024;

/// The key for `raw` from `cache`, computed with `make` (None = drop) on first use.
fn cached<'py>(
    cache: &'static std::thread::LocalKey<KeyCache>,
    py: Python<'py>,
    raw: &[u8],
    make: impl FnOnce(&[u8]) -> Option<String>,
) -> Option<Bound<'py, PyString>> {
    cache.with(|cell| {
        if let Some(k) = cell.borrow().get(raw) {
            return k.as_ref().map(|k| k.bind(py).clone());
        }
        let key = make(raw).map(|k| PyString::intern(py, &k));
        let mut map = cell.borrow_mut();
        if map.len() < KEY_CACHE_LIMIT {
            map.insert(raw.to_vec(), key.as_ref().map(|k| k.clone().unbind()));
        }
        key
    })
}

fn header_environ_key<'py>(py: Python<'py>, name: &[u8]) -> Option<Bound<'py, PyString>> {
    cached(&HEADER_KEYS, py, name, |n| header_key(n).map(Cow::into_owned))
}

/// The keys every request of this process shares.
pub struct EnvironTemplate {
    dict: Py<PyDict>,
}

impl EnvironTemplate {
    /// `server_software` is e.g. "Apache/2.4.62 (Debian) oxwsgi/0.1.0".
    pub fn new(py: Python<'_>, multithread: bool, multiprocess: bool, server_software: &str) -> PyResult<Self> {
        Self::with_keys(py, multithread, multiprocess, server_software, &[])
    }

    /// Like [`EnvironTemplate::new`]; `always` lists the keys the adapter sets on every
    /// request: they are put in the template (empty) so that each request overwrites them
    /// instead of growing the dict.
    pub fn with_keys(
        py: Python<'_>,
        multithread: bool,
        multiprocess: bool,
        server_software: &str,
        always: &[&str],
    ) -> PyResult<Self> {
        // Room for the fixed keys, the per-request keys and a typical set of headers, so
        // that filling a request's copy never resizes it.
        let d = crate::ffi::python::dict_with_capacity(py, 64)?;
        for k in always.iter().chain(&["wsgi.input", "wsgi.errors"]) {
            d.set_item(PyString::intern(py, k), "")?;
        }
        d.set_item("wsgi.version", PyTuple::new(py, [1, 0])?)?;
        d.set_item("wsgi.multithread", PyBool::new(py, multithread))?;
        d.set_item("wsgi.multiprocess", PyBool::new(py, multiprocess))?;
        d.set_item("wsgi.run_once", false)?;
        // Our input always ends with EOF at the end of the body, chunked or not.
        d.set_item("wsgi.input_terminated", true)?;
        d.set_item("wsgi.file_wrapper", py.get_type::<super::file_wrapper::FileWrapper>())?;
        d.set_item("GATEWAY_INTERFACE", "CGI/1.1")?;
        d.set_item("SERVER_SOFTWARE", server_software)?;
        d.set_item("oxwsgi.version", env!("CARGO_PKG_VERSION"))?;
        Ok(EnvironTemplate { dict: d.unbind() })
    }

    /// A fresh environ for one request.
    pub fn instantiate<'py>(&self, py: Python<'py>) -> PyResult<EnvironBuilder<'py>> {
        Ok(EnvironBuilder { dict: self.dict.bind(py).copy()?, py })
    }
}

/// Fills one request's environ.
pub struct EnvironBuilder<'py> {
    dict: Bound<'py, PyDict>,
    py: Python<'py>,
}

impl<'py> EnvironBuilder<'py> {
    /// Set `key` (use `pyo3::intern!` for constant keys) to the latin-1 decoding of `value`.
    pub fn set(&self, key: &Bound<'py, PyString>, value: &[u8]) -> PyResult<()> {
        self.dict.set_item(key, latin1(self.py, value))
    }

    /// Set `key` to a str value.
    pub fn set_str(&self, key: &Bound<'py, PyString>, value: &str) -> PyResult<()> {
        self.dict.set_item(key, value)
    }

    /// Set `key` to any Python object.
    pub fn set_object(&self, key: &Bound<'py, PyString>, value: &Bound<'py, PyAny>) -> PyResult<()> {
        self.dict.set_item(key, value)
    }

    /// Set a key only known at run time (`SetEnv` names, `wsgi_param`), decoding the value
    /// as latin-1. Keys are interned once per thread.
    pub fn set_dynamic(&self, key: &[u8], value: &[u8]) -> PyResult<()> {
        let key = cached(&KEYS, self.py, key, |k| Some(String::from_utf8_lossy(k).into_owned()))
            .expect("run-time keys are never dropped");
        self.dict.set_item(key, latin1(self.py, value))
    }

    /// Add a request header. Repeated headers are joined with ", " (RFC 7230 §3.2.2),
    /// except Cookie, joined with "; " (RFC 6265 §5.4). Returns false if the header was
    /// dropped (see [`header_key`]).
    pub fn add_header(&self, name: &[u8], value: &[u8]) -> PyResult<bool> {
        let Some(key) = header_environ_key(self.py, name) else { return Ok(false) };
        let value = latin1(self.py, value);
        match self.dict.get_item(&key)? {
            Some(old) => {
                let sep = if name.eq_ignore_ascii_case(b"cookie") { "; " } else { ", " };
                let joined = format!("{}{sep}{}", old.cast::<PyString>()?.to_str()?, value.to_str()?);
                self.dict.set_item(key, joined)?;
            }
            None => self.dict.set_item(key, value)?,
        }
        Ok(true)
    }

    pub fn finish(self) -> Bound<'py, PyDict> {
        self.dict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keys() {
        assert_eq!(header_key(b"Host").as_deref(), Some("HTTP_HOST"));
        assert_eq!(header_key(b"X-Custom-Thing").as_deref(), Some("HTTP_X_CUSTOM_THING"));
        assert_eq!(header_key(b"content-type").as_deref(), Some("CONTENT_TYPE"));
        assert_eq!(header_key(b"Content-Length").as_deref(), Some("CONTENT_LENGTH"));
        assert_eq!(header_key(b"X_Forwarded_For"), None);
        assert_eq!(header_key(b""), None);
    }
}

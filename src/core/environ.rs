//! Building the WSGI environ dict.
//!
//! Per process, a template dict holds the keys that never change (`wsgi.version`,
//! `wsgi.multithread`, ...); each request copies it and adds its own keys. Values from the
//! request are bytes and become "native strings" decoded as latin-1 (PEP 3333, "Unicode
//! Issues"): every byte maps to the code point of the same value, so nothing is lost.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::ManuallyDrop;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

use super::request::RequestMeta;

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

// The per-thread caches below hold Python objects and are never dropped
// (`ManuallyDrop`): a thread's locals are destroyed when it exits, and the thread that
// exits may be inside a request whose application released the GIL — prefork's SIGTERM
// handler exits the process from there — so releasing a dict then aborts the process
// ("PyThreadState_Get: the function must be called with the GIL held"). Threads end with
// their process; what a thread that ends earlier held is left to the process's exit.

/// Raw name -> interned environ key, or None for a name that is dropped.
type KeyCache = RefCell<ManuallyDrop<HashMap<Vec<u8>, Option<Py<PyString>>, SeededFx>>>;

thread_local! {
    /// Run-time keys (`SetEnv` names, `wsgi_param`): few, and the same on every request, so
    /// each thread makes each key string once.
    static KEYS: KeyCache = RefCell::new(ManuallyDrop::new(HashMap::with_hasher(SeededFx::new())));
    /// Header name as received (any case) -> its `HTTP_*` key. Clients send the same few
    /// spellings on every request, so after the first request a header costs one lookup
    /// instead of validating and upper-casing its name.
    static HEADER_KEYS: KeyCache = RefCell::new(ManuallyDrop::new(HashMap::with_hasher(SeededFx::new())));
}

/// Recurring values (see [`EnvironBuilder::set_shared`]) -> their str, per thread.
type ValueCache = RefCell<ManuallyDrop<HashMap<Vec<u8>, Py<PyString>, SeededFx>>>;

thread_local! {
    static VALUES: ValueCache = RefCell::new(ManuallyDrop::new(HashMap::with_hasher(SeededFx::new())));
}

/// A value remembered with the str made for it: when the same place of the next request
/// on this thread has the same bytes (the method, the mount, the server's names, the
/// `mod_wsgi.*` constants, most header values), the str is shared instead of made again:
/// a comparison of bytes instead of an allocation, a copy and a free, and no hashing.
#[derive(Default)]
struct Slot {
    raw: Vec<u8>,
    value: Option<Py<PyString>>,
    /// Had the same value on two requests in a row: it is in the thread's derived template
    /// ([`Slots::derived`]).
    stable: bool,
    /// Was stable, then changed: never in the derived template again.
    volatile: bool,
}

impl Slot {
    fn hits(&self, value: &[u8]) -> bool {
        self.value.is_some() && self.raw == value
    }

    /// After setting a value that did (`hit`) or did not repeat the previous one: whether
    /// the derived template must be made again.
    fn note(&mut self, hit: bool) -> bool {
        if hit && !self.stable && !self.volatile {
            self.stable = true;
            return true;
        }
        if !hit && self.stable {
            self.stable = false;
            self.volatile = true;
            return true;
        }
        false
    }

    fn get<'py>(&mut self, py: Python<'py>, value: &[u8]) -> Bound<'py, PyString> {
        if let Some(v) = &self.value {
            if self.raw == value {
                return v.bind(py).clone();
            }
        }
        let v = latin1(py, value);
        if value.len() <= VALUE_MAX_LEN {
            self.raw.clear();
            self.raw.extend_from_slice(value);
            self.value = Some(v.clone().unbind());
        } else {
            self.value = None;
        }
        v
    }
}

/// A run-time key (a server variable or a header name) remembered with its environ key.
#[derive(Default)]
struct KeySlot {
    raw: Vec<u8>,
    /// `None`: a header name that is dropped.
    key: Option<Py<PyString>>,
    value: Slot,
}

/// The places of a request whose values [`Slot`]s remember, per thread.
#[derive(Clone, Copy)]
enum Place {
    Method,
    ScriptName,
    PathInfo,
    Query,
    RequestUri,
    Protocol,
    ServerName,
    ServerPort,
    ServerAddr,
    RemoteAddr,
    RemotePort,
    DocumentRoot,
    ScriptFilename,
    Scheme,
    Https,
    ApplicationGroup,
    ProcessGroup,
    Callable,
    Reloading,
    Count,
}

/// Most server variables and headers whose keys and values are remembered by position.
const MAX_SLOTS: usize = 64;

/// A key set from the request's settings: its place, key, and value (`None`: not set).
type Entry<'a, 'py> = (Place, &'a Bound<'py, PyString>, Option<&'a [u8]>);

#[derive(Default)]
struct Slots {
    fixed: [Slot; Place::Count as usize],
    /// Server variables (`SetEnv`, the `mod_wsgi.*` keys of Apache), by position.
    vars: Vec<KeySlot>,
    /// Request headers, by position.
    headers: Vec<KeySlot>,
    /// The process template plus every stable key (above) with its value: what a request
    /// of the same mount copies instead of setting those keys one by one. For this
    /// template (held, so that its address is never another dict's) and this many server
    /// variables.
    derived: Option<(Py<PyDict>, usize, Py<PyDict>)>,
    /// Two of the keys above are the same key (a `SetEnv` of a CGI name): the order in
    /// which they are set matters, so no derived template is used.
    no_derived: bool,
}

thread_local! {
    // Never dropped: see the caches above.
    static SLOTS: RefCell<ManuallyDrop<Slots>> = RefCell::new(ManuallyDrop::new(Slots::default()));
}

/// Most distinct values, and the longest value, the per-thread value cache keeps.
const VALUE_CACHE_LIMIT: usize = 256;
const VALUE_MAX_LEN: usize = 512;

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

/// The environ key for `raw` through `slot` (see [`KeySlot`]), made by `make` (interned)
/// when the slot held another name.
fn remembered_key<'py>(
    py: Python<'py>,
    slot: &mut KeySlot,
    raw: &[u8],
    make: impl FnOnce(&[u8]) -> Option<String>,
) -> Option<Bound<'py, PyString>> {
    if slot.raw != raw || slot.raw.is_empty() {
        slot.key = make(raw).map(|k| PyString::intern(py, &k).unbind());
        slot.raw.clear();
        slot.raw.extend_from_slice(raw);
        slot.value = Slot::default();
    }
    slot.key.as_ref().map(|k| k.bind(py).clone())
}

fn header_environ_key<'py>(py: Python<'py>, name: &[u8]) -> Option<Bound<'py, PyString>> {
    cached(&HEADER_KEYS, py, name, |n| header_key(n).map(Cow::into_owned))
}

/// The keys [`EnvironTemplate::build`] sets on every request, on every server: put in the
/// template (empty) so that each request overwrites them instead of growing its dict.
pub const ENVIRON_KEYS: &[&str] = &[
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_ADDR",
    "REMOTE_ADDR",
    "SCRIPT_FILENAME",
    "wsgi.url_scheme",
    "mod_wsgi.application_group",
    "mod_wsgi.process_group",
    "mod_wsgi.callable_object",
    "mod_wsgi.script_reloading",
    "wsgi.input",
    "wsgi.errors",
];

/// The keys every request of this process shares.
pub struct EnvironTemplate {
    dict: Py<PyDict>,
}

impl EnvironTemplate {
    /// `server_software` is e.g. "Apache/2.4.62 (Debian) oxwsgi/0.1.0".
    pub fn new(py: Python<'_>, multithread: bool, multiprocess: bool, server_software: &str) -> PyResult<Self> {
        // Room for the fixed keys, the per-request keys and a typical set of headers, so
        // that filling a request's copy never resizes it.
        let d = crate::ffi::python::dict_with_capacity(py, 64)?;
        for k in ENVIRON_KEYS {
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
        d.set_item("mod_wsgi.version", super::modwsgi_module::VERSION)?;
        Ok(EnvironTemplate { dict: d.unbind() })
    }

    /// A fresh environ for one request, without its request keys.
    pub fn instantiate<'py>(&self, py: Python<'py>) -> PyResult<EnvironBuilder<'py>> {
        Ok(EnvironBuilder { dict: self.dict.bind(py).copy()?, py })
    }

    /// The environ of `m`: every rule about what the application sees is here.
    pub fn build<'py>(&self, py: Python<'py>, m: &RequestMeta<'_>) -> PyResult<EnvironBuilder<'py>> {
        SLOTS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slots) => self.fill(py, m, &mut slots),
            // Only if building an environ ever re-entered itself on this thread.
            Err(_) => self.fill(py, m, &mut Slots::default()),
        })
    }

    fn fill<'py>(&self, py: Python<'py>, m: &RequestMeta<'_>, slots: &mut Slots) -> PyResult<EnvironBuilder<'py>> {
        let (mut port, mut rport) = ([0; 20], [0; 20]);
        let name = server_name(&m.server_name);
        let group: &[u8] = if &*m.app.application_group == b"%{GLOBAL}" { b"" } else { &m.app.application_group };
        let https = is_https(m);
        // The CGI keys and the mod_wsgi keys that come from the request's settings, in the
        // order they are set (after the server's own variables, so that they win).
        let fixed: [Entry<'_, 'py>; Place::Count as usize] = [
            (Place::Method, intern!(py, "REQUEST_METHOD"), Some(&m.method)),
            (Place::ScriptName, intern!(py, "SCRIPT_NAME"), Some(&m.script_name)),
            (Place::PathInfo, intern!(py, "PATH_INFO"), Some(&m.path_info)),
            (Place::Query, intern!(py, "QUERY_STRING"), Some(&m.query)),
            (Place::RequestUri, intern!(py, "REQUEST_URI"), Some(&m.request_uri)),
            (Place::Protocol, intern!(py, "SERVER_PROTOCOL"), Some(&m.protocol)),
            (Place::ServerName, intern!(py, "SERVER_NAME"), Some(&name)),
            (Place::ServerPort, intern!(py, "SERVER_PORT"), Some(itoa(&mut port, m.server_port as u64))),
            (Place::ServerAddr, intern!(py, "SERVER_ADDR"), Some(&m.server_addr)),
            (Place::RemoteAddr, intern!(py, "REMOTE_ADDR"), Some(&m.remote_addr)),
            (Place::RemotePort, intern!(py, "REMOTE_PORT"), m.remote_port.map(|p| itoa(&mut rport, p as u64))),
            (Place::DocumentRoot, intern!(py, "DOCUMENT_ROOT"), m.document_root.as_deref()),
            (Place::ScriptFilename, intern!(py, "SCRIPT_FILENAME"), Some(&m.app.script)),
            (Place::Scheme, intern!(py, "wsgi.url_scheme"), Some(if https { b"https" } else { b"http" })),
            (Place::Https, intern!(py, "HTTPS"), https.then_some(b"on")),
            (Place::ApplicationGroup, intern!(py, "mod_wsgi.application_group"), Some(group)),
            (Place::ProcessGroup, intern!(py, "mod_wsgi.process_group"), Some(&m.app.process_group)),
            (Place::Callable, intern!(py, "mod_wsgi.callable_object"), Some(&m.app.callable)),
            (
                Place::Reloading,
                intern!(py, "mod_wsgi.script_reloading"),
                Some(if m.app.script_reloading { b"1" } else { b"0" }),
            ),
        ];
        let vars = &m.server_vars;
        while slots.vars.len() < vars.len().min(MAX_SLOTS) {
            slots.vars.push(KeySlot::default());
        }
        // The derived template serves if every key in it has its value again.
        let derived = match &slots.derived {
            Some((t, n, d)) if t.is(&self.dict) && *n == vars.len() && !slots.no_derived => {
                let vars_hit = vars
                    .iter()
                    .zip(&slots.vars)
                    .all(|((k, v), s)| !s.value.stable || (s.raw == **k && s.value.hits(v)));
                let fixed_hit = fixed.iter().all(|(p, _, v)| {
                    let s = &slots.fixed[*p as usize];
                    !s.stable || v.is_some_and(|v| s.hits(v))
                });
                (vars_hit && fixed_hit).then(|| d.bind(py).clone())
            }
            _ => None,
        };
        let from_derived = derived.is_some();
        let env = match derived {
            Some(d) => EnvironBuilder { dict: d.copy()?, py },
            None => self.instantiate(py)?,
        };
        let mut changed = false;
        // The server's own variables first, so that the CGI keys below win over them.
        for (i, (k, v)) in vars.iter().enumerate() {
            let Some(slot) = slots.vars.get_mut(i) else {
                env.set_dynamic(k, v)?;
                continue;
            };
            if from_derived && slot.value.stable {
                continue;
            }
            let hit = slot.raw == **k && slot.value.hits(v);
            env.set_remembered(slot, k, v, |k| Some(String::from_utf8_lossy(k).into_owned()))?;
            changed |= slot.value.note(hit);
        }
        for (place, key, value) in &fixed {
            let slot = &mut slots.fixed[*place as usize];
            if from_derived && slot.stable {
                continue;
            }
            let Some(v) = value else {
                changed |= slot.note(false);
                continue;
            };
            let hit = slot.hits(v);
            env.dict.set_item(key, slot.get(py, v))?;
            changed |= slot.note(hit);
        }
        // Keys that became stable (or stopped being) change the derived template.
        if (changed || slots.derived.is_none()) && !slots.no_derived {
            self.derive(py, slots, vars.len(), &fixed)?;
        }
        self.finish_fill(&env, m, slots)?;
        Ok(env)
    }

    /// The environ of `m` without this thread's remembered values (tests compare).
    #[cfg(test)]
    pub(crate) fn build_fresh<'py>(&self, py: Python<'py>, m: &RequestMeta<'_>) -> PyResult<EnvironBuilder<'py>> {
        self.fill(py, m, &mut Slots::default())
    }

    /// Make the thread's derived template: the process template plus every stable key.
    fn derive(&self, py: Python<'_>, slots: &mut Slots, nvars: usize, fixed: &[Entry<'_, '_>]) -> PyResult<()> {
        let d = self.dict.bind(py).copy()?;
        let mut keys: Vec<usize> = Vec::with_capacity(nvars + fixed.len());
        for s in slots.vars.iter().take(nvars) {
            if let Some(k) = &s.key {
                keys.push(k.as_ptr() as usize);
                if let (true, Some(v)) = (s.value.stable, &s.value.value) {
                    d.set_item(k.bind(py), v.bind(py))?;
                }
            }
        }
        for (place, key, value) in fixed {
            if value.is_some() {
                keys.push(key.as_ptr() as usize);
            }
            let s = &slots.fixed[*place as usize];
            if let (true, Some(v)) = (s.stable, &s.value) {
                d.set_item(key, v.bind(py))?;
            }
        }
        // Keys are interned: one key set twice is one pointer twice.
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() != n {
            slots.no_derived = true;
            slots.derived = None;
            return Ok(());
        }
        slots.derived = Some((self.dict.clone_ref(py), nvars, d.unbind()));
        Ok(())
    }

    /// The keys after the CGI ones: user, headers, length, configured parameters.
    fn finish_fill(&self, env: &EnvironBuilder<'_>, m: &RequestMeta<'_>, slots: &mut Slots) -> PyResult<()> {
        let py = env.py;
        if let Some(u) = &m.remote_user {
            env.set(intern!(py, "REMOTE_USER"), u)?;
        }
        if let Some(a) = &m.auth_type {
            env.set(intern!(py, "AUTH_TYPE"), a)?;
        }
        let mut i = 0;
        for (k, v) in &m.headers {
            if !passes(k, m.pass_authorization) {
                continue;
            }
            let v = trim_ows(v);
            if i >= MAX_SLOTS {
                env.add_header(k, v)?;
                continue;
            }
            if i == slots.headers.len() {
                slots.headers.push(KeySlot::default());
            }
            let slot = &mut slots.headers[i];
            i += 1;
            env.add_header_remembered(slot, k, v)?;
        }
        if let Some(n) = m.content_length {
            env.set(intern!(py, "CONTENT_LENGTH"), itoa(&mut [0; 20], n))?;
        }
        // Configured parameters last: they override.
        for (k, v) in &m.params {
            env.set_dynamic(k, v)?;
        }
        Ok(())
    }
}

/// Whether a request header reaches the application. `Authorization` only when configured
/// (mod_wsgi's rule: credentials are the server's business by default);
/// `Proxy-Authorization` never (credentials for a proxy, not for the application).
pub fn passes(name: &[u8], pass_authorization: bool) -> bool {
    if name.eq_ignore_ascii_case(b"authorization") {
        return pass_authorization;
    }
    !name.eq_ignore_ascii_case(b"proxy-authorization")
}

/// A header value without the spaces and tabs around it: RFC 9110 §5.5 says they are not
/// part of the value (Apache strips them while parsing; nginx keeps trailing ones).
pub fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = v.iter().position(|c| !is_ows(c)).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !is_ows(c)).map_or(start, |i| i + 1);
    &v[start..end]
}

/// `SERVER_NAME`: an IPv6 literal keeps its brackets (`[::1]`), as nginx and mod_wsgi give
/// it, so that `SERVER_NAME:SERVER_PORT` is a valid authority.
pub fn server_name(name: &[u8]) -> Cow<'_, [u8]> {
    if name.contains(&b':') && name.first() != Some(&b'[') {
        let mut v = Vec::with_capacity(name.len() + 2);
        v.push(b'[');
        v.extend_from_slice(name);
        v.push(b']');
        Cow::Owned(v)
    } else {
        Cow::Borrowed(name)
    }
}

/// The request reached the server over TLS, or the configuration says TLS was terminated in
/// front of it (`SetEnv HTTPS 1`, `wsgi_param HTTPS on`: mod_wsgi accepts "1" and "on").
pub fn is_https(m: &RequestMeta<'_>) -> bool {
    if m.tls {
        return true;
    }
    let var = m.params.iter().rev().chain(m.server_vars.iter().rev()).find(|(k, _)| &**k == b"HTTPS");
    var.is_some_and(|(_, v)| v.eq_ignore_ascii_case(b"on") || &**v == b"1")
}

/// Decimal digits of `n` in `buf`, without allocating (bytes: the environ decodes them as
/// latin-1 anyway, which skips a UTF-8 check).
pub(crate) fn itoa(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Lower-case hexadecimal digits of `n` appended to `out` (no allocation once `out` has
/// room).
pub(crate) fn push_hex(out: &mut Vec<u8>, n: u64) {
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[((n >> (i * 4)) & 0xf) as usize]);
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

    /// Set `key` to the latin-1 decoding of `value`, a value that recurs from request to
    /// request (the method, the protocol, the server's names, the script, the groups): each
    /// thread keeps the str objects of the values it has seen and hands out the same one
    /// again (Python strings are immutable), which spares an allocation, a copy and a free
    /// per key and request. Some come from clients (the method, a Host-derived SERVER_NAME,
    /// the client address): the cache is bounded per thread, so a client that varies them
    /// only makes lookups miss.
    pub fn set_shared(&self, key: &Bound<'py, PyString>, value: &[u8]) -> PyResult<()> {
        let py = self.py;
        let v = VALUES.with(|cell| {
            if let Some(v) = cell.borrow().get(value) {
                return v.bind(py).clone();
            }
            let v = latin1(py, value);
            let mut map = cell.borrow_mut();
            if map.len() < VALUE_CACHE_LIMIT && value.len() <= VALUE_MAX_LEN {
                map.insert(value.to_vec(), v.clone().unbind());
            }
            v
        });
        self.dict.set_item(key, v)
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

    /// Set a run-time key and its value through `slot`, which remembers the previous
    /// request's key and value at this position on this thread (`make`: the environ key of
    /// a raw name, `None` to drop it). Returns false if the key was dropped.
    fn set_remembered(
        &self,
        slot: &mut KeySlot,
        raw: &[u8],
        value: &[u8],
        make: impl FnOnce(&[u8]) -> Option<String>,
    ) -> PyResult<bool> {
        let Some(key) = remembered_key(self.py, slot, raw, make) else { return Ok(false) };
        self.dict.set_item(key, slot.value.get(self.py, value))?;
        Ok(true)
    }

    /// [`EnvironBuilder::add_header`] through a [`KeySlot`].
    fn add_header_remembered(&self, slot: &mut KeySlot, name: &[u8], value: &[u8]) -> PyResult<bool> {
        let py = self.py;
        let Some(key) = remembered_key(py, slot, name, |n| header_key(n).map(Cow::into_owned)) else {
            return Ok(false);
        };
        match self.dict.get_item(&key)? {
            Some(old) => self.join_header(&key, name, &old, &latin1(py, value))?,
            None => self.dict.set_item(key, slot.value.get(py, value))?,
        }
        Ok(true)
    }

    /// A repeated header: joined with ", " (RFC 7230 §3.2.2), except Cookie, joined with
    /// "; " (RFC 6265 §5.4).
    fn join_header(
        &self,
        key: &Bound<'py, PyString>,
        name: &[u8],
        old: &Bound<'py, PyAny>,
        value: &Bound<'py, PyString>,
    ) -> PyResult<()> {
        let sep = if name.eq_ignore_ascii_case(b"cookie") { "; " } else { ", " };
        let joined = format!("{}{sep}{}", old.cast::<PyString>()?.to_str()?, value.to_str()?);
        self.dict.set_item(key, joined)
    }

    /// Add a request header. Repeated headers are joined with ", " (RFC 7230 §3.2.2),
    /// except Cookie, joined with "; " (RFC 6265 §5.4). Returns false if the header was
    /// dropped (see [`header_key`]).
    pub fn add_header(&self, name: &[u8], value: &[u8]) -> PyResult<bool> {
        let Some(key) = header_environ_key(self.py, name) else { return Ok(false) };
        let value = latin1(self.py, value);
        match self.dict.get_item(&key)? {
            Some(old) => self.join_header(&key, name, &old, &value)?,
            None => self.dict.set_item(key, value)?,
        }
        Ok(true)
    }

    /// The dict being filled.
    pub fn dict(&self) -> &Bound<'py, PyDict> {
        &self.dict
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

//! A safe layer over httpd's structures, in the style of ngx-rust: `#[repr(transparent)]`
//! wrappers of `request_rec`, `conn_rec`, `server_rec`, `cmd_parms`, `apr_pool_t` and
//! `apr_table_t`, each reached from a raw pointer only through an `unsafe fn` whose
//! `# Safety` section states what the caller guarantees; everything past that is safe.
//!
//! Lifetimes: a `&'a Request` is valid while httpd runs the hook that handed the pointer
//! over; strings read from it borrow from it (they live in the request, connection or
//! configuration pool, which outlive the hook and are never changed in place). httpd's
//! filters change `request_rec`/`conn_rec` while the handler runs, so those wrappers are
//! `UnsafeCell`s changed through `&self` (like `Cell`, never shared between threads) and no
//! reference into the structs outlives the read of one field.
//!
//! With the pointer conversions of `entry.rs`, this is the only module of the adapter
//! where raw pointers are dereferenced; every `unsafe` block holds one operation.

use std::cell::UnsafeCell;
use std::ffi::{CStr, CString, c_char};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::core::Level;
use crate::ffi::httpd::*;

/// The bytes of a C string, or `None` for NULL.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string that stays valid and unchanged for
/// `'a`.
pub unsafe fn opt_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: p is non-null, NUL-terminated and valid for 'a (the caller's contract).
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// The bytes of a C string (empty for NULL).
///
/// # Safety
/// As [`opt_bytes`].
pub unsafe fn as_bytes<'a>(p: *const c_char) -> &'a [u8] {
    // SAFETY: forwarded contract: p is NULL or a string valid for 'a.
    unsafe { opt_bytes(p) }.unwrap_or(b"")
}

/// A C string for httpd: NUL bytes (which would cut it short) become `repl`.
pub fn c_string(s: &[u8], repl: &[u8]) -> CString {
    let mut v = Vec::with_capacity(s.len());
    for &b in s {
        if b == 0 {
            v.extend_from_slice(repl);
        } else {
            v.push(b);
        }
    }
    CString::new(v).expect("NUL bytes replaced")
}

/// The level number `ap_log_*error` expects.
pub fn aplog_level(level: Level) -> i32 {
    (match level {
        Level::Critical => APLOG_CRIT,
        Level::Error => APLOG_ERR,
        Level::Warning => APLOG_WARNING,
        Level::Notice => APLOG_NOTICE,
        Level::Info => APLOG_INFO,
        Level::Debug => APLOG_DEBUG,
    }) as i32
}

// ---- pools --------------------------------------------------------------------------

/// An APR pool. Allocation through `&Pool` is fine: APR pools are not shared between
/// threads while a hook uses them, and what they hand out is never moved or freed before
/// the pool itself is cleared.
#[repr(transparent)]
pub struct Pool(UnsafeCell<apr_pool_t>);

impl Pool {
    /// # Safety
    /// `p` must be a live pool, used only by this thread while the reference lives, and not
    /// cleared or destroyed during `'a`.
    pub unsafe fn from_ptr<'a>(p: *mut apr_pool_t) -> &'a Pool {
        // SAFETY: p is a live pool for 'a (the caller's contract); Pool is a
        // repr(transparent) UnsafeCell around apr_pool_t, so the cast keeps the layout.
        unsafe { &*(p as *const Pool) }
    }

    pub fn as_ptr(&self) -> *mut apr_pool_t {
        self.0.get()
    }

    /// A NUL-terminated copy of `s` in the pool, living as long as the pool.
    pub fn strdup(&self, s: &[u8]) -> &CStr {
        // SAFETY: apr_pstrmemdup copies s.len() readable bytes of s into this live pool and
        // NUL-terminates the copy.
        let p = unsafe { apr_pstrmemdup(self.as_ptr(), s.as_ptr() as *const c_char, s.len()) };
        // SAFETY: p is the NUL-terminated copy just made; it lives as long as the pool, and
        // the pool outlives &self.
        unsafe { CStr::from_ptr(p) }
    }

    /// Run `cleanup` (with no data) when the pool is cleared.
    pub fn on_clear(&self, cleanup: unsafe extern "C" fn(*mut std::ffi::c_void) -> apr_status_t) {
        // SAFETY: the pool is live; the cleanup takes no data (NULL), so nothing it reads
        // can dangle; apr_pool_cleanup_null is APR's no-op child cleanup.
        unsafe {
            apr_pool_cleanup_register(self.as_ptr(), std::ptr::null(), Some(cleanup), Some(apr_pool_cleanup_null))
        }
    }

    /// Compile `pattern` with httpd's regex engine (as mod_alias does); the regex is freed
    /// with the pool.
    pub fn regcomp(&self, pattern: &CStr, flags: i32) -> Option<Regex> {
        // SAFETY: the pool is live and pattern NUL-terminated; ap_pregcomp registers the
        // regex's cleanup in the pool.
        let re = unsafe { ap_pregcomp(self.as_ptr(), pattern.as_ptr(), flags) };
        NonNull::new(re).map(Regex)
    }
}

/// A compiled regex (`WSGIScriptAliasMatch`), in the configuration pool.
pub struct Regex(NonNull<ap_regex_t>);

// SAFETY: compiled at configuration time in the configuration pool, which outlives every
// request of the children that inherit it; read-only afterwards, and ap_regexec does not
// modify the compiled pattern, so sharing it between threads is sound.
unsafe impl Send for Regex {}
// SAFETY: see Send: only ever read after compilation.
unsafe impl Sync for Regex {}

/// One match of `AP_MAX_REG_MATCH` groups.
pub type Matches = [ap_regmatch_t; AP_MAX_REG_MATCH as usize];

impl Regex {
    /// Match `subject`; the groups land in `m`.
    pub fn exec(&self, subject: &CStr, m: &mut Matches) -> bool {
        // SAFETY: the regex is live (configuration pool) and read-only; subject is
        // NUL-terminated; m holds m.len() slots.
        unsafe { ap_regexec(self.0.as_ptr(), subject.as_ptr(), m.len(), m.as_mut_ptr(), 0) == 0 }
    }
}

/// `$N` of `template` substituted from a match of `subject`, in `pool`.
pub fn regsub<'p>(pool: &'p Pool, template: &CStr, subject: &CStr, m: &mut Matches) -> Option<&'p [u8]> {
    // SAFETY: the pool is live; template and subject are NUL-terminated; m holds m.len()
    // slots filled by Regex::exec over the same subject.
    let p = unsafe { ap_pregsub(pool.as_ptr(), template.as_ptr(), subject.as_ptr(), m.len(), m.as_mut_ptr()) };
    // SAFETY: ap_pregsub returns NULL or a NUL-terminated string in the pool, which
    // outlives 'p.
    unsafe { opt_bytes(p) }
}

// ---- tables -------------------------------------------------------------------------

/// An APR table, read-only: the tables this module reads (`headers_in`,
/// `subprocess_env`, `notes`) are changed by it only through `Request::set_note` and
/// mod_python's `Request::table_*` (which copy what they read), never while a `&Table` of
/// them is held, so an iterator's entry array cannot move under it.
#[repr(transparent)]
pub struct Table(UnsafeCell<apr_table_t>);

impl Table {
    /// # Safety
    /// `t` must be NULL or a live table that nothing changes during `'a`.
    pub unsafe fn from_ptr<'a>(t: *const apr_table_t) -> Option<&'a Table> {
        // SAFETY: t is NULL or live and unchanged for 'a (the caller's contract); Table is a
        // repr(transparent) wrapper, so the cast keeps the layout.
        unsafe { (t as *const Table).as_ref() }
    }

    fn as_ptr(&self) -> *mut apr_table_t {
        self.0.get()
    }

    /// The value of the first entry named `key` (case-insensitive).
    pub fn get(&self, key: &CStr) -> Option<&[u8]> {
        // SAFETY: the table is live; key is NUL-terminated.
        let v = unsafe { apr_table_get(self.as_ptr(), key.as_ptr()) };
        // SAFETY: a table value is NULL or a NUL-terminated pool string that stays valid
        // while the table is borrowed unchanged.
        unsafe { opt_bytes(v) }
    }

    /// Every (key, value) entry, in order (repeated keys repeatedly).
    pub fn iter(&self) -> TableIter<'_> {
        // SAFETY: the table is live; apr_table_elts only returns its entry array.
        let arr = unsafe { apr_table_elts(self.as_ptr()) };
        // SAFETY: the array header of a live table is valid while the table is.
        let arr = unsafe { &*arr };
        let entries = if arr.elts.is_null() || arr.nelts <= 0 {
            &[][..]
        } else {
            // SAFETY: elts points to nelts apr_table_entry_t (that is what a table's array
            // holds), valid while the table is borrowed unchanged.
            unsafe { std::slice::from_raw_parts(arr.elts as *const apr_table_entry_t, arr.nelts as usize) }
        };
        TableIter { entries: entries.iter(), _table: PhantomData }
    }
}

/// The entries of a [`Table`].
pub struct TableIter<'t> {
    entries: std::slice::Iter<'t, apr_table_entry_t>,
    _table: PhantomData<&'t Table>,
}

impl<'t> Iterator for TableIter<'t> {
    type Item = (&'t [u8], &'t [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        for e in self.entries.by_ref() {
            if e.key.is_null() {
                continue; // a deleted entry
            }
            // SAFETY: keys and values of a live table are NUL-terminated pool strings
            // valid while the table is borrowed ('t).
            let k = unsafe { as_bytes(e.key) };
            // SAFETY: as for the key: a pool string of the table, valid for 't.
            let v = unsafe { as_bytes(e.val) };
            return Some((k, v));
        }
        None
    }
}

// ---- servers, connections -----------------------------------------------------------

/// A `server_rec` (the main server or a virtual host); lives in the configuration pool.
#[repr(transparent)]
pub struct Server(server_rec);

// SAFETY: after the configuration is read (in the parent, before any child thread
// exists) nothing changes a server_rec; children only read it, and ap_log_error, the one
// function this wrapper passes it to, is thread-safe.
unsafe impl Sync for Server {}

impl Server {
    /// # Safety
    /// `s` must be NULL or a live `server_rec` (they live as long as the configuration).
    pub unsafe fn from_ptr<'a>(s: *const server_rec) -> Option<&'a Server> {
        // SAFETY: s is NULL or a live server_rec for 'a (the caller's contract).
        unsafe { (s as *const Server).as_ref() }
    }

    pub fn as_ptr(&self) -> *const server_rec {
        &self.0
    }

    pub fn is_virtual(&self) -> bool {
        self.0.is_virtual != 0
    }

    /// The next server of httpd's list (the main server is first, then the virtual hosts).
    pub fn next(&self) -> Option<&Server> {
        // SAFETY: s->next is NULL or a live server_rec of the same configuration, which
        // lives as long as this one.
        unsafe { Server::from_ptr(self.0.next) }
    }

    /// `ServerName` (the host part), as the configuration set it.
    pub fn hostname(&self) -> &[u8] {
        // SAFETY: server_hostname is NULL or a configuration pool string, which lives as
        // long as the server_rec.
        unsafe { as_bytes(self.0.server_hostname) }
    }

    /// Log `msg` to this server's error log.
    pub fn log(&self, level: Level, msg: &str) {
        let m = c_string(msg.as_bytes(), b"\\0");
        // SAFETY: the server_rec is live; the shim logs "%s" with the NUL-terminated m.
        unsafe { oxwsgi_ap_log_server(self.as_ptr(), aplog_level(level), m.as_ptr()) }
    }

    /// `Timeout` of this server.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_micros(u64::try_from(self.0.timeout).unwrap_or(0))
    }
}

// ---- processes the parent owns (daemon mode) ------------------------------------------

/// A listening socket kept across configuration reloads (the module is unloaded and loaded
/// again on every restart; httpd's retained memory is not).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RetainedSocket {
    /// The group definition's hash; 0 = a free slot.
    pub hash: u64,
    pub fd: i32,
    pub path_len: u32,
    pub path: [u8; 108],
}

/// A daemon process started by a previous configuration generation.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RetainedPid {
    pub pid: i32,
    pub hash: u64,
}

/// What the parent keeps across restarts: plain numbers only (no pointer into the module,
/// which is unloaded).
#[repr(C)]
pub struct Retained {
    pub sockets: [RetainedSocket; 64],
    pub pids: [RetainedPid; 1024],
}

/// Run `f` on this process's retained daemon data (created zeroed the first time). Only
/// the parent's configuration and maintenance code (one thread) and a child right after
/// fork call this; a nested call panics instead of aliasing.
pub fn with_retained<R>(f: impl FnOnce(&mut Retained) -> R) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    static BUSY: AtomicBool = AtomicBool::new(false);
    const KEY: &CStr = c"oxwsgi-daemons-v1";
    assert!(!BUSY.swap(true, Ordering::Acquire), "retained daemon data borrowed twice");
    struct Release<'a>(&'a AtomicBool);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _release = Release(&BUSY);
    // SAFETY: a lookup by a NUL-terminated key in httpd's global pool.
    let mut p = unsafe { ap_retained_data_get(KEY.as_ptr()) };
    if p.is_null() {
        // SAFETY: allocates size bytes for the key in httpd's global pool, which lives as
        // long as the process.
        p = unsafe { ap_retained_data_create(KEY.as_ptr(), std::mem::size_of::<Retained>()) };
        // SAFETY: p is a fresh allocation of size_of::<Retained>() bytes; all-zero bytes are
        // a valid Retained (integers and byte arrays only).
        unsafe { std::ptr::write_bytes(p as *mut u8, 0, std::mem::size_of::<Retained>()) };
    }
    // SAFETY: p points to a Retained (created above with its size, zeroed, only ever
    // written through this function); BUSY makes this the only reference.
    f(unsafe { &mut *(p as *mut Retained) })
}

/// The callback httpd's MPM calls about an "other child" (`APR_OC_REASON_*`).
pub type OtherChildFn = unsafe extern "C" fn(reason: i32, data: *mut std::ffi::c_void, status: i32);

/// Have the MPM watch process `pid`: when its main loop reaps it, `cb(APR_OC_REASON_DEATH,
/// key, status)` runs in the parent. The registration ends with `pool` or with
/// [`unregister_other_child`]; `key` must be unique among live registrations.
pub fn register_other_child(pool: &Pool, pid: i32, key: usize, cb: OtherChildFn) {
    // SAFETY: the pool is live; apr_palloc returns memory for one apr_proc_t (suitably
    // aligned, as every pool allocation).
    let proc_ = unsafe { apr_palloc(pool.as_ptr(), std::mem::size_of::<apr_proc_t>()) } as *mut apr_proc_t;
    let value = apr_proc_t { pid, in_: std::ptr::null_mut(), out: std::ptr::null_mut(), err: std::ptr::null_mut() };
    // SAFETY: proc_ is the fresh allocation of one apr_proc_t (it lives as long as the
    // pool, like the registration that points at it).
    unsafe { proc_.write(value) };
    // SAFETY: proc_ and the pool outlive the registration (the pool's cleanup ends it);
    // key is an opaque number APR only compares; no write pipe is watched (NULL).
    unsafe {
        apr_proc_other_child_register(
            proc_,
            Some(cb),
            key as *mut std::ffi::c_void,
            std::ptr::null_mut(),
            pool.as_ptr(),
        )
    };
}

/// End the registration made with `key` (the callback runs once more with
/// `APR_OC_REASON_UNREGISTER`).
pub fn unregister_other_child(key: usize) {
    // SAFETY: APR looks the registration up by this opaque value and ignores unknown ones.
    unsafe { apr_proc_other_child_unregister(key as *mut std::ffi::c_void) };
}

/// A `conn_rec`. httpd's filters change it (`aborted`) while the request runs, hence the
/// `UnsafeCell`; every read copies one field.
#[repr(transparent)]
pub struct Connection(UnsafeCell<conn_rec>);

impl Connection {
    fn get<T: Copy>(&self, f: impl FnOnce(&conn_rec) -> T) -> T {
        // SAFETY: the connection is live while a request on it is (Request::connection);
        // the reference lasts for the read of one field by `f`, on the request's thread,
        // the only one that changes the connection meanwhile.
        f(unsafe { &*self.0.get() })
    }

    /// The server's own address on this connection.
    pub fn local_ip(&self) -> &[u8] {
        let p = self.get(|c| c.local_ip);
        // SAFETY: local_ip is NULL or a string of the connection pool, which outlives
        // &self and is never changed.
        unsafe { as_bytes(p) }
    }

    /// The port the connection was accepted on (0 if unknown).
    pub fn local_port(&self) -> u16 {
        let a = self.get(|c| c.local_addr);
        // SAFETY: local_addr is NULL or an address in the connection pool, set when the
        // connection was accepted and never changed.
        unsafe { a.as_ref() }.map_or(0, |a| a.port)
    }

    /// The client's port, when the address is known.
    pub fn client_port(&self) -> Option<u16> {
        let a = self.get(|c| c.client_addr);
        // SAFETY: client_addr is NULL or an address in the connection pool, set when the
        // connection was accepted and never changed.
        unsafe { a.as_ref() }.map(|a| a.port)
    }

    pub fn aborted(&self) -> bool {
        self.get(|c| c.aborted) != 0
    }
}

// ---- requests -----------------------------------------------------------------------

/// A `request_rec` being handled by the calling hook.
///
/// httpd's filters and this module change the request while strings read from it are in
/// use, so `Request` is an `UnsafeCell` (like `Cell`: changes through `&Request`, never
/// shared between threads). What the accessors return never points into the struct
/// itself: strings live in the request, connection or configuration pool, which keep them
/// valid and unchanged until the request ends, whatever later happens to the fields.
#[repr(transparent)]
pub struct Request(UnsafeCell<request_rec>);

/// Outcome of [`Request::send_file`].
pub enum SendFile {
    Sent,
    /// The file cannot be sent as a file bucket: send its bytes instead.
    Unsupported,
    /// The output filters failed (client gone?).
    Failed,
}

/// Outcome of [`Request::read`].
pub enum Read {
    /// So many bytes; `eos` when the body ended with them.
    Data { got: usize, eos: bool },
    /// Client gone, timeout, bad chunk framing, body over LimitRequestBody.
    Error,
}

impl Request {
    /// # Safety
    /// `r` must be the live request of a hook running on this thread and stay live during
    /// `'a`; other code changes it during `'a` only from this thread (httpd's filters,
    /// called from this module).
    pub unsafe fn from_ptr<'a>(r: *mut request_rec) -> &'a Request {
        // SAFETY: r is live for 'a and used from this thread only (the caller's contract);
        // Request is a repr(transparent) UnsafeCell of request_rec, so the layout is the
        // same and changes through the pointer are allowed.
        unsafe { &*(r as *const Request) }
    }

    /// The pointer, for httpd's functions.
    pub fn as_ptr(&self) -> *mut request_rec {
        self.0.get()
    }

    /// A copy of the struct's field `f` (a pointer or number).
    fn get<T: Copy>(&self, f: impl FnOnce(&request_rec) -> T) -> T {
        // SAFETY: the request is live (constructor contract); the reference lasts only for
        // the read of one field by `f`, during which nothing else runs on this thread.
        f(unsafe { &*self.0.get() })
    }

    /// Change the struct (one field assignment in `f`).
    fn set(&self, f: impl FnOnce(&mut request_rec)) {
        // SAFETY: the request is live and used from this thread only; the exclusive
        // reference lasts for the assignment in `f`, and no reference into the struct is
        // held anywhere (accessors return copies or pool data).
        f(unsafe { &mut *self.0.get() })
    }

    /// The string field that `f` selects (`NULL` → `None`).
    fn field(&self, f: impl FnOnce(&request_rec) -> *const c_char) -> Option<&[u8]> {
        let p = self.get(f);
        // SAFETY: every string field of request_rec is NULL or a NUL-terminated string in
        // the request, connection or configuration pool, which stay valid and unchanged
        // while the request (and so &self) lives; a field changed later points elsewhere.
        unsafe { opt_bytes(p) }
    }

    pub fn uri(&self) -> &[u8] {
        self.field(|r| r.uri).unwrap_or(b"")
    }
    /// The URI as a C string (regex subjects).
    pub fn uri_cstr(&self) -> &CStr {
        let p = self.get(|r| r.uri);
        if p.is_null() {
            return c"";
        }
        // SAFETY: uri is a NUL-terminated string of the request pool, valid while the
        // request is.
        unsafe { CStr::from_ptr(p) }
    }
    pub fn filename(&self) -> &[u8] {
        self.field(|r| r.filename).unwrap_or(b"")
    }
    pub fn path_info(&self) -> &[u8] {
        self.field(|r| r.path_info).unwrap_or(b"")
    }
    pub fn args(&self) -> &[u8] {
        self.field(|r| r.args).unwrap_or(b"")
    }
    pub fn unparsed_uri(&self) -> &[u8] {
        self.field(|r| r.unparsed_uri).unwrap_or(b"")
    }
    pub fn method(&self) -> &[u8] {
        self.field(|r| r.method).unwrap_or(b"")
    }
    pub fn protocol(&self) -> &[u8] {
        self.field(|r| r.protocol).unwrap_or(b"")
    }
    pub fn useragent_ip(&self) -> &[u8] {
        self.field(|r| r.useragent_ip).unwrap_or(b"")
    }
    pub fn user(&self) -> Option<&[u8]> {
        self.field(|r| r.user)
    }
    pub fn auth_type(&self) -> Option<&[u8]> {
        self.field(|r| r.ap_auth_type)
    }
    /// The handler name (`wsgi-script`, `application/x-httpd-wsgi`).
    pub fn handler(&self) -> &[u8] {
        self.field(|r| r.handler).unwrap_or(b"")
    }
    /// The request's id for the error log (`%L`), if httpd made one.
    pub fn log_id(&self) -> Option<&[u8]> {
        self.field(|r| r.log_id)
    }
    /// When the request line arrived, in microseconds since the epoch.
    pub fn request_time(&self) -> i64 {
        self.get(|r| r.request_time)
    }
    /// `Options ExecCGI` is on for the request's directory.
    pub fn exec_cgi_allowed(&self) -> bool {
        // SAFETY: the request is live; ap_allow_options only reads its configuration.
        unsafe { oxwsgi_ap_exec_cgi_allowed(self.as_ptr()) != 0 }
    }
    /// `AcceptPathInfo Off` and the request has extra path.
    pub fn path_info_rejected(&self) -> bool {
        // SAFETY: the request is live; the shim reads two of its fields.
        unsafe { oxwsgi_ap_path_info_rejected(self.as_ptr()) != 0 }
    }
    /// The first output filter is a content or resource filter (mod_deflate & co.), which
    /// may need a HEAD response's body to compute its headers.
    pub fn has_content_filter(&self) -> bool {
        // SAFETY: the request is live; the shim reads r->output_filters and its frec.
        unsafe { oxwsgi_ap_has_content_filter(self.as_ptr()) != 0 }
    }

    /// What the directory walk found at `filename`.
    pub fn filetype(&self) -> apr_filetype_e {
        self.get(|r| r.finfo.filetype)
    }

    pub fn pool(&self) -> &Pool {
        let p = self.get(|r| r.pool);
        // SAFETY: the request pool is live while the request is, and only this thread
        // allocates from it during the hook.
        unsafe { Pool::from_ptr(p) }
    }

    pub fn server(&self) -> &Server {
        let s = self.get(|r| r.server);
        // SAFETY: r->server is the live server_rec (configuration pool) of the request.
        unsafe { Server::from_ptr(s) }.expect("a request has a server")
    }

    /// The server, for objects that outlive the request (a log the application keeps).
    pub fn server_static(&self) -> &'static Server {
        let s = self.get(|r| r.server);
        // SAFETY: server_recs live in the configuration pool, which a child never clears
        // (it exits instead), so they outlive every request and thread of the child.
        unsafe { Server::from_ptr(s) }.expect("a request has a server")
    }

    pub fn connection(&self) -> &Connection {
        let c = self.get(|r| r.connection);
        // SAFETY: r->connection is the live conn_rec the request arrived on; it outlives
        // the request, and only this thread uses it meanwhile.
        unsafe { (c as *const Connection).as_ref() }.expect("a request has a connection")
    }

    /// The table that `f` selects.
    fn table(&self, f: impl FnOnce(&request_rec) -> *mut apr_table_t) -> &Table {
        let t = self.get(f);
        // SAFETY: the request's tables live in its pool; this module changes none of the
        // tables it reads (headers_in, subprocess_env, notes are read by the handler, notes
        // written by translate_name only, through set_note, not while a &Table is held).
        unsafe { Table::from_ptr(t) }.expect("request tables are never NULL")
    }

    pub fn headers_in(&self) -> &Table {
        self.table(|r| r.headers_in)
    }
    pub fn subprocess_env(&self) -> &Table {
        self.table(|r| r.subprocess_env)
    }

    /// A note (another module's, or ours from `translate_name`).
    pub fn note(&self, key: &CStr) -> Option<&[u8]> {
        self.table(|r| r.notes).get(key)
    }

    /// Set a note (both strings copied into the request pool).
    pub fn set_note(&self, key: &CStr, value: &CStr) {
        let t = self.get(|r| r.notes);
        // SAFETY: notes is the request's live table; apr_table_set copies both strings; no
        // &Table of it is alive (note() returns pool strings, not the table).
        unsafe { apr_table_set(t, key.as_ptr(), value.as_ptr()) }
    }

    /// Add a response header (both strings copied into the request pool).
    pub fn add_header_out(&self, key: &CStr, value: &CStr) {
        let t = self.get(|r| r.headers_out);
        // SAFETY: headers_out is the request's live table, which this module never lends
        // out; apr_table_add copies both strings.
        unsafe { apr_table_add(t, key.as_ptr(), value.as_ptr()) }
    }

    /// The host the client asked for (`UseCanonicalName` decides), without IPv6 brackets.
    pub fn server_name(&self) -> &[u8] {
        // SAFETY: the request is live; ap_get_server_name reads it and returns a pool
        // string.
        let p = unsafe { ap_get_server_name(self.as_ptr()) };
        // SAFETY: the name is r->hostname or a configuration string, both valid while the
        // request is.
        unsafe { as_bytes(p) }
    }

    pub fn server_port(&self) -> u16 {
        // SAFETY: the request is live; ap_get_server_port only reads it.
        unsafe { ap_get_server_port(self.as_ptr()) }
    }

    /// "http" or "https" (mod_ssl answers the hook).
    pub fn http_scheme(&self) -> &[u8] {
        // SAFETY: the request is live; the hook only reads it and returns a static or pool
        // string.
        let p = unsafe { ap_run_http_scheme(self.as_ptr()) };
        // SAFETY: the scheme is NULL or a static string.
        unsafe { as_bytes(p) }
    }

    pub fn document_root(&self) -> &[u8] {
        // SAFETY: the request is live; ap_document_root only reads its configuration.
        let p = unsafe { ap_document_root(self.as_ptr()) };
        // SAFETY: the document root is a configuration pool string, valid while the
        // request is.
        unsafe { as_bytes(p) }
    }

    /// `LimitRequestBody` for this request (0: unlimited).
    pub fn limit_req_body(&self) -> u64 {
        // SAFETY: the request is live; ap_get_limit_req_body only reads its configuration.
        let n = unsafe { ap_get_limit_req_body(self.as_ptr()) };
        u64::try_from(n).unwrap_or(0)
    }

    /// This module's merged per-directory configuration.
    pub fn dir_conf(&self) -> &DirConf {
        // SAFETY: the request is live; the shim only reads r->per_dir_config.
        let dc = unsafe { oxwsgi_ap_dir_conf(self.as_ptr()) };
        // SAFETY: httpd creates (and merges) one config per context, in the configuration
        // or request pool, never NULL and never changed while a request uses it.
        unsafe { &*(dc as *const DirConf) }
    }

    /// Point the request at `filename` with `handler`, for the directory walk and the
    /// handler hooks (`translate_name`).
    pub fn set_filename_and_handler(&self, filename: &[u8], handler: &'static CStr) {
        let f = self.pool().strdup(filename).as_ptr() as *mut c_char;
        self.set(|r| r.filename = f);
        self.set(|r| r.handler = handler.as_ptr());
    }

    /// The final status, and the status line as given (copied into the request pool).
    pub fn set_status(&self, status: u16, line: &[u8]) {
        let l = self.pool().strdup(line).as_ptr();
        self.set(|r| r.status = i32::from(status));
        self.set(|r| r.status_line = l);
    }

    pub fn set_content_type(&self, ct: &[u8]) {
        let ct = self.pool().strdup(ct).as_ptr();
        // SAFETY: the request is live; the type is a request pool string (httpd keeps the
        // pointer, which the pool keeps valid).
        unsafe { ap_set_content_type(self.as_ptr(), ct) }
    }

    pub fn set_content_length(&self, len: u64) {
        // SAFETY: the request is live; httpd formats the number into its own pool.
        unsafe { ap_set_content_length(self.as_ptr(), len as apr_off_t) }
    }

    /// A new brigade from the request pool (freed with it).
    pub fn brigade(&self) -> Brigade {
        // SAFETY: the request is live; the shim allocates the brigade from its pool.
        let bb = unsafe { oxwsgi_ap_brigade(self.as_ptr()) };
        Brigade(NonNull::new(bb).expect("apr_brigade_create does not fail"))
    }

    /// Read up to `buf.len()` body bytes through the input filters.
    pub fn read(&self, bb: &Brigade, buf: &mut [u8]) -> Read {
        let mut got = 0usize;
        // SAFETY: the request is live and bb its brigade; buf is writable for buf.len()
        // bytes and got for one usize.
        let rc = unsafe {
            oxwsgi_ap_read(self.as_ptr(), bb.0.as_ptr(), buf.as_mut_ptr() as *mut c_char, buf.len(), &mut got)
        };
        match rc as u32 {
            OXWSGI_READ_OK => Read::Data { got, eos: false },
            OXWSGI_READ_EOS => Read::Data { got, eos: true },
            _ => Read::Error,
        }
    }

    /// Pass `data` down the output filters as a transient bucket (`flags`: OXWSGI_W_*).
    pub fn write(&self, bb: &Brigade, data: &[u8], flags: i32) -> bool {
        // SAFETY: the request is live and bb its brigade; data is readable for its length
        // during the call, and filters that keep a transient bucket copy it.
        let rc =
            unsafe { oxwsgi_ap_write(self.as_ptr(), bb.0.as_ptr(), data.as_ptr() as *const c_char, data.len(), flags) };
        rc == 0
    }

    /// Pass `len` bytes of the file `fd` from `offset` as a file bucket (the shim sends a
    /// `dup()` of `fd`).
    pub fn send_file(&self, bb: &Brigade, fd: i32, offset: u64, len: u64, flags: i32) -> SendFile {
        // SAFETY: the request is live and bb its brigade; the shim dups fd, so the bucket
        // does not depend on the caller's descriptor staying open.
        let rc = unsafe {
            oxwsgi_ap_send_file(self.as_ptr(), bb.0.as_ptr(), fd, offset as apr_off_t, len as apr_off_t, flags)
        };
        match rc {
            0 => SendFile::Sent,
            -2 => SendFile::Unsupported,
            _ => SendFile::Failed,
        }
    }

    /// End the response as broken (no final chunk, connection closed).
    pub fn abort(&self, bb: &Brigade) {
        // SAFETY: the request is live and bb its brigade.
        unsafe { oxwsgi_ap_abort(self.as_ptr(), bb.0.as_ptr()) };
    }

    /// Log `msg` against this request (adds the client address).
    pub fn log(&self, level: Level, msg: &str) {
        let m = c_string(msg.as_bytes(), b"\\0");
        // SAFETY: the request is live; the shim logs "%s" with the NUL-terminated m.
        unsafe { oxwsgi_ap_log_request(self.as_ptr(), aplog_level(level), m.as_ptr()) }
    }
}

/// A server object (a request, a filter) lent, for the time of one hook or filter call, to
/// objects that must be `Send + Sync` because Python objects hold them (the core's body,
/// sink and log; mod_python's `req` and filter objects); the lent object itself stays on the
/// thread of that call (see [`Lent::new`]). One type for both, so the contract is written
/// once.
pub struct Lent<T: Lendable>(NonNull<T>);

/// The server objects that may be lent ([`Lent`]): httpd's per-call structures.
pub trait Lendable {}
impl Lendable for Request {}
impl Lendable for Filter {}

/// A request lent to the objects of its handler.
pub type RequestHandle = Lent<Request>;
/// A filter lent to its Python object during one filter call.
pub type FilterHandle = Lent<Filter>;

impl<T: Lendable> Clone for Lent<T> {
    fn clone(&self) -> Self {
        Lent(self.0)
    }
}

// SAFETY: the handle is only dereferenced on the thread of the call that lent it, while
// that call runs (Lent::new's contract); it crosses threads only inside Python objects that
// this thread drives.
unsafe impl<T: Lendable> Send for Lent<T> {}
// SAFETY: as Send: no two threads use the lent object at once.
unsafe impl<T: Lendable> Sync for Lent<T> {}

impl<T: Lendable> Lent<T> {
    /// # Safety
    /// Every use of the handle (and its clones) must happen on the thread of the hook or
    /// filter call that handed `x` over, before that call returns; the holder of an object
    /// that keeps a handle longer must stop using it first (see `RequestLog::expire`; the
    /// mod_python objects check both before each use).
    pub unsafe fn new(x: &T) -> Lent<T> {
        Lent(NonNull::from(x))
    }

    pub fn get(&self) -> &T {
        // SAFETY: the object is live and used from its call's thread (new's contract).
        unsafe { self.0.as_ref() }
    }
}

/// A brigade of the request pool, reused for a whole body or response.
pub struct Brigade(NonNull<apr_bucket_brigade>);

// SAFETY: a brigade is only used through Request methods, on the handler's thread while
// the request is live (the objects holding one also hold a RequestHandle, under the same
// contract); Python objects that hold those objects need them Send.
unsafe impl Send for Brigade {}
// SAFETY: as Send: no two threads use the brigade at once.
unsafe impl Sync for Brigade {}

/// This module's per-directory configuration (the C struct `oxwsgi_dir_conf`).
#[repr(transparent)]
pub struct DirConf(oxwsgi_dir_conf);

impl DirConf {
    /// # Safety
    /// `p` must be this module's dir config of the directive being read (httpd hands it to
    /// the directive handler), allocated in the configuration pool and not otherwise
    /// accessed during `'a`.
    pub unsafe fn from_ptr_mut<'a>(p: *mut std::ffi::c_void) -> &'a mut DirConf {
        // SAFETY: p is the live oxwsgi_dir_conf of this directive, ours for 'a (the
        // caller's contract); DirConf is a repr(transparent) wrapper of it.
        unsafe { &mut *(p as *mut DirConf) }
    }

    /// The string setting that `f` selects.
    fn text(&self, f: impl FnOnce(&oxwsgi_dir_conf) -> *const c_char) -> Option<&[u8]> {
        let p = f(&self.0);
        // SAFETY: dir-config strings are NULL or configuration pool strings, which outlive
        // the configuration (and &self).
        unsafe { opt_bytes(p) }
    }

    pub fn callable(&self) -> Option<&[u8]> {
        self.text(|c| c.callable)
    }
    pub fn application_group(&self) -> Option<&[u8]> {
        self.text(|c| c.application_group)
    }
    pub fn process_group(&self) -> Option<&[u8]> {
        self.text(|c| c.process_group)
    }
    /// `None`: not set in any context (the C side stores -1).
    pub fn pass_authorization(&self) -> Option<bool> {
        flag(self.0.pass_authorization)
    }
    pub fn chunked_request(&self) -> Option<bool> {
        flag(self.0.chunked_request)
    }
    pub fn script_reloading(&self) -> Option<bool> {
        flag(self.0.script_reloading)
    }
    /// 0 Off, 1 On, 2 Auto; `None` when not set.
    pub fn map_head_to_get(&self) -> Option<i32> {
        (self.0.map_head_to_get != -1).then_some(self.0.map_head_to_get)
    }
    pub fn enable_sendfile(&self) -> Option<bool> {
        flag(self.0.enable_sendfile)
    }
    pub fn ignore_activity(&self) -> Option<bool> {
        flag(self.0.ignore_activity)
    }
    pub fn error_override(&self) -> Option<bool> {
        flag(self.0.error_override)
    }
    pub fn trusted_proxies(&self) -> Option<&[u8]> {
        self.text(|c| c.trusted_proxies)
    }
    pub fn trusted_proxy_headers(&self) -> Option<&[u8]> {
        self.text(|c| c.trusted_proxy_headers)
    }
    pub fn dispatch_script(&self) -> Option<&[u8]> {
        self.text(|c| c.dispatch_script)
    }
    pub fn handler_scripts(&self) -> Option<&[u8]> {
        self.text(|c| c.handler_scripts)
    }
    pub fn access_script(&self) -> Option<&[u8]> {
        self.text(|c| c.access_script)
    }
    pub fn auth_user_script(&self) -> Option<&[u8]> {
        self.text(|c| c.auth_user_script)
    }
    pub fn auth_group_script(&self) -> Option<&[u8]> {
        self.text(|c| c.auth_group_script)
    }
    pub fn restrict_process(&self) -> Option<&[u8]> {
        self.text(|c| c.restrict_process)
    }

    /// Store a string that lives in the configuration pool (`CmdParms::pool`), which
    /// outlives the configuration that points at it.
    pub fn set_callable(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.callable = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_application_group(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.application_group = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_process_group(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.process_group = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_pass_authorization(&mut self, v: bool) {
        self.0.pass_authorization = v as i32;
    }
    pub fn set_chunked_request(&mut self, v: bool) {
        self.0.chunked_request = v as i32;
    }
    pub fn set_script_reloading(&mut self, v: bool) {
        self.0.script_reloading = v as i32;
    }
    pub fn set_map_head_to_get(&mut self, v: i32) {
        self.0.map_head_to_get = v;
    }
    pub fn set_enable_sendfile(&mut self, v: bool) {
        self.0.enable_sendfile = v as i32;
    }
    pub fn set_error_override(&mut self, v: bool) {
        self.0.error_override = v as i32;
    }
    pub fn set_ignore_activity(&mut self, v: bool) {
        self.0.ignore_activity = v as i32;
    }
    /// Space-separated lists; repeated directives in one context add to the list.
    pub fn set_trusted_proxies(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.trusted_proxies = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_trusted_proxy_headers(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.trusted_proxy_headers = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_access_script(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.access_script = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_auth_group_script(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.auth_group_script = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_auth_user_script(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.auth_user_script = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_handler_scripts(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.handler_scripts = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_dispatch_script(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.dispatch_script = cmd.pool().strdup(v).as_ptr();
    }
    pub fn set_restrict_process(&mut self, cmd: &CmdParms, v: &[u8]) {
        self.0.restrict_process = cmd.pool().strdup(v).as_ptr();
    }
}

fn flag(v: i32) -> Option<bool> {
    (v != -1).then_some(v == 1)
}

// ---- directives ---------------------------------------------------------------------

/// The `cmd_parms` of a directive being read.
#[repr(transparent)]
pub struct CmdParms(cmd_parms);

impl CmdParms {
    /// # Safety
    /// `cmd` must be the live `cmd_parms` httpd passed to the running directive handler.
    pub unsafe fn from_ptr<'a>(cmd: *mut cmd_parms) -> &'a CmdParms {
        // SAFETY: cmd is live for the directive call (the caller's contract); CmdParms is a
        // repr(transparent) wrapper of cmd_parms.
        unsafe { &*(cmd as *const CmdParms) }
    }

    /// The configuration pool (values kept by the configuration go here).
    pub fn pool(&self) -> &Pool {
        // SAFETY: cmd->pool is the live configuration pool; directives are read by one
        // thread.
        unsafe { Pool::from_ptr(self.0.pool) }
    }

    /// The server (main or virtual host) the directive is in.
    pub fn server(&self) -> &Server {
        // SAFETY: cmd->server is the live server_rec being configured.
        unsafe { Server::from_ptr(self.0.server) }.expect("a directive has a server")
    }

    /// The directive's name as written in the directive table.
    pub fn name(&self) -> &[u8] {
        // SAFETY: cmd->cmd points to this directive's entry of the module's static table.
        let rec = unsafe { &*self.0.cmd };
        // SAFETY: the table's names are static NUL-terminated strings.
        unsafe { as_bytes(rec.name) }
    }

    /// The `cmd->info` the directive table gives this directive (its id).
    pub fn info(&self) -> usize {
        self.0.info as usize
    }
}

/// The arguments of an `AP_INIT_TAKE_ARGV` directive.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings valid during `'a` (httpd's argument
/// vector for the running directive).
pub unsafe fn directive_args<'a>(argc: i32, argv: *const *mut c_char) -> Vec<&'a [u8]> {
    (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: i < argc, so argv.add(i) is inside the vector (the caller's contract).
            let p = unsafe { *argv.add(i) };
            // SAFETY: each argument is a NUL-terminated string valid for 'a.
            unsafe { as_bytes(p) }
        })
        .collect()
}

/// httpd's scoreboard (shared memory of the parent), copied out one record at a time.
pub mod scoreboard {
    use super::*;

    /// The limits and generation, or `None` when httpd has no scoreboard.
    pub fn global() -> Option<oxwsgi_sb_global> {
        let mut g = oxwsgi_sb_global { server_limit: 0, thread_limit: 0, running_generation: 0, restart_time: 0 };
        // SAFETY: the shim copies the global record into g (plain data we own).
        (unsafe { oxwsgi_ap_sb_global(&mut g) } != 0).then_some(g)
    }

    /// Process slot `i` (`i < server_limit` of [`global`]).
    pub fn process(i: i32) -> oxwsgi_sb_process {
        let mut p = oxwsgi_sb_process { pid: 0, generation: 0, quiescing: 0 };
        // SAFETY: i is below server_limit (caller), so the slot exists; the shim copies it.
        unsafe { oxwsgi_ap_sb_process(i, &mut p) };
        p
    }

    /// Worker slot `j` of process slot `i` (`j < thread_limit`).
    pub fn worker(i: i32, j: i32) -> oxwsgi_sb_worker {
        // SAFETY: all-zero is a valid value of this plain C struct (numbers and char arrays).
        let mut w: oxwsgi_sb_worker = unsafe { std::mem::zeroed() };
        // SAFETY: i and j are below the limits (caller), so the slot exists; the shim
        // copies it, with NUL-terminated strings.
        unsafe { oxwsgi_ap_sb_worker(i, j, &mut w) };
        w
    }

    /// A NUL-terminated `char` array of a copied record, as text.
    pub fn text(chars: &[c_char]) -> String {
        let bytes: Vec<u8> = chars.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// httpd's queries that take no object.
pub mod process {
    use super::*;

    /// Whether the MPM runs several threads per child.
    pub fn mpm_threaded() -> bool {
        // SAFETY: a plain query of httpd's MPM.
        unsafe { oxwsgi_ap_mpm_threaded() != 0 }
    }

    /// The first, throw-away configuration pass at start-up.
    pub fn is_pre_config_pass() -> bool {
        // SAFETY: a plain query of httpd's state.
        unsafe { oxwsgi_ap_is_pre_config_pass() != 0 }
    }

    /// An `AP_MPMQ_*` value of the MPM (`None` when it does not answer).
    pub fn mpm_query(code: u32) -> Option<i32> {
        // SAFETY: a plain query of httpd's MPM.
        let v = unsafe { oxwsgi_ap_mpm_query(code as i32) };
        (v != -1).then_some(v)
    }

    /// Why the module cannot run as loaded (twice, or beside mod_wsgi), if so.
    pub fn load_problem() -> Option<String> {
        // SAFETY: a plain query of the shim's state; the result is NULL or a static string.
        let p = unsafe { oxwsgi_ap_load_problem() };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL results are static NUL-terminated strings of the shim.
        Some(String::from_utf8_lossy(unsafe { as_bytes(p) }).into_owned())
    }

    /// `ServerTokens`' banner, e.g. "Apache/2.4.62 (Debian)".
    pub fn server_banner() -> String {
        // SAFETY: ap_get_server_banner returns a static NUL-terminated string.
        String::from_utf8_lossy(unsafe { as_bytes(ap_get_server_banner()) }).into_owned()
    }

    /// The parent is exiting (`apachectl stop`): its pools are being destroyed for good,
    /// not cleared for a restart.
    pub fn is_exiting() -> bool {
        // SAFETY: a plain query of httpd's state.
        unsafe { ap_state_query(AP_SQ_MAIN_STATE as i32) == AP_SQ_MS_EXITING as i32 }
    }

    /// The MPM is stopping (shutdown or restart under way).
    pub fn mpm_stopping() -> bool {
        let mut state = 0;
        // SAFETY: state is a writable int for the query's answer.
        let rc = unsafe { ap_mpm_query(AP_MPMQ_MPM_STATE as i32, &mut state) };
        rc == 0 && state == AP_MPMQ_STOPPING as i32
    }

    /// `fname` relative to `DefaultRuntimeDir` (absolute names are kept).
    pub fn runtime_dir_relative(pool: &Pool, fname: &str) -> Option<String> {
        let f = std::ffi::CString::new(fname).ok()?;
        // SAFETY: the pool is live and f NUL-terminated; the result is a pool string.
        let p = unsafe { ap_runtime_dir_relative(pool.as_ptr(), f.as_ptr()) };
        // SAFETY: NULL or a NUL-terminated string of the pool, which outlives this call.
        unsafe { opt_bytes(p) }.map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// `fname` relative to `ServerRoot` (absolute names are kept).
    pub fn server_root_relative(pool: &Pool, fname: &str) -> Option<String> {
        let f = std::ffi::CString::new(fname).ok()?;
        // SAFETY: the pool is live and f NUL-terminated; the result is a pool string.
        let p = unsafe { ap_server_root_relative(pool.as_ptr(), f.as_ptr()) };
        // SAFETY: NULL or a NUL-terminated string of the pool, which outlives this call.
        unsafe { opt_bytes(p) }.map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// `-D name` was given to httpd (`<IfDefine name>`).
    pub fn config_define_exists(name: &CStr) -> bool {
        // SAFETY: a plain look-up in httpd's list of defines with a NUL-terminated name.
        unsafe { ap_exists_config_define(name.as_ptr()) != 0 }
    }

    /// Register a mod_python input filter called `name` with httpd (configuration time).
    pub fn register_mp_input_filter(name: &CStr) {
        // SAFETY: called while the configuration is read (one thread); httpd copies the
        // name into its filter registry.
        unsafe { oxwsgi_ap_register_mp_input_filter(name.as_ptr()) }
    }

    /// Register a mod_python output filter called `name` with httpd (configuration time).
    pub fn register_mp_output_filter(name: &CStr) {
        // SAFETY: called while the configuration is read (one thread); httpd copies the
        // name into its filter registry.
        unsafe { oxwsgi_ap_register_mp_output_filter(name.as_ptr()) }
    }

    /// The uid and gid `User`/`Group` configured (0 when not yet).
    pub fn unixd_ids() -> (u32, u32) {
        // SAFETY: ap_unixd_config is a plain global filled by the User/Group directives;
        // it is read on the configuration thread, which is also the only writer.
        let c = unsafe { &*std::ptr::addr_of!(ap_unixd_config) };
        (c.user_id, c.group_id)
    }
}

// ---- mod_python's requests (src/apache/modpython*.rs) --------------------------------

use std::sync::Arc;

use super::modpython_conf::MpConf;

/// Drop the `Box<Arc<MpConf>>` a pool kept (its cleanup).
extern "C" fn drop_kept_mp_conf(data: *mut std::ffi::c_void) -> apr_status_t {
    // SAFETY: data is the Box<Arc<MpConf>> that `Pool::keep_mp_conf` leaked for this
    // cleanup, which APR runs once.
    drop(unsafe { Box::from_raw(data as *mut Arc<MpConf>) });
    0
}

impl Pool {
    /// Keep `conf` alive as long as the pool; the pointer goes into a dir config.
    pub fn keep_mp_conf(&self, conf: Arc<MpConf>) -> *const std::ffi::c_void {
        let p = Box::into_raw(Box::new(conf)) as *mut std::ffi::c_void;
        // SAFETY: the pool is live; the cleanup frees exactly this box, once, when the pool
        // is cleared, after every dir config that points at it (same pool or a child's).
        unsafe { apr_pool_cleanup_register(self.as_ptr(), p, Some(drop_kept_mp_conf), Some(apr_pool_cleanup_null)) };
        p
    }

    /// Run `cleanup(data)` when the pool is cleared.
    pub fn on_clear_data(&self, data: usize, cleanup: unsafe extern "C" fn(*mut std::ffi::c_void) -> apr_status_t) {
        // SAFETY: the pool is live; data is an opaque number the cleanup interprets (never
        // dereferenced as a pointer by APR).
        unsafe {
            apr_pool_cleanup_register(
                self.as_ptr(),
                data as *const std::ffi::c_void,
                Some(cleanup),
                Some(apr_pool_cleanup_null),
            )
        }
    }
}

/// The `MpConf` behind a dir config's `modpython` pointer.
///
/// # Safety
/// `p` must be NULL or a pointer made by [`Pool::keep_mp_conf`] in a pool that is not
/// cleared during `'a`.
pub unsafe fn kept_mp_conf<'a>(p: *const std::ffi::c_void) -> Option<&'a Arc<MpConf>> {
    // SAFETY: NULL or the live Box<Arc<MpConf>> of keep_mp_conf (the caller's contract).
    unsafe { (p as *const Arc<MpConf>).as_ref() }
}

impl DirConf {
    /// The mod_python directives of this context (merged).
    pub fn modpython(&self) -> Option<Arc<MpConf>> {
        // SAFETY: the field is NULL or set by set_modpython / the merge from pointers of
        // keep_mp_conf in the configuration or request pool, which outlive the dir config.
        unsafe { kept_mp_conf(self.0.modpython) }.cloned()
    }
    pub fn set_modpython(&mut self, cmd: &CmdParms, conf: Arc<MpConf>) {
        self.0.modpython = cmd.pool().keep_mp_conf(conf);
    }
}

impl CmdParms {
    /// The section's path (`<Directory>`, `<Location>`, `<Files>`...), `None` at server
    /// level.
    pub fn path(&self) -> Option<&[u8]> {
        // SAFETY: cmd->path is NULL or a configuration pool string.
        unsafe { opt_bytes(self.0.path) }
    }

    /// The directive is inside a `<Location>` or `<LocationMatch>` section.
    pub fn in_location_section(&self) -> bool {
        let d = self.0.directive;
        if d.is_null() {
            return false;
        }
        // SAFETY: cmd->directive is the live node of the directive being read.
        let parent = unsafe { (*d).parent };
        if parent.is_null() {
            return false;
        }
        // SAFETY: the parent is a live node of the same configuration tree.
        let name = unsafe { (*parent).directive };
        // SAFETY: a node's directive name is a NUL-terminated configuration pool string.
        let name = unsafe { as_bytes(name) };
        name.eq_ignore_ascii_case(b"<Location") || name.eq_ignore_ascii_case(b"<LocationMatch")
    }
}

/// A request related to another (`Request::related`).
#[derive(Clone, Copy, Debug)]
pub enum Related {
    Main,
    Prev,
    Next,
}

/// The request tables mod_python's `req` exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableId {
    HeadersIn,
    HeadersOut,
    ErrHeadersOut,
    SubprocessEnv,
    Notes,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.0.port
    }
    pub fn admin(&self) -> &[u8] {
        // SAFETY: server_admin is NULL or a configuration pool string.
        unsafe { as_bytes(self.0.server_admin) }
    }
    /// Where the server was defined (`defn_name`, `defn_line_number`).
    pub fn definition(&self) -> (&[u8], u32) {
        // SAFETY: defn_name is NULL or a configuration pool string.
        (unsafe { as_bytes(self.0.defn_name) }, self.0.defn_line_number)
    }
}

impl Connection {
    /// The client's address as the connection has it.
    pub fn client_ip(&self) -> &[u8] {
        let p = self.get(|c| c.client_ip);
        // SAFETY: client_ip is NULL or a connection pool string, never changed.
        unsafe { as_bytes(p) }
    }
    pub fn remote_host(&self) -> Option<&[u8]> {
        let p = self.get(|c| c.remote_host);
        // SAFETY: remote_host is NULL or a connection pool string.
        unsafe { opt_bytes(p) }
    }
    pub fn id(&self) -> i64 {
        self.get(|c| c.id)
    }
    pub fn keepalive(&self) -> i32 {
        self.get(|c| c.keepalive) as i32
    }
}

impl Request {
    fn table_ptr(&self, id: TableId) -> *mut apr_table_t {
        self.get(|r| match id {
            TableId::HeadersIn => r.headers_in,
            TableId::HeadersOut => r.headers_out,
            TableId::ErrHeadersOut => r.err_headers_out,
            TableId::SubprocessEnv => r.subprocess_env,
            TableId::Notes => r.notes,
        })
    }

    /// A copy of every entry of a table, in order.
    pub fn table_entries(&self, id: TableId) -> Vec<(Vec<u8>, Vec<u8>)> {
        let t = self.table_ptr(id);
        // SAFETY: the request's tables live in its pool; the borrow ends with this copy,
        // before anything can change the table.
        let t = unsafe { Table::from_ptr(t) }.expect("request tables are never NULL");
        t.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    /// `apr_table_set` (replace every entry named `key`).
    pub fn table_set(&self, id: TableId, key: &CStr, value: &CStr) {
        // SAFETY: the table is live; apr_table_set copies both strings; no &Table of it is
        // held (readers copy, table_entries).
        unsafe { apr_table_set(self.table_ptr(id), key.as_ptr(), value.as_ptr()) }
    }
    /// `apr_table_add` (one more entry).
    pub fn table_add(&self, id: TableId, key: &CStr, value: &CStr) {
        // SAFETY: as table_set.
        unsafe { apr_table_add(self.table_ptr(id), key.as_ptr(), value.as_ptr()) }
    }
    /// `apr_table_unset` (remove every entry named `key`).
    pub fn table_unset(&self, id: TableId, key: &CStr) {
        // SAFETY: as table_set.
        unsafe { apr_table_unset(self.table_ptr(id), key.as_ptr()) }
    }
    pub fn table_clear(&self, id: TableId) {
        // SAFETY: as table_set.
        unsafe { apr_table_clear(self.table_ptr(id)) }
    }

    pub fn hostname(&self) -> Option<&[u8]> {
        self.field(|r| r.hostname)
    }
    pub fn the_request(&self) -> Option<&[u8]> {
        self.field(|r| r.the_request)
    }
    pub fn content_type(&self) -> Option<&[u8]> {
        self.field(|r| r.content_type)
    }
    pub fn status(&self) -> i32 {
        self.get(|r| r.status)
    }
    pub fn status_line(&self) -> Option<&[u8]> {
        self.field(|r| r.status_line)
    }
    pub fn proto_num(&self) -> i32 {
        self.get(|r| r.proto_num)
    }
    pub fn header_only(&self) -> bool {
        self.get(|r| r.header_only) != 0
    }
    pub fn bytes_sent(&self) -> i64 {
        self.get(|r| r.bytes_sent)
    }
    pub fn canonical_filename(&self) -> Option<&[u8]> {
        self.field(|r| r.canonical_filename)
    }
    pub fn opt_filename(&self) -> Option<&[u8]> {
        self.field(|r| r.filename)
    }
    pub fn opt_path_info(&self) -> Option<&[u8]> {
        self.field(|r| r.path_info)
    }
    pub fn opt_args(&self) -> Option<&[u8]> {
        self.field(|r| r.args)
    }
    pub fn opt_handler(&self) -> Option<&[u8]> {
        self.field(|r| r.handler)
    }
    /// The response body's length as set (`ap_set_content_length`), 0 when not.
    pub fn clength(&self) -> i64 {
        self.get(|r| r.clength)
    }
    /// Body bytes went out (the headers are sent).
    pub fn sent_bodyct(&self) -> bool {
        self.get(|r| r.sent_bodyct) != 0
    }
    /// Add `method` to the methods the resource allows (the `Allow` header of a 405 or
    /// an OPTIONS response), as `ap_allow_methods` does.
    pub fn allow_method(&self, method: &CStr) {
        let l = self.get(|r| r.allowed_methods);
        // SAFETY: allowed_methods is the request's live method list (request pool);
        // httpd copies the name into the list's pool.
        unsafe { ap_method_list_add(l, method.as_ptr()) }
    }
    pub fn clear_allowed(&self) {
        let l = self.get(|r| r.allowed_methods);
        // SAFETY: allowed_methods is the request's live method list.
        unsafe { ap_clear_method_list(l) }
    }
    /// `ap_get_remote_host`: the client's name (a DNS look-up for `REMOTE_DOUBLE_REV`
    /// types when `HostnameLookups` allows), or its address.
    pub fn remote_host(&self, kind: i32) -> Option<Vec<u8>> {
        let c = self.get(|r| r.connection);
        let dc = self.get(|r| r.per_dir_config);
        // SAFETY: the request, its connection and dir config are live; a NULL str_is_ip
        // is allowed; the result is NULL or a connection pool string.
        let p = unsafe { ap_get_remote_host(c, dc as *mut std::ffi::c_void, kind, std::ptr::null_mut()) };
        // SAFETY: NULL or a connection pool string, valid while the request is.
        unsafe { opt_bytes(p) }.map(|b| b.to_vec())
    }
    /// The request this one is a subrequest of (`r->main`), the one it was redirected
    /// from (`r->prev`) or to (`r->next`).
    pub fn related(&self, which: Related) -> Option<&Request> {
        let p = self.get(|r| match which {
            Related::Main => r.main,
            Related::Prev => r.prev,
            Related::Next => r.next,
        });
        // SAFETY: main outlives its subrequests, and prev/next of an internal redirect
        // share this request's pool: each is NULL or live while this request is, and is
        // used from this thread only.
        (!p.is_null()).then(|| unsafe { Request::from_ptr(p) })
    }

    /// A subrequest or internal redirect's origin exists.
    pub fn is_initial(&self) -> bool {
        self.get(|r| r.main.is_null() && r.prev.is_null())
    }

    /// `r->status` only (the status line follows from it).
    pub fn set_status_code(&self, status: i32) {
        self.set(|r| r.status = status);
    }
    /// One of the request's string fields, copied into the request pool (`None`: NULL).
    fn set_text(&self, v: Option<&[u8]>, f: impl FnOnce(&mut request_rec, *const c_char)) {
        let p = v.map_or(std::ptr::null(), |v| self.pool().strdup(v).as_ptr());
        self.set(|r| f(r, p));
    }
    pub fn set_user(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.user = p as *mut c_char);
    }
    pub fn set_auth_type(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.ap_auth_type = p as *mut c_char);
    }
    pub fn set_filename(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.filename = p as *mut c_char);
    }
    pub fn set_path_info(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.path_info = p as *mut c_char);
    }
    pub fn set_uri(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.uri = p as *mut c_char);
    }
    pub fn set_args(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.args = p as *mut c_char);
    }
    pub fn set_handler(&self, v: Option<&[u8]>) {
        self.set_text(v, |r, p| r.handler = p);
    }

    /// `AuthName` of the request's context.
    pub fn auth_name(&self) -> Option<&[u8]> {
        // SAFETY: the request is live; ap_auth_name only reads its configuration.
        let p = unsafe { ap_auth_name(self.as_ptr()) };
        // SAFETY: NULL or a configuration pool string, which outlives the request.
        unsafe { opt_bytes(p) }
    }

    /// `ap_get_basic_auth_pw`: the password of Basic credentials (the user goes to
    /// `r->user`), or the HTTP status httpd decided (401, 500).
    pub fn basic_auth_pw(&self) -> Result<Vec<u8>, i32> {
        let mut pw: *const c_char = std::ptr::null();
        // SAFETY: the request is live; pw is a writable pointer slot for the answer.
        let rc = unsafe { ap_get_basic_auth_pw(self.as_ptr(), &mut pw) };
        if rc != OK as i32 {
            return Err(rc);
        }
        // SAFETY: on OK pw is a request pool string.
        Ok(unsafe { as_bytes(pw) }.to_vec())
    }

    /// `Options` of the request's directory (`OPT_*` bits).
    pub fn allow_options(&self) -> i32 {
        // SAFETY: the request is live; ap_allow_options only reads its configuration.
        unsafe { ap_allow_options(self.as_ptr()) }
    }

    /// `ap_add_common_vars`: the CGI variables into `subprocess_env`.
    pub fn add_common_vars(&self) {
        // SAFETY: the request is live; httpd fills subprocess_env (no &Table of it held).
        unsafe { ap_add_common_vars(self.as_ptr()) }
    }
    /// `ap_add_cgi_vars`: `GATEWAY_INTERFACE`, `SCRIPT_NAME`, `PATH_INFO`... into
    /// `subprocess_env`.
    pub fn add_cgi_vars(&self) {
        // SAFETY: the request is live; httpd fills subprocess_env (it may run a
        // subrequest for PATH_TRANSLATED, on this thread).
        unsafe { ap_add_cgi_vars(self.as_ptr()) }
    }
    /// `ap_internal_redirect`: serve `uri` instead, now, on this thread.
    pub fn internal_redirect(&self, uri: &CStr) {
        // SAFETY: the request is live and in its handler; httpd copies the URI and runs
        // the new request to its end before returning.
        unsafe { ap_internal_redirect(uri.as_ptr(), self.as_ptr()) }
    }
    /// `ap_note_basic_auth_failure`: the `WWW-Authenticate` challenge of the 401.
    pub fn note_basic_auth_failure(&self) {
        // SAFETY: the request is live; httpd adds a header to err_headers_out.
        unsafe { ap_note_basic_auth_failure(self.as_ptr()) }
    }
    /// A document root, server name and port based URL for `uri` (`ap_construct_url`).
    pub fn construct_url(&self, uri: &CStr) -> Vec<u8> {
        let pool = self.get(|r| r.pool);
        // SAFETY: the request and its pool are live; the result is a pool string.
        let p = unsafe { ap_construct_url(pool, uri.as_ptr(), self.as_ptr()) };
        // SAFETY: a NUL-terminated request pool string.
        unsafe { as_bytes(p) }.to_vec()
    }
}

// ---- mod_python output filters (src/apache/modpython_filter.rs) ----------------------

/// An output filter instance (`ap_filter_t`) of the request being filtered.
#[repr(transparent)]
pub struct Filter(UnsafeCell<ap_filter_t>);

/// The brigade a filter was called with.
#[derive(Clone)]
pub struct FilterBrigade(NonNull<apr_bucket_brigade>);

// SAFETY: used only during its filter call, on that call's thread (the filter object that
// keeps one checks both, as for FilterHandle); Python objects holding it need it Send.
unsafe impl Send for FilterBrigade {}
// SAFETY: as Send.
unsafe impl Sync for FilterBrigade {}

/// How an input filter was called (`ap_input_mode_t`, `apr_read_type_e`, readbytes).
#[derive(Clone, Copy, Debug)]
pub struct InputCall {
    pub mode: i32,
    pub block: i32,
    pub readbytes: i64,
}

impl Filter {
    /// # Safety
    /// `f` must be the live filter httpd called, on this thread, for `'a`.
    pub unsafe fn from_ptr<'a>(f: *mut ap_filter_t) -> &'a Filter {
        // SAFETY: f is live for 'a (the caller's contract); Filter is a repr(transparent)
        // UnsafeCell of ap_filter_t.
        unsafe { &*(f as *const Filter) }
    }

    pub fn as_ptr(&self) -> *mut ap_filter_t {
        self.0.get()
    }

    /// The request being filtered (`None` for a connection filter).
    pub fn request(&self) -> Option<&Request> {
        // SAFETY: the filter is live; the shim reads f->r.
        let r = unsafe { oxwsgi_ap_filter_request(self.as_ptr()) };
        // SAFETY: f->r is NULL or the live request this filter serves, on this thread, for
        // as long as the filter call (and &self) lasts.
        (!r.is_null()).then(|| unsafe { Request::from_ptr(r) })
    }

    /// The filter's registered name (lower-cased by httpd).
    pub fn name(&self) -> &[u8] {
        // SAFETY: the filter is live; the shim reads f->frec->name.
        let p = unsafe { oxwsgi_ap_filter_name(self.as_ptr()) };
        // SAFETY: NULL or the registry's copy of the name, which outlives the request.
        unsafe { as_bytes(p) }
    }

    /// The data of `bb` (copied out) and whether it ended with EOS; `bb` is emptied.
    pub fn take(&self, bb: &FilterBrigade) -> Option<(Vec<u8>, bool)> {
        let mut data: *mut c_char = std::ptr::null_mut();
        let mut len: apr_size_t = 0;
        let mut eos = 0;
        // SAFETY: the filter and its brigade are live; the out parameters are writable.
        let rc = unsafe { oxwsgi_ap_filter_flatten(self.as_ptr(), bb.0.as_ptr(), &mut data, &mut len, &mut eos) };
        if rc != 0 {
            return None;
        }
        let bytes = if data.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: pflatten returned len bytes at data, in the request pool.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()
        };
        Some((bytes, eos != 0))
    }

    /// Send `data` (copied) to the next filter; `flags` OXWSGI_W_FLUSH / OXWSGI_W_EOS.
    pub fn pass(&self, data: &[u8], flags: i32) -> bool {
        // SAFETY: the filter is live; the shim copies data into a heap bucket.
        unsafe { oxwsgi_ap_filter_pass(self.as_ptr(), data.as_ptr() as *const c_char, data.len(), flags) == 0 }
    }

    /// Input filters: read from the filter before this one, as the caller asked (at most
    /// `max` bytes when given); the data and whether the body ended.
    pub fn get(&self, call: InputCall, max: Option<i64>) -> Option<(Vec<u8>, bool)> {
        let mut data: *mut c_char = std::ptr::null_mut();
        let mut len: apr_size_t = 0;
        let mut eos = 0;
        let n = max.map_or(call.readbytes, |m| m.min(call.readbytes).max(1));
        // SAFETY: the filter is live; the out parameters are writable.
        let rc =
            unsafe { oxwsgi_ap_filter_get(self.as_ptr(), call.mode, call.block, n, &mut data, &mut len, &mut eos) };
        if rc != 0 {
            return None;
        }
        let bytes = if data.is_null() || len == 0 {
            Vec::new()
        } else {
            // SAFETY: pflatten returned len bytes at data, in the request pool.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec()
        };
        Some((bytes, eos != 0))
    }

    /// Input filters: add `data` (copied) and maybe EOS to the caller's brigade.
    pub fn append(&self, bb: &FilterBrigade, data: &[u8], eos: bool) {
        // SAFETY: the filter and the caller's brigade are live; the shim copies data.
        unsafe {
            oxwsgi_ap_filter_append(
                self.as_ptr(),
                bb.0.as_ptr(),
                data.as_ptr() as *const c_char,
                data.len(),
                i32::from(eos),
            )
        }
    }

    /// Input filters: let this call through to the filter before.
    pub fn get_brigade(&self, bb: &FilterBrigade, call: InputCall) -> bool {
        // SAFETY: the filter and the caller's brigade are live.
        unsafe {
            oxwsgi_ap_filter_get_brigade(self.as_ptr(), bb.0.as_ptr(), call.mode, call.block, call.readbytes) == 0
        }
    }

    /// Hand `bb` to the next filter untouched.
    pub fn pass_brigade(&self, bb: &FilterBrigade) -> bool {
        // SAFETY: the filter and its brigade are live.
        unsafe { oxwsgi_ap_filter_pass_brigade(self.as_ptr(), bb.0.as_ptr()) == 0 }
    }
}

impl FilterBrigade {
    /// # Safety
    /// `bb` must be the brigade httpd passed to the running filter call.
    pub unsafe fn from_ptr(bb: *mut apr_bucket_brigade) -> Option<FilterBrigade> {
        NonNull::new(bb).map(FilterBrigade)
    }
}

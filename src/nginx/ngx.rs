//! A safe layer over the nginx structures the adapter uses, in the style of ngx-rust:
//! `#[repr(transparent)]` wrappers whose constructors are `unsafe fn`s stating what makes a
//! raw pointer usable; their methods are safe because that invariant holds for as long as
//! the wrapper is borrowed. The request logic (request.rs, entry.rs, conf.rs) goes through
//! these types instead of dereferencing pointers itself.
//!
//! Everything here runs on the event loop (or, for [`Conf`], while nginx parses the
//! configuration); the pool threads never see an nginx structure.

use std::marker::PhantomData;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::ptr::{NonNull, null_mut};

use crate::ffi::ngx::*;

pub const OK: ngx_int_t = NGX_OK as ngx_int_t;
pub const ERROR: ngx_int_t = NGX_ERROR as ngx_int_t;

/// An `ngx_str_t` whose `data` is NULL or valid for `len` bytes while it is borrowed.
#[repr(transparent)]
pub struct NgxStr(ngx_str_t);

impl NgxStr {
    /// # Safety
    /// `s.data` must be NULL or valid for `s.len` bytes, unchanged, for `'a`.
    pub unsafe fn from_raw<'a>(s: *const ngx_str_t) -> &'a NgxStr {
        // SAFETY: NgxStr is a transparent ngx_str_t; `s` is valid for 'a (caller).
        unsafe { &*(s as *const NgxStr) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        if self.0.data.is_null() || self.0.len == 0 {
            return &[];
        }
        // SAFETY: the invariant of the type: data is valid for len bytes while borrowed.
        unsafe { std::slice::from_raw_parts(self.0.data, self.0.len) }
    }

    pub fn raw(&self) -> ngx_str_t {
        self.0
    }
}

/// One header of an nginx header list.
#[repr(transparent)]
pub struct Header(ngx_table_elt_t);

impl Header {
    /// nginx marks deleted headers with a zero hash.
    pub fn is_live(&self) -> bool {
        self.0.hash != 0
    }
    pub fn key(&self) -> &NgxStr {
        // SAFETY: the strings of a header in a live list live as long as the list.
        unsafe { NgxStr::from_raw(&self.0.key) }
    }
    pub fn value(&self) -> &NgxStr {
        // SAFETY: as for the key: owned by the request pool, as the list is.
        unsafe { NgxStr::from_raw(&self.0.value) }
    }
}

/// The elements of an `ngx_list_t` of `ngx_table_elt_t` (request or response headers).
pub struct Headers<'a> {
    part: *const ngx_list_part_t,
    i: usize,
    _list: PhantomData<&'a ngx_list_t>,
}

impl<'a> Headers<'a> {
    /// # Safety
    /// `list` must be a live, initialised list of `ngx_table_elt_t`, unchanged for `'a`.
    pub unsafe fn new(list: *const ngx_list_t) -> Headers<'a> {
        // SAFETY: list is live (caller); its first part is embedded in it.
        let part = unsafe { &raw const (*list).part };
        Headers { part, i: 0, _list: PhantomData }
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = &'a Header;

    fn next(&mut self) -> Option<&'a Header> {
        loop {
            if self.part.is_null() {
                return None;
            }
            // SAFETY: part is a live part of the list (the invariant of `new`).
            let part = unsafe { &*self.part };
            if self.i < part.nelts {
                let elts = part.elts as *const Header;
                // SAFETY: elts holds nelts elements of ngx_table_elt_t (Header is transparent).
                let h = unsafe { &*elts.add(self.i) };
                self.i += 1;
                return Some(h);
            }
            self.part = part.next;
            self.i = 0;
        }
    }
}

/// A buffer of a chain.
#[repr(transparent)]
pub struct Buf(ngx_buf_t);

/// What a request body buffer holds.
pub enum BufData<'a> {
    Memory(&'a [u8]),
    /// `[pos, end)` of the file with the descriptor.
    File {
        fd: i32,
        pos: u64,
        end: u64,
    },
}

impl Buf {
    pub fn data(&self) -> BufData<'_> {
        if self.0.in_file() != 0 && !self.0.file.is_null() {
            // SAFETY: an in_file buffer's file is live while the buffer is.
            let fd = unsafe { (*self.0.file).fd };
            return BufData::File { fd, pos: self.0.file_pos as u64, end: self.0.file_last as u64 };
        }
        if self.0.pos.is_null() || self.0.last <= self.0.pos {
            return BufData::Memory(&[]);
        }
        let n = self.0.last as usize - self.0.pos as usize;
        // SAFETY: a memory buffer's [pos, last) is readable while the buffer is live.
        BufData::Memory(unsafe { std::slice::from_raw_parts(self.0.pos, n) })
    }
}

/// The buffers of an `ngx_chain_t`.
pub struct Chain<'a> {
    cl: *const ngx_chain_t,
    _chain: PhantomData<&'a ngx_chain_t>,
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a Buf;

    fn next(&mut self) -> Option<&'a Buf> {
        if self.cl.is_null() {
            return None;
        }
        // SAFETY: cl is a live link of the chain (the invariant of the constructor).
        let link = unsafe { &*self.cl };
        self.cl = link.next;
        // SAFETY: a link's buffer is live with the link; Buf is a transparent ngx_buf_t.
        Some(unsafe { &*(link.buf as *const Buf) })
    }
}

/// A client connection.
#[repr(transparent)]
pub struct Connection(ngx_connection_t);

impl Connection {
    pub fn as_ptr(&self) -> *mut ngx_connection_t {
        &self.0 as *const ngx_connection_t as *mut ngx_connection_t
    }
    /// The client address as text (after `realip`).
    pub fn addr_text(&self) -> &NgxStr {
        // SAFETY: the connection's strings live as long as the connection.
        unsafe { NgxStr::from_raw(&self.0.addr_text) }
    }
    pub fn error(&self) -> bool {
        self.0.error() != 0
    }
    /// Close the connection at the end of the request (a truncated body stays truncated).
    pub fn set_error(&mut self) {
        self.0.set_error(1);
    }
    pub fn is_tls(&self) -> bool {
        !self.0.ssl.is_null()
    }
    /// The send timeout of the write event expired.
    pub fn write_timed_out(&self) -> bool {
        // SAFETY: a connection's write event lives as long as the connection.
        unsafe { (*self.0.write).timedout() != 0 }
    }
    /// The log whose handler adds the request context to error lines.
    pub fn log(&self) -> *mut ngx_log_t {
        self.0.log
    }
    pub fn remote_port(&self) -> u16 {
        if self.0.sockaddr.is_null() {
            return 0;
        }
        // SAFETY: a non-NULL sockaddr of a connection is its live peer address.
        unsafe { ngx_inet_get_port(self.0.sockaddr) as u16 }
    }
    /// The local address as text and port (asks the kernel once, as nginx does).
    pub fn local_addr(&mut self) -> (Vec<u8>, u16) {
        let mut buf = [0u8; 128]; // NGX_SOCKADDR_STRLEN is a sizeof expression bindgen cannot see
        let mut s = ngx_str_t { len: buf.len(), data: buf.as_mut_ptr() };
        // SAFETY: the connection is live; s points at buf, writable for s.len bytes.
        let rc = unsafe { ngx_connection_local_sockaddr(self.as_ptr(), &mut s, 0) };
        let text = if rc == OK { buf[..s.len.min(buf.len())].to_vec() } else { Vec::new() };
        let port = if self.0.local_sockaddr.is_null() {
            0
        } else {
            // SAFETY: a non-NULL local_sockaddr is the live local address.
            unsafe { ngx_inet_get_port(self.0.local_sockaddr) as u16 }
        };
        (text, port)
    }
}

/// Our location configuration.
#[repr(transparent)]
pub struct LocConf(ngx_http_oxwsgi_loc_conf_t);

/// One `wsgi_param`.
#[repr(transparent)]
pub struct Param(ngx_http_oxwsgi_param_t);

impl Param {
    pub fn key(&self) -> &NgxStr {
        // SAFETY: configuration strings live in the cycle pool.
        unsafe { NgxStr::from_raw(&self.0.key) }
    }
    pub fn skip_empty(&self) -> bool {
        self.0.skip_empty != 0
    }
    /// The compiled value (evaluate with [`Request::complex_value`]).
    pub fn value(&self) -> &ngx_http_complex_value_t {
        &self.0.value
    }
}

impl LocConf {
    pub fn script(&self) -> &NgxStr {
        // SAFETY: configuration strings live in the cycle pool.
        unsafe { NgxStr::from_raw(&self.0.script) }
    }
    pub fn callable(&self) -> &NgxStr {
        // SAFETY: configuration strings live in the cycle pool.
        unsafe { NgxStr::from_raw(&self.0.callable) }
    }
    /// The location prefix (SCRIPT_NAME), `None` for regex, named and `if` locations.
    pub fn prefix(&self) -> Option<&[u8]> {
        // SAFETY: configuration strings live in the cycle pool.
        (self.0.no_prefix == 0).then(|| unsafe { NgxStr::from_raw(&self.0.prefix) }.as_bytes())
    }
    pub fn pass_authorization(&self) -> bool {
        self.0.pass_authorization == 1
    }
    /// `wsgi_process_group`: the daemon group's name, or `None` (embedded: unset or `off`).
    pub fn process_group(&self) -> Option<&[u8]> {
        // SAFETY: configuration strings live in the cycle pool.
        let g = unsafe { NgxStr::from_raw(&self.0.process_group) }.as_bytes();
        (!g.is_empty() && g != b"off").then_some(g)
    }
    pub fn max_in_flight(&self) -> usize {
        self.0.max_in_flight
    }
    pub fn in_flight(&self) -> usize {
        self.0.in_flight
    }
    /// The counter of requests in flight in this location (this worker's).
    pub fn in_flight_counter(&self) -> NonNull<ngx_uint_t> {
        NonNull::from(&self.0.in_flight)
    }
    pub fn params(&self) -> &[Param] {
        if self.0.params.is_null() {
            return &[];
        }
        // SAFETY: a non-NULL params is a live array in the cycle pool (merge sets NULL or it).
        let a = unsafe { &*self.0.params };
        if a.nelts == 0 {
            return &[];
        }
        // SAFETY: the array holds nelts ngx_http_oxwsgi_param_t (Param is transparent).
        unsafe { std::slice::from_raw_parts(a.elts as *const Param, a.nelts) }
    }
}

/// A request, on the event loop.
#[repr(transparent)]
pub struct Request(ngx_http_request_t);

impl Request {
    /// # Safety
    /// `r` must be a live request, used on the event loop only, not freed (finalized to the
    /// end) while the result is borrowed, and not otherwise borrowed meanwhile.
    pub unsafe fn from_ptr<'a>(r: *mut ngx_http_request_t) -> &'a mut Request {
        // SAFETY: Request is a transparent ngx_http_request_t, live for 'a (caller).
        unsafe { &mut *(r as *mut Request) }
    }

    pub fn as_ptr(&self) -> *mut ngx_http_request_t {
        &self.0 as *const ngx_http_request_t as *mut ngx_http_request_t
    }

    fn str(&self, s: &ngx_str_t) -> &NgxStr {
        // SAFETY: the strings of a request live in its pool, as long as the request.
        unsafe { NgxStr::from_raw(s) }
    }
    pub fn method_name(&self) -> &NgxStr {
        self.str(&self.0.method_name)
    }
    /// The decoded, normalised path.
    pub fn uri(&self) -> &NgxStr {
        self.str(&self.0.uri)
    }
    pub fn args(&self) -> &NgxStr {
        self.str(&self.0.args)
    }
    pub fn unparsed_uri(&self) -> &NgxStr {
        self.str(&self.0.unparsed_uri)
    }
    pub fn http_protocol(&self) -> &NgxStr {
        self.str(&self.0.http_protocol)
    }

    pub fn connection(&self) -> &Connection {
        // SAFETY: a live request's connection outlives it.
        unsafe { &*(self.0.connection as *const Connection) }
    }
    pub fn connection_mut(&mut self) -> &mut Connection {
        // SAFETY: as for `connection`; this request is its connection's current user.
        unsafe { &mut *(self.0.connection as *mut Connection) }
    }

    pub fn headers_in(&self) -> Headers<'_> {
        // SAFETY: the request's header list is initialised before any handler runs.
        unsafe { Headers::new(&self.0.headers_in.headers) }
    }
    pub fn is_chunked(&self) -> bool {
        self.0.headers_in.chunked() != 0
    }
    /// The `Content-Length` header, if any.
    pub fn content_length_in(&self) -> Option<u64> {
        u64::try_from(self.0.headers_in.content_length_n).ok()
    }
    /// The buffers of the body nginx read, `None` without a body.
    pub fn body(&self) -> Option<Chain<'_>> {
        if self.0.request_body.is_null() {
            return None;
        }
        // SAFETY: a non-NULL request_body is live with the request.
        let bufs = unsafe { (*self.0.request_body).bufs };
        Some(Chain { cl: bufs, _chain: PhantomData })
    }

    pub fn header_only(&self) -> bool {
        self.0.header_only() != 0
    }
    pub fn set_header_only(&mut self) {
        self.0.set_header_only(1);
    }

    /// Our configuration of the request's location. It lives in the cycle's pool, which
    /// outlives every request of the cycle (hence not tied to the borrow of the request).
    pub fn loc_conf(&self) -> &'static LocConf {
        // SAFETY: loc_conf holds one configuration per HTTP module, indexed by ctx_index
        // (nginx's ngx_http_get_module_loc_conf).
        let lcf = unsafe { *self.0.loc_conf.add(ngx_http_oxwsgi_module.ctx_index) };
        // SAFETY: our entry is our location configuration, in the cycle pool, which lives
        // longer than the requests of the cycle.
        unsafe { &*(lcf as *const LocConf) }
    }

    /// `SERVER_NAME`: the server's first `server_name`, else the `Host` nginx validated.
    pub fn server_name(&self) -> &NgxStr {
        // SAFETY: srv_conf holds one configuration per HTTP module, indexed by ctx_index.
        let cscf = unsafe { *self.0.srv_conf.add(ngx_http_core_module.ctx_index) };
        // SAFETY: the core server configuration lives in the cycle pool.
        let name = unsafe { &(*(cscf as *const ngx_http_core_srv_conf_t)).server_name };
        if name.len > 0 { self.str(name) } else { self.str(&self.0.headers_in.server) }
    }

    /// Evaluate a complex value (a `wsgi_param` value) for this request.
    pub fn complex_value(&mut self, cv: &ngx_http_complex_value_t) -> Option<Vec<u8>> {
        let mut v = ngx_str_t { len: 0, data: null_mut() };
        let cv = cv as *const ngx_http_complex_value_t as *mut ngx_http_complex_value_t;
        // SAFETY: the request is live; nginx only reads the compiled value.
        let rc = unsafe { ngx_http_complex_value(self.as_ptr(), cv, &mut v) };
        (rc == OK).then(|| self.str(&v).as_bytes().to_vec())
    }

    /// A copy of `data` in the request pool, NUL-terminated (as nginx keeps header strings).
    fn pool_copy(&mut self, data: &[u8]) -> Option<ngx_str_t> {
        // SAFETY: the request pool is live.
        let p = unsafe { ngx_pnalloc(self.0.pool, data.len() + 1) } as *mut u8;
        if p.is_null() {
            return None;
        }
        // SAFETY: p is a fresh allocation of len + 1 bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        // SAFETY: within the allocation (see above).
        unsafe { *p.add(data.len()) = 0 };
        Some(ngx_str_t { len: data.len(), data: p })
    }

    /// The status; `line` (e.g. `404 Gone Fishing`) is used verbatim unless empty.
    pub fn set_status(&mut self, status: u16, line: &[u8]) -> Result<(), ()> {
        self.0.headers_out.status = status as ngx_uint_t;
        if !line.is_empty() {
            self.0.headers_out.status_line = self.pool_copy(line).ok_or(())?;
        }
        Ok(())
    }

    pub fn set_content_length(&mut self, n: Option<u64>) {
        self.0.headers_out.content_length_n = n.map_or(-1, |n| n as off_t);
    }

    /// Add a response header. `Content-Type` goes where nginx's filters look for it;
    /// `Server`, `Date` and `Content-Encoding` are registered so that nginx does not add
    /// its own or re-encode the body.
    pub fn add_header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ()> {
        let v = self.pool_copy(value).ok_or(())?;
        if name.eq_ignore_ascii_case(b"content-type") {
            let out = &mut self.0.headers_out;
            out.content_type = v;
            out.content_type_len = v.len;
            out.content_type_lowcase = null_mut();
            out.content_type_hash = 0;
            return Ok(());
        }
        let k = self.pool_copy(name).ok_or(())?;
        let low = self.pool_copy(&name.to_ascii_lowercase()).ok_or(())?;
        // SAFETY: headers_out.headers is initialised for every request.
        let h = unsafe { ngx_list_push(&mut self.0.headers_out.headers) } as *mut ngx_table_elt_t;
        if h.is_null() {
            return Err(());
        }
        // SAFETY: h is a fresh element of the list; every field the filters read is set.
        unsafe { h.write(ngx_table_elt_t { hash: 1, key: k, value: v, lowcase_key: low.data }) };
        let out = &mut self.0.headers_out;
        match &*name.to_ascii_lowercase() {
            b"server" => out.server = h,
            b"date" => out.date = h,
            b"content-encoding" => out.content_encoding = h,
            _ => {}
        }
        Ok(())
    }

    /// Our request context (`ngx_http_get_module_ctx`), NULL before the content handler
    /// made it.
    pub fn module_ctx(&self) -> *mut ngx_http_oxwsgi_ctx_t {
        // SAFETY: ctx holds one pointer per HTTP module, indexed by ctx_index.
        unsafe { *self.0.ctx.add(ngx_http_oxwsgi_module.ctx_index) as *mut ngx_http_oxwsgi_ctx_t }
    }

    /// Have nginx read the body; `done` runs once it is read (maybe before this returns).
    pub fn read_body(&mut self, done: unsafe extern "C" fn(*mut ngx_http_request_t)) -> ngx_int_t {
        // SAFETY: the request is live, in its content handler.
        unsafe { ngx_http_read_client_request_body(self.as_ptr(), Some(done)) }
    }

    pub fn send_header(&mut self) -> ngx_int_t {
        // SAFETY: the request is live, on the event loop.
        unsafe { ngx_http_send_header(self.as_ptr()) }
    }

    /// What nginx appends to its own error-log lines for this request (`, client: …,
    /// server: …, request: "…"`, and maybe ` while …` first), from the connection log's
    /// handler.
    pub fn log_handler_text(&self) -> Vec<u8> {
        let log = self.connection().log();
        // SAFETY: the connection's log is live with the connection.
        let Some(handler) = (unsafe { (*log).handler }) else { return Vec::new() };
        let mut buf = [0u8; 2048];
        // SAFETY: the handler writes at most len bytes into buf and returns the end of what
        // it wrote; it reads the request through log->data, which nginx keeps current.
        let end = unsafe { handler(log, buf.as_mut_ptr(), buf.len()) };
        let n = (end as usize).saturating_sub(buf.as_ptr() as usize).min(buf.len());
        buf[..n].to_vec()
    }
}

/// Our per-request context (`ngx_http_oxwsgi_ctx_t`, made by the shim in the request pool):
/// the thread task, the poll timer and the output chains.
pub struct Ctx(NonNull<ngx_http_oxwsgi_ctx_t>);

/// An output chain being built; hand it to [`Ctx::output`].
pub struct Out {
    first: *mut ngx_chain_t,
    last: *mut ngx_chain_t,
}

impl Ctx {
    /// # Safety
    /// `ctx` must come from `ngx_http_oxwsgi_create_ctx` for a request that stays live (not
    /// freed) while the `Ctx` is used, on the event loop only.
    pub unsafe fn new(ctx: *mut ngx_http_oxwsgi_ctx_t) -> Option<Ctx> {
        NonNull::new(ctx).map(Ctx)
    }

    fn raw(&self) -> *mut ngx_http_oxwsgi_ctx_t {
        self.0.as_ptr()
    }

    fn get(&self) -> &ngx_http_oxwsgi_ctx_t {
        // SAFETY: the invariant of `new`: the context lives in the live request's pool.
        unsafe { self.0.as_ref() }
    }

    fn pool(&self) -> *mut ngx_pool_t {
        // SAFETY: ctx->request is the live request the context belongs to.
        unsafe { (*self.get().request).pool }
    }

    /// The thread pool of the request's location (its dispatcher's key).
    pub fn thread_pool(&self) -> ThreadPool {
        ThreadPool(self.get().thread_pool)
    }

    /// A job of the request is queued: raise `r->main->blocked`, so that nginx cannot free
    /// the request before the job's completion (`ngx_http_oxwsgi_job_done`) lowers it.
    pub fn block(&self) {
        // SAFETY: ctx->request is the live request the context belongs to; its `main` is
        // the live main request (itself, or the parent of a subrequest).
        let main = unsafe { (*self.get().request).main };
        // SAFETY: main is live; only the event loop (this thread) touches it.
        let main = unsafe { &mut *main };
        main.set_blocked(main.blocked() + 1);
    }

    /// What a job carries back to the loop: the context's address, valid until the job's
    /// completion because of [`Ctx::block`].
    pub fn token(&self) -> usize {
        self.raw() as usize
    }

    /// (Re)arm the poll timer, or stop it with 0.
    pub fn poll_timer(&self, ms: ngx_msec_t) {
        // SAFETY: the context and its poll event are live.
        unsafe { ngx_http_oxwsgi_poll_timer(self.raw(), ms) }
    }

    /// Install our write handler and the send timeout; false if nginx failed.
    pub fn wait_write(&self) -> bool {
        // SAFETY: ctx->request is live.
        unsafe { ngx_http_oxwsgi_wait_write(self.get().request) == OK }
    }

    /// Stop waiting for the write event (if we were).
    pub fn stop_write_wait(&self) {
        // SAFETY: ctx->request is live.
        unsafe { ngx_http_oxwsgi_stop_write_wait(self.get().request) }
    }

    /// nginx holds data of ours it has not sent.
    pub fn backed_up(&self) -> bool {
        !self.get().busy.is_null()
    }

    /// Whether nginx still holds the buffer `b`.
    pub fn is_busy(&self, b: *mut ngx_buf_t) -> bool {
        let mut cl = self.get().busy;
        while !cl.is_null() {
            // SAFETY: the busy chain's links live in the request pool.
            let link = unsafe { &*cl };
            if link.buf == b {
                return true;
            }
            cl = link.next;
        }
        false
    }

    pub fn out(&self) -> Out {
        Out { first: null_mut(), last: null_mut() }
    }

    /// A zeroed buffer of ours at the end of `out`.
    fn link(&self, out: &mut Out) -> Option<*mut ngx_buf_t> {
        // SAFETY: the request pool and ctx->free are live.
        let cl = unsafe { ngx_chain_get_free_buf(self.pool(), &raw mut (*self.raw()).free) };
        if cl.is_null() {
            return None;
        }
        // SAFETY: cl is a live link with a buffer, free for us to use.
        let b = unsafe { (*cl).buf };
        let tag = &raw const ngx_http_oxwsgi_module as ngx_buf_tag_t;
        // SAFETY: b is the link's buffer: reset it entirely, tagged ours.
        unsafe { b.write(ngx_buf_t { tag, ..Default::default() }) };
        // SAFETY: cl is ours (see above).
        unsafe { (*cl).next = null_mut() };
        if out.last.is_null() {
            out.first = cl;
        } else {
            // SAFETY: out.last is the previous link of this chain.
            unsafe { (*out.last).next = cl };
        }
        out.last = cl;
        Some(b)
    }

    /// Body memory; nginx reads it until the buffer leaves `busy` (see [`Ctx::is_busy`]).
    ///
    /// # Safety
    /// `data` must stay valid and unmoved until [`Ctx::is_busy`] says false for the buffer.
    pub unsafe fn add_mem(&self, out: &mut Out, data: &[u8]) -> Option<*mut ngx_buf_t> {
        let b = self.link(out)?;
        let start = data.as_ptr() as *mut u_char;
        // SAFETY: b is a fresh buffer of ours; [start, start + len) is data (caller).
        let buf = unsafe { &mut *b };
        buf.set_memory(1);
        buf.start = start;
        buf.pos = start;
        buf.last = start.wrapping_add(data.len());
        buf.end = buf.last;
        Some(b)
    }

    /// `len` bytes of the file from `offset` (sendfile). The descriptor is closed with the
    /// request pool.
    pub fn add_file(&self, out: &mut Out, fd: OwnedFd, offset: u64, len: u64) -> Option<*mut ngx_buf_t> {
        let pool = self.pool();
        // SAFETY: the request pool is live.
        let cln = unsafe { ngx_pool_cleanup_add(pool, size_of::<ngx_pool_cleanup_file_t>()) };
        if cln.is_null() {
            return None; // fd is dropped: closed
        }
        // SAFETY: pools have a log.
        let log = unsafe { (*pool).log };
        let data = ngx_pool_cleanup_file_t { fd: fd.into_raw_fd(), name: c"".as_ptr() as *mut u_char, log };
        // SAFETY: cln is a live cleanup of the pool.
        let slot = unsafe { (*cln).data } as *mut ngx_pool_cleanup_file_t;
        // SAFETY: cln was allocated with room for an ngx_pool_cleanup_file_t at cln->data;
        // from here the pool owns (and closes) the descriptor.
        unsafe { slot.write(data) };
        // SAFETY: cln is live (see above).
        unsafe { (*cln).handler = Some(ngx_pool_cleanup_file) };
        // SAFETY: the request pool is live.
        let file = unsafe { ngx_pcalloc(pool, size_of::<ngx_file_t>()) } as *mut ngx_file_t;
        if file.is_null() {
            return None;
        }
        // SAFETY: file is a fresh zeroed ngx_file_t.
        let f = unsafe { &mut *file };
        f.fd = data.fd;
        f.log = log;
        f.name = ngx_str_t { len: 17, data: c"wsgi.file_wrapper".as_ptr() as *mut u_char };
        let b = self.link(out)?;
        // SAFETY: b is a fresh buffer of ours.
        let buf = unsafe { &mut *b };
        buf.set_in_file(1);
        buf.file = file;
        buf.file_pos = offset as off_t;
        buf.file_last = (offset + len) as off_t;
        Some(b)
    }

    /// The buffer that ends a batch: flush, and with `last` the end of the response.
    pub fn add_last(&self, out: &mut Out, last: bool) -> Option<*mut ngx_buf_t> {
        // SAFETY: ctx->request is live.
        let main = unsafe { (*self.get().request).main } == self.get().request;
        let b = self.link(out)?;
        // SAFETY: b is a fresh buffer of ours.
        let buf = unsafe { &mut *b };
        if last && main {
            buf.set_last_buf(1);
        } else if last {
            buf.set_last_in_chain(1);
        }
        buf.set_flush(1);
        buf.set_sync(1);
        Some(b)
    }

    /// Push `out` (or, with `None`, what nginx holds) through the output filters.
    pub fn output(&self, out: Option<Out>) -> ngx_int_t {
        let mut chain = out.map_or(null_mut(), |o| o.first);
        let r = self.get().request;
        // SAFETY: the request is live on the event loop; the chain's links are ours.
        let rc = unsafe { ngx_http_output_filter(r, chain) };
        let tag = &raw const ngx_http_oxwsgi_module as ngx_buf_tag_t;
        let ctx = self.raw();
        // SAFETY: the pool and ctx's free/busy chains are live; nginx moves sent buffers of
        // ours to free.
        unsafe { ngx_chain_update_chains(self.pool(), &raw mut (*ctx).free, &raw mut (*ctx).busy, &mut chain, tag) };
        rc
    }
}

/// A thread pool of the configuration (`thread_pool`), alive for the life of the worker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ThreadPool(*mut ngx_thread_pool_t);

// SAFETY: the pointer is only compared on any thread; tasks are posted to it on the event
// loop only (`post_runner`), as nginx requires.
unsafe impl Send for ThreadPool {}
// SAFETY: see Send.
unsafe impl Sync for ThreadPool {}

impl ThreadPool {
    /// Post a runner task: a pool thread calls `ngx_http_oxwsgi_rs_runner(data)`. On the
    /// event loop only. False if nginx refused (allocation, the pool's queue full).
    pub fn post_runner<T: Sync>(&self, data: &'static T) -> bool {
        // SAFETY: ngx_cycle is nginx's current cycle, set before any request runs.
        let log = unsafe { (*ngx_cycle).log };
        let mut task = Box::new(ngx_thread_task_t::default());
        task.ctx = data as *const T as *mut std::ffi::c_void;
        task.handler = Some(super::RUNNER);
        task.event.handler = Some(runner_done);
        task.event.log = log;
        let task = Box::into_raw(task);
        // SAFETY: task is a live allocation: its event's data is where runner_done finds it.
        unsafe { (*task).event.data = task.cast() };
        // SAFETY: the pool lives as long as the worker; the task (outside any request pool)
        // and data ('static) outlive the task's run; runner_done frees the task after it.
        if unsafe { ngx_thread_task_post(self.0, task) } != OK {
            // SAFETY: not posted: the allocation is still ours.
            drop(unsafe { Box::from_raw(task) });
            return false;
        }
        true
    }
}

/// The completion of a runner task (event loop): free the task `post_runner` allocated.
///
/// # Safety
/// `ev` is the event of a task made by [`ThreadPool::post_runner`], whose `data` is the task.
unsafe extern "C" fn runner_done(ev: *mut ngx_event_t) {
    crate::ffi::guard::guard("runner completion", (), || {
        // SAFETY: ev is the task's own event (caller), alive until the task is freed here.
        let task = unsafe { (*ev).data } as *mut ngx_thread_task_t;
        // SAFETY: task came from Box::into_raw in post_runner and completed: nginx no
        // longer uses it.
        drop(unsafe { Box::from_raw(task) });
    })
}

/// The event-loop half of a dispatcher, made by the shim (`ngx_http_oxwsgi_dispatch_t`):
/// an eventfd in the loop's event set, and a timer. Lives for the life of the worker.
pub struct DispatchEvents(NonNull<ngx_http_oxwsgi_dispatch_t>);

// SAFETY: from other threads only `wake` is used, which only write()s to the eventfd; the
// timer and the event structures are touched on the event loop only.
unsafe impl Send for DispatchEvents {}
// SAFETY: see Send.
unsafe impl Sync for DispatchEvents {}

impl DispatchEvents {
    /// Make the events of a dispatcher whose handlers get `data` (on the event loop).
    pub fn create<T: Sync>(data: &'static T) -> Option<DispatchEvents> {
        // SAFETY: called on the event loop, after the event module's init (requests run);
        // data outlives the events ('static).
        NonNull::new(unsafe { ngx_http_oxwsgi_dispatch_create(data as *const T as *mut std::ffi::c_void) })
            .map(DispatchEvents)
    }

    /// Wake the event loop's read handler (any thread).
    pub fn wake(&self) {
        // SAFETY: the structure lives for the worker's life; its fd is set once at creation.
        let fd = unsafe { (*self.0.as_ptr()).fd };
        let one = 1u64;
        // SAFETY: writes 8 bytes from `one` to the eventfd. A short write is EAGAIN: the
        // counter is full, so the loop is woken anyway.
        let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }

    /// Arm the timer for `ms` unless it is armed (event loop only).
    pub fn tick(&self, ms: ngx_msec_t) {
        // SAFETY: the structure is live; the caller is on the event loop.
        unsafe { ngx_http_oxwsgi_dispatch_tick(self.0.as_ptr(), ms) }
    }
}

/// An nginx time (`30s`, `1m30s`, `500ms`; a bare number is seconds), by nginx's own
/// parser, so that the daemon options read exactly like nginx's timeouts.
pub fn parse_time(v: &str) -> Option<std::time::Duration> {
    let mut s = ngx_str_t { len: v.len(), data: v.as_ptr() as *mut u_char };
    // SAFETY: ngx_parse_time only reads `len` bytes of `data`, which `v` keeps alive.
    let ms = unsafe { ngx_parse_time(&mut s, 0) };
    (ms >= 0).then(|| std::time::Duration::from_millis(ms as u64))
}

/// An nginx size (`512m`, `2g`, `100k`, bytes without a suffix), by nginx's parser.
pub fn parse_size(v: &str) -> Option<u64> {
    let mut s = ngx_str_t { len: v.len(), data: v.as_ptr() as *mut u_char };
    // SAFETY: ngx_parse_offset only reads `len` bytes of `data`, which `v` keeps alive.
    let n = unsafe { ngx_parse_offset(&mut s) };
    (n >= 0).then_some(n as u64)
}

/// The uid and gid nginx's workers will run as, when the `user` directive has been read
/// (`None`: not given, or not yet parsed: nginx's default applies).
///
/// # Safety
/// `cycle` must be the cycle being configured, after the core module created its
/// configuration (true for any http-level directive or hook).
pub unsafe fn configured_worker_ids(cycle: *mut ngx_cycle_t) -> Option<(u32, u32)> {
    // SAFETY: conf_ctx has one entry per core module, indexed by the module's index.
    let p = unsafe { *(*cycle).conf_ctx.add(ngx_core_module.index) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the core module's entry is its ngx_core_conf_t (created before any parse).
    let ccf = unsafe { &*(p as *const ngx_core_conf_t) };
    (ccf.user != u32::MAX).then_some((ccf.user, ccf.group))
}

/// Our main configuration in `cycle`, if it has an http block.
///
/// # Safety
/// `cycle` must be a live, configured cycle (its pools alive while the result is used).
pub unsafe fn main_conf_of<'a>(cycle: *mut ngx_cycle_t) -> Option<&'a ngx_http_oxwsgi_main_conf_t> {
    // SAFETY: conf_ctx has one entry per core module (caller: configured cycle).
    let http = unsafe { *(*cycle).conf_ctx.add(ngx_http_module.index) };
    if http.is_null() {
        return None;
    }
    // SAFETY: the http module's entry is its ngx_http_conf_ctx_t.
    let ctx = unsafe { &*(http as *const ngx_http_conf_ctx_t) };
    // SAFETY: main_conf holds one configuration per HTTP module, indexed by ctx_index.
    let p = unsafe { *ctx.main_conf.add(ngx_http_oxwsgi_module.ctx_index) };
    // SAFETY: our entry is our main configuration (create_main_conf), NULL-checked.
    (!p.is_null()).then(|| unsafe { &*(p as *const ngx_http_oxwsgi_main_conf_t) })
}

/// The directory of nginx's pid file (`pid`, resolved against the prefix by nginx).
///
/// # Safety
/// `cycle` must be a live cycle whose core module's configuration is initialised.
pub unsafe fn pid_dir(cycle: *mut ngx_cycle_t) -> Option<std::path::PathBuf> {
    // SAFETY: conf_ctx has one entry per core module, indexed by the module's index.
    let p = unsafe { *(*cycle).conf_ctx.add(ngx_core_module.index) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the core module's entry is its ngx_core_conf_t; pid lives in the cycle pool.
    let pid = unsafe { NgxStr::from_raw(&(*(p as *const ngx_core_conf_t)).pid) };
    let path = std::path::PathBuf::from(String::from_utf8_lossy(pid.as_bytes()).into_owned());
    path.parent().map(|d| d.to_path_buf())
}

/// The cycle's log, to hand to [`super::io::CycleLog`].
///
/// # Safety
/// `cycle` must be live.
pub unsafe fn cycle_log(cycle: *mut ngx_cycle_t) -> *mut ngx_log_t {
    // SAFETY: cycle is live (caller).
    unsafe { (*cycle).log }
}

/// The cycle's pool.
///
/// # Safety
/// `cycle` must be live.
pub unsafe fn cycle_pool(cycle: *mut ngx_cycle_t) -> *mut ngx_pool_t {
    // SAFETY: cycle is live (caller).
    unsafe { (*cycle).pool }
}

/// What kind of nginx process this is, and whether this is `nginx -t`.
pub struct ProcessKind {
    pub testing: bool,
    /// A worker or a cache helper: a child of the master.
    pub child: bool,
}

pub fn process_kind() -> ProcessKind {
    // SAFETY: nginx's process globals, written by the master's only thread before any
    // module hook runs and read here on that same thread (or in a child after fork).
    let (test, process) = unsafe { (ngx_test_config, ngx_process) };
    ProcessKind {
        testing: test != 0,
        child: process == NGX_PROCESS_WORKER as ngx_uint_t || process == NGX_PROCESS_HELPER as ngx_uint_t,
    }
}

/// Refresh nginx's cached time (the keeper and the daemons have no event loop to do it,
/// and nginx's log lines carry the cached time).
pub fn time_update() {
    // SAFETY: ngx_time_update takes its own lock (ngx_time_lock) and may be called from
    // any thread; a concurrent caller makes it return without updating.
    unsafe { ngx_time_update() }
}

/// Set nginx's idea of this process's pid (`ngx_pid`, in every log line) after a fork
/// that nginx did not make (the keeper, a daemon).
pub fn set_pid() {
    // SAFETY: called first thing in a freshly forked, still single-threaded process;
    // ngx_pid is a plain global nothing else writes there.
    unsafe { ngx_pid = std::process::id() as ngx_pid_t };
}

/// A UNIX stream socket connected to `path` without blocking: `Ok(fd)` connected (a UNIX
/// connect completes at once or fails), `Err` with `WouldBlock` when the listen backlog is
/// full, `NotFound`/`ConnectionRefused` when no daemon listens (yet).
pub fn unix_connect_nonblocking(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: an all-zero sockaddr_un is valid; the path is copied in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket path too long"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: socket() has no memory preconditions.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socket() returned a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
    let rc = unsafe { libc::connect(raw, (&raw const addr).cast(), len) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// `send` without blocking and without SIGPIPE: bytes written, or an error (`WouldBlock`:
/// the socket buffer is full).
pub fn send_nonblocking(fd: std::os::fd::BorrowedFd<'_>, data: &[u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: data is readable for its length during the call.
    let n = unsafe {
        libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
    };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// An event handler nginx calls with the event.
pub type EventHandler = unsafe extern "C" fn(*mut ngx_event_t);

/// A connection of ours on the event loop (to a daemon): an `ngx_connection_t` from
/// nginx's connection pool over our socket, its read and write events registered with the
/// event method. Dropping it closes it (`ngx_close_connection`: events, timers, socket).
pub struct PeerConn(NonNull<ngx_connection_t>);

impl PeerConn {
    /// Wrap `fd`; the events call `handler` with `c->data == data`.
    ///
    /// # Safety
    /// `log` must outlive the connection; `data` must stay valid for the handler while the
    /// connection lives (the owner drops the connection first).
    pub unsafe fn new(
        fd: OwnedFd,
        log: *mut ngx_log_t,
        data: *mut std::ffi::c_void,
        handler: EventHandler,
    ) -> Option<PeerConn> {
        let raw = fd.into_raw_fd();
        // SAFETY: raw is an open socket of ours; nginx takes it over.
        let c = unsafe { ngx_get_connection(raw, log) };
        let Some(c) = NonNull::new(c) else {
            // SAFETY: nginx did not take the descriptor (no free connection): close it.
            unsafe { libc::close(raw) };
            return None;
        };
        let conn = PeerConn(c);
        // SAFETY: c is a fresh connection from nginx's pool with its two events.
        unsafe {
            let c = c.as_ptr();
            (*c).data = data;
            (*c).log = log;
            (*(*c).read).handler = Some(handler);
            (*(*c).read).log = log;
            (*(*c).write).handler = Some(handler);
            (*(*c).write).log = log;
        }
        // SAFETY: the event module's actions are set for the worker's whole life.
        let add_conn = unsafe { ngx_event_actions.add_conn };
        let ok = match add_conn {
            // SAFETY: c is a live connection with its events (epoll: both, edge-triggered).
            Some(add) => (unsafe { add(c.as_ptr()) }) == OK,
            None => conn.want_read() && conn.want_write(),
        };
        ok.then_some(conn)
    }

    fn c(&self) -> &ngx_connection_t {
        // SAFETY: the connection is live until drop; used on the event loop only.
        unsafe { self.0.as_ref() }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the socket stays open until the connection is closed (drop).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.c().fd) }
    }

    /// The read side found nothing more (EAGAIN): wait for the next read event.
    pub fn read_drained(&self) {
        // SAFETY: the read event of the live connection.
        unsafe { (*self.c().read).set_ready(0) };
        self.want_read();
    }

    /// Whether the read event said bytes (or the end) may be waiting: false after a read
    /// found nothing, until the next read event (edge-triggered epoll reports each
    /// arrival), so a read that could only say EAGAIN is not tried.
    pub fn read_ready(&self) -> bool {
        // SAFETY: the read event of the live connection.
        unsafe { (*self.c().read).ready() != 0 }
    }

    /// Forget a stale read-ready mark (a kept connection between requests: nothing is due
    /// until the next request's answer, whose arrival is a new read event).
    pub fn forget_read_ready(&self) {
        // SAFETY: the read event of the live connection.
        unsafe { (*self.c().read).set_ready(0) };
    }

    /// The write side is full (EAGAIN): wait for the next write event.
    pub fn write_full(&self) {
        // SAFETY: the write event of the live connection.
        unsafe { (*self.c().write).set_ready(0) };
        self.want_write();
    }

    /// Hand the connection to another owner: its events now call `handler` with
    /// `c->data == data` and log to `log`. `idle`: nginx may close it on its own when the
    /// worker shuts down (`ngx_close_idle_connections` sets `c->close` and calls the read
    /// handler).
    ///
    /// # Safety
    /// As for [`PeerConn::new`]: `log` outlives the connection, `data` stays valid for
    /// `handler` while it is bound.
    pub unsafe fn rebind(&self, log: *mut ngx_log_t, data: *mut std::ffi::c_void, handler: EventHandler, idle: bool) {
        // SAFETY: the connection and its two events are live and used on the loop only.
        unsafe {
            let c = self.0.as_ptr();
            (*c).data = data;
            (*c).log = log;
            (*c).set_idle(idle as u32);
            (*(*c).read).handler = Some(handler);
            (*(*c).read).log = log;
            (*(*c).write).handler = Some(handler);
            (*(*c).write).log = log;
        }
    }

    /// Whether this is the connection of event `ev`.
    pub fn is_of(&self, ev: *mut ngx_event_t) -> bool {
        // SAFETY: an event's data is its connection (caller: an event of a PeerConn).
        std::ptr::eq(unsafe { (*ev).data } as *const ngx_connection_t, self.0.as_ptr())
    }

    fn want_read(&self) -> bool {
        // SAFETY: the read event of the live connection.
        unsafe { ngx_handle_read_event(self.c().read, 0) == OK }
    }

    fn want_write(&self) -> bool {
        // SAFETY: the write event of the live connection.
        unsafe { ngx_handle_write_event(self.c().write, 0) == OK }
    }
}

impl Drop for PeerConn {
    fn drop(&mut self) {
        // SAFETY: the connection is ours and live; this closes it exactly once.
        unsafe { ngx_close_connection(self.0.as_ptr()) }
    }
}

/// Whether `ev` is a write event, and whether nginx asks its connection to close
/// (`c->close`: the worker is shutting down).
///
/// # Safety
/// `ev` must be an event of a live [`PeerConn`].
pub unsafe fn peer_event_kind(ev: *mut ngx_event_t) -> (bool, bool) {
    // SAFETY: ev and its connection are live (caller).
    unsafe { ((*ev).write() != 0, (*((*ev).data as *mut ngx_connection_t)).close() != 0) }
}

/// The current cycle's log: lives as long as the worker (for connections that outlive
/// a request).
pub fn worker_log() -> *mut ngx_log_t {
    // SAFETY: ngx_cycle is nginx's current cycle, set before any request runs.
    unsafe { (*ngx_cycle).log }
}

/// The `data` of a connection whose event fired (see [`PeerConn::new`]).
///
/// # Safety
/// `ev` must be an event of a live [`PeerConn`].
pub unsafe fn peer_data(ev: *mut ngx_event_t) -> *mut std::ffi::c_void {
    // SAFETY: an event's data is its connection (ngx_get_connection), live (caller).
    unsafe { (*((*ev).data as *mut ngx_connection_t)).data }
}

//! What a request *is*, as owned (or borrowed) data the core understands.
//!
//! Each adapter fills a [`RequestMeta`] from its server's structures and does nothing else;
//! every rule that decides what the application sees — the CGI key list, `HTTPS` and
//! `wsgi.url_scheme`, which headers pass, header names to `HTTP_*` keys, whitespace around
//! header values, the bracketed IPv6 `SERVER_NAME` — lives in [`super::environ`], once.
//!
//! Values are `Cow` so that an adapter whose request outlives the call (Apache: the
//! `request_rec` lives while the handler runs on the same thread) lends its bytes without a
//! copy, while one that hands the request to another thread (nginx) or process (daemon
//! mode) owns them. [`RequestMeta::encode`]/[`RequestMeta::decode`] give the compact wire
//! form the daemon protocol carries.

use std::borrow::Cow;

/// Bytes of the request, borrowed from the server or owned.
pub type Bytes<'a> = Cow<'a, [u8]>;

/// Which application, and how, a request runs (mod_wsgi's per-request settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppSettings<'a> {
    /// The WSGI script's path (`SCRIPT_FILENAME`).
    pub script: Bytes<'a>,
    /// The name of the WSGI callable in the script.
    pub callable: Bytes<'a>,
    /// `%{GLOBAL}` or empty for the main interpreter, else the group name.
    pub application_group: Bytes<'a>,
    /// Empty for embedded mode.
    pub process_group: Bytes<'a>,
    /// Reload the script when its file changes.
    pub script_reloading: bool,
}

/// One request's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMeta<'a> {
    pub method: Bytes<'a>,
    /// The mount point (the part of the path that selects the application).
    pub script_name: Bytes<'a>,
    /// The rest of the (decoded) path.
    pub path_info: Bytes<'a>,
    pub query: Bytes<'a>,
    /// The request target as received.
    pub request_uri: Bytes<'a>,
    pub protocol: Bytes<'a>,
    /// The host the client asked for (or the configured name); an IPv6 literal with or
    /// without its brackets.
    pub server_name: Bytes<'a>,
    pub server_port: u16,
    pub server_addr: Bytes<'a>,
    pub remote_addr: Bytes<'a>,
    pub remote_port: Option<u16>,
    /// The connection to the server is TLS.
    pub tls: bool,
    /// Request headers as received, in order; repeated names appear repeatedly.
    pub headers: Vec<(Bytes<'a>, Bytes<'a>)>,
    /// The body length when the server knows it better than the header does (a chunked
    /// body read in full); `None` leaves `CONTENT_LENGTH` to the header.
    pub content_length: Option<u64>,
    /// Pass `Authorization` to the application (mod_wsgi's `WSGIPassAuthorization`).
    pub pass_authorization: bool,
    /// Variables of the server's own environment (Apache `SetEnv`, mod_ssl, mod_rewrite
    /// `[E=]`): set before the CGI keys, which win over them. `HTTPS` here counts for the
    /// scheme (TLS terminated in front of the server).
    pub server_vars: Vec<(Bytes<'a>, Bytes<'a>)>,
    /// Variables configured for the application (nginx `wsgi_param`): set last, they win.
    pub params: Vec<(Bytes<'a>, Bytes<'a>)>,
    pub document_root: Option<Bytes<'a>>,
    pub remote_user: Option<Bytes<'a>>,
    pub auth_type: Option<Bytes<'a>>,
    pub app: AppSettings<'a>,
}

fn owned(b: Bytes<'_>) -> Bytes<'static> {
    Cow::Owned(b.into_owned())
}

fn owned_pairs(v: Vec<(Bytes<'_>, Bytes<'_>)>) -> Vec<(Bytes<'static>, Bytes<'static>)> {
    v.into_iter().map(|(k, v)| (owned(k), owned(v))).collect()
}

impl RequestMeta<'_> {
    /// A copy that borrows nothing (to hand to another thread).
    pub fn into_owned(self) -> RequestMeta<'static> {
        RequestMeta {
            method: owned(self.method),
            script_name: owned(self.script_name),
            path_info: owned(self.path_info),
            query: owned(self.query),
            request_uri: owned(self.request_uri),
            protocol: owned(self.protocol),
            server_name: owned(self.server_name),
            server_port: self.server_port,
            server_addr: owned(self.server_addr),
            remote_addr: owned(self.remote_addr),
            remote_port: self.remote_port,
            tls: self.tls,
            headers: owned_pairs(self.headers),
            content_length: self.content_length,
            pass_authorization: self.pass_authorization,
            server_vars: owned_pairs(self.server_vars),
            params: owned_pairs(self.params),
            document_root: self.document_root.map(owned),
            remote_user: self.remote_user.map(owned),
            auth_type: self.auth_type.map(owned),
            app: AppSettings {
                script: owned(self.app.script),
                callable: owned(self.app.callable),
                application_group: owned(self.app.application_group),
                process_group: owned(self.app.process_group),
                script_reloading: self.app.script_reloading,
            },
        }
    }
}

/// Why an encoded request could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed request metadata: {}", self.0)
    }
}

/// Wire format version; bump on any change of the layout below.
const VERSION: u8 = 1;

/// Flag bits of the encoded form.
const F_TLS: u8 = 1;
const F_PASS_AUTH: u8 = 2;
const F_RELOAD: u8 = 4;

/// Appends little-endian fields; strings are a u32 length and the bytes.
struct Writer<'o>(&'o mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(&b[..b.len().min(u32::MAX as usize)]);
    }
    /// An optional string: presence byte, then the string.
    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn pairs(&mut self, v: &[(Bytes<'_>, Bytes<'_>)]) {
        self.u32(v.len() as u32);
        for (k, val) in v {
            self.bytes(k);
            self.bytes(val);
        }
    }
}

/// Reads what [`Writer`] wrote, borrowing strings from the buffer.
struct Reader<'b> {
    buf: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<Bytes<'b>, DecodeError> {
        let n = self.u32()? as usize;
        Ok(Cow::Borrowed(self.take(n)?))
    }
    fn opt(&mut self) -> Result<Option<Bytes<'b>>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(DecodeError("bad presence byte")),
        }
    }
    fn pairs(&mut self) -> Result<Vec<(Bytes<'b>, Bytes<'b>)>, DecodeError> {
        let n = self.u32()? as usize;
        // Each pair takes at least 8 bytes: a count beyond that is a lie, not an allocation.
        if n > self.buf.len() / 8 {
            return Err(DecodeError("pair count exceeds the data"));
        }
        (0..n).map(|_| Ok((self.bytes()?, self.bytes()?))).collect()
    }
}

impl<'a> RequestMeta<'a> {
    /// Append the wire form to `out` (see docs/daemon-protocol.md once it exists).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        w.u8(VERSION);
        let flags = (self.tls as u8 * F_TLS)
            | (self.pass_authorization as u8 * F_PASS_AUTH)
            | (self.app.script_reloading as u8 * F_RELOAD);
        w.u8(flags);
        for b in [
            &self.method,
            &self.script_name,
            &self.path_info,
            &self.query,
            &self.request_uri,
            &self.protocol,
            &self.server_name,
            &self.server_addr,
            &self.remote_addr,
            &self.app.script,
            &self.app.callable,
            &self.app.application_group,
            &self.app.process_group,
        ] {
            w.bytes(b);
        }
        w.u32(self.server_port as u32);
        w.u32(self.remote_port.map_or(u32::MAX, u32::from));
        w.u64(self.content_length.unwrap_or(u64::MAX));
        w.opt(self.document_root.as_deref());
        w.opt(self.remote_user.as_deref());
        w.opt(self.auth_type.as_deref());
        w.pairs(&self.headers);
        w.pairs(&self.server_vars);
        w.pairs(&self.params);
    }

    /// Read the wire form back, borrowing from `buf`. The whole buffer must be one request.
    pub fn decode(buf: &'a [u8]) -> Result<RequestMeta<'a>, DecodeError> {
        let mut r = Reader { buf };
        if r.u8()? != VERSION {
            return Err(DecodeError("unknown version"));
        }
        let flags = r.u8()?;
        let mut m = RequestMeta {
            tls: flags & F_TLS != 0,
            pass_authorization: flags & F_PASS_AUTH != 0,
            ..RequestMeta::default()
        };
        m.app.script_reloading = flags & F_RELOAD != 0;
        for slot in [
            &mut m.method,
            &mut m.script_name,
            &mut m.path_info,
            &mut m.query,
            &mut m.request_uri,
            &mut m.protocol,
            &mut m.server_name,
            &mut m.server_addr,
            &mut m.remote_addr,
            &mut m.app.script,
            &mut m.app.callable,
            &mut m.app.application_group,
            &mut m.app.process_group,
        ] {
            *slot = r.bytes()?;
        }
        m.server_port = u16::try_from(r.u32()?).map_err(|_| DecodeError("server port"))?;
        m.remote_port = match r.u32()? {
            u32::MAX => None,
            p => Some(u16::try_from(p).map_err(|_| DecodeError("remote port"))?),
        };
        m.content_length = match r.u64()? {
            u64::MAX => None,
            n => Some(n),
        };
        m.document_root = r.opt()?;
        m.remote_user = r.opt()?;
        m.auth_type = r.opt()?;
        m.headers = r.pairs()?;
        m.server_vars = r.pairs()?;
        m.params = r.pairs()?;
        if !r.buf.is_empty() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes<'static> {
        Cow::Owned(s.as_bytes().to_vec())
    }

    fn sample() -> RequestMeta<'static> {
        RequestMeta {
            method: b("POST"),
            script_name: b("/app"),
            path_info: b("/x y"),
            query: b("a=1"),
            request_uri: b("/app/x%20y?a=1"),
            protocol: b("HTTP/1.1"),
            server_name: b("[::1]"),
            server_port: 8080,
            server_addr: b("::1"),
            remote_addr: b("::1"),
            remote_port: Some(50000),
            tls: true,
            headers: vec![(b("Host"), b("[::1]:8080")), (b("X-A"), b("\u{e9}"))],
            content_length: Some(12),
            pass_authorization: true,
            server_vars: vec![(b("HTTPS"), b("1"))],
            params: vec![(b("P"), b(""))],
            document_root: Some(b("/srv")),
            remote_user: None,
            auth_type: Some(b("Basic")),
            app: AppSettings {
                script: b("/srv/app.wsgi"),
                callable: b("application"),
                application_group: b(""),
                process_group: b("g"),
                script_reloading: true,
            },
        }
    }

    #[test]
    fn wire_form_round_trips() {
        let m = sample();
        let mut buf = Vec::new();
        m.encode(&mut buf);
        assert_eq!(RequestMeta::decode(&buf).unwrap(), m);
        let empty = RequestMeta::default();
        let mut buf = Vec::new();
        empty.encode(&mut buf);
        assert_eq!(RequestMeta::decode(&buf).unwrap(), empty);
    }

    #[test]
    fn malformed_wire_form_is_refused() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for n in 0..buf.len() {
            assert!(RequestMeta::decode(&buf[..n]).is_err(), "a prefix of {n} bytes decoded");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(RequestMeta::decode(&longer), Err(DecodeError("trailing bytes")));
        let mut other = buf.clone();
        other[0] = 99;
        assert_eq!(RequestMeta::decode(&other), Err(DecodeError("unknown version")));
    }
}

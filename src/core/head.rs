//! The response head: status line and headers, validated as PEP 3333 requires.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// A validated status line and header list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Numeric status, 100..=999.
    pub status: u16,
    /// The whole status line as the app gave it, e.g. "404 Not Found".
    pub status_line: String,
    /// Header names and values, latin-1 text without CR/LF.
    pub headers: Vec<(String, String)>,
    /// The Content-Length the app declared, if any.
    pub content_length: Option<u64>,
}

/// Hop-by-hop headers (RFC 2616 §13.5.1): PEP 3333 forbids applications to send them.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// Parse "NNN Reason". PEP 3333: a status code and a reason phrase separated by one space.
pub fn parse_status(status: &str) -> Result<u16, String> {
    let b = status.as_bytes();
    let digits_ok = b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit) && b[0] != b'0';
    if !digits_ok || (b.len() > 3 && b[3] != b' ') {
        return Err(format!("invalid status {status:?}: expected 'NNN Reason', e.g. '200 OK'"));
    }
    if let Some(c) = status.chars().find(|&c| (c as u32) < 0x20 || c as u32 == 0x7f || c as u32 > 0xff) {
        return Err(format!("invalid status {status:?}: contains the character {c:?}"));
    }
    Ok(status[..3].parse().expect("three digits"))
}

/// RFC 7230 token characters, the only ones allowed in a header name.
fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Check one header; returns an error message for the app.
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if let Some(c) = value.chars().find(|&c| c == '\r' || c == '\n') {
        return Err(format!("header {name}: value contains {c:?} (header injection?)"));
    }
    // RFC 9110 §5.5: no control characters in a field value but HTAB (NUL, 0x01-0x1F,
    // DEL); servers pass them to the client as they are, where they confuse parsers.
    if let Some(c) = value.chars().find(|&c| (c < ' ' && c != '\t') || c == '\x7f') {
        return Err(format!("header {name}: value contains the control character {c:?}"));
    }
    if let Some(c) = value.chars().find(|&c| c as u32 > 0xff) {
        return Err(format!("header {name}: value has {c:?}, which is not latin-1"));
    }
    if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!("hop-by-hop header {name:?} is not allowed from a WSGI application (PEP 3333)"));
    }
    Ok(())
}

/// Build a [`ResponseHead`] from the arguments of `start_response`, raising the exception
/// the application should see when they are malformed.
pub fn from_python(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("status must be str, not {}", type_name(status))))?
        .to_str()?
        .to_owned();
    let code = parse_status(&status).map_err(PyValueError::new_err)?;
    if headers.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("response headers must be a list of (name, value) tuples, not str"));
    }
    let mut out = Vec::new();
    let mut content_length = None;
    for item in headers
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("response headers must be a list, not {}", type_name(headers))))?
    {
        let item = item?;
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err(format!(
                "each response header must be a (name, value) tuple, not {}",
                type_name(&item)
            ))
        })?;
        if pair.len() != 2 {
            return Err(PyTypeError::new_err(format!("response header tuple must have 2 items, not {}", pair.len())));
        }
        let text = |i: usize| -> PyResult<String> {
            let v = pair.get_item(i)?;
            let s = v.cast::<PyString>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "header {} must be str, not {}",
                    if i == 0 { "name" } else { "value" },
                    type_name(&v)
                ))
            })?;
            Ok(s.to_str()?.to_owned())
        };
        let (name, value) = (text(0)?, text(1)?);
        check_header(&name, &value).map_err(PyValueError::new_err)?;
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| PyValueError::new_err(format!("invalid Content-Length {value:?}")))?;
            content_length = Some(n);
        }
        out.push((name, value));
    }
    Ok(ResponseHead { status: code, status_line: status, headers: out, content_length })
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 Not Found"), Ok(404));
        assert_eq!(parse_status("299"), Ok(299));
        assert!(parse_status("OK").is_err());
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("099 Low").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
    }

    #[test]
    fn headers() {
        assert!(check_header("Content-Type", "text/plain").is_ok());
        assert!(check_header("X-Caf", "caf\u{e9}").is_ok());
        assert!(check_header("X-Bad", "a\r\nSet-Cookie: x").is_err());
        assert!(check_header("X Bad", "a").is_err());
        assert!(check_header("X-Euro", "\u{20ac}").is_err());
        assert!(check_header("Transfer-Encoding", "chunked").is_err());
        assert!(check_header("connection", "close").is_err());
        assert!(check_header("X-Tab", "a\tb").is_ok());
        for c in ['\0', '\x01', '\x1b', '\x1f', '\x7f'] {
            let e = check_header("X-Ctl", &format!("a{c}b")).unwrap_err();
            assert!(e.starts_with("header X-Ctl: value contains"), "{e}");
        }
        assert!(check_header("X-\x01Ctl", "v").is_err());
    }
}

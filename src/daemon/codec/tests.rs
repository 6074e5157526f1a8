//! The codec alone (hostile or broken peers, byte-by-byte arrival), then against the real
//! daemon (`serve_with` on a thread, Python running the application) through a blocking
//! driver that does what the nginx worker's event handlers will do.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{ClientCodec, Event};
use crate::core::head::ResponseHead;
use crate::core::request::{AppSettings, RequestMeta};
use crate::core::worker::Worker;
use crate::core::{Level, LogSink};
use crate::daemon::client::ProxyError;
use crate::daemon::protocol::{self, Hello, Kind};
use crate::daemon::{Control, GroupSettings, serve_with};

fn meta(script: &str, method: &str, path: &str) -> RequestMeta<'static> {
    let b = |s: &str| Cow::Owned(s.as_bytes().to_vec());
    RequestMeta {
        method: b(method),
        script_name: b(""),
        path_info: b(path),
        request_uri: b(path),
        protocol: b("HTTP/1.1"),
        server_name: b("localhost"),
        server_port: 80,
        server_addr: b("127.0.0.1"),
        remote_addr: b("127.0.0.1"),
        remote_port: Some(40000),
        headers: vec![(b("Host"), b("localhost"))],
        app: AppSettings { script: b(script), callable: b("application"), ..Default::default() },
        ..Default::default()
    }
}

fn codec() -> ClientCodec {
    ClientCodec::start(&meta("/x.wsgi", "GET", "/"), 0).unwrap().0
}

fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    protocol::frame(&mut v, kind, payload);
    v
}

fn hello() -> Vec<u8> {
    frame(Kind::Hello, &Hello::ours(0).encode())
}

fn head(status: u16) -> Vec<u8> {
    let h = ResponseHead {
        status,
        status_line: format!("{status} OK"),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        content_length: None,
    };
    let mut p = Vec::new();
    protocol::encode_head(&h, &mut p);
    frame(Kind::Head, &p)
}

/// Every event of `bytes`, fed one byte at a time.
fn events(c: &mut ClientCodec, bytes: &[u8]) -> Result<Vec<Event>, ProxyError> {
    let mut out = Vec::new();
    for b in bytes {
        c.received(std::slice::from_ref(b));
        while let Some(e) = c.next_event()? {
            out.push(e);
        }
    }
    Ok(out)
}

#[test]
fn a_response_arrives_byte_by_byte() {
    let mut c = codec();
    let mut wire = hello();
    wire.extend(head(200));
    wire.extend(frame(Kind::Data, b"\x01hello"));
    wire.extend(frame(Kind::End, b""));
    let ev = events(&mut c, &wire).unwrap();
    assert!(matches!(ev[0], Event::Accepted));
    assert!(matches!(&ev[1], Event::Head(h) if h.status == 200));
    assert!(matches!(&ev[2], Event::Data(d, f) if d == b"hello" && f.flush && !f.last));
    assert!(matches!(ev[3], Event::End));
    assert!(c.done() && c.buffered() == 0);
}

#[test]
fn a_long_stream_in_unaligned_pieces_keeps_the_buffer_small() {
    let mut c = codec();
    let mut wire = hello();
    wire.extend(head(200));
    let mut data = vec![0u8; 256 * 1024 + 1];
    data[0] = 0;
    let frame_bytes = frame(Kind::Data, &data);
    let mut got = 0usize;
    let mut feed = |c: &mut ClientCodec, bytes: &[u8]| {
        // 64 KiB - 1: never aligned with the frames
        for piece in bytes.chunks(64 * 1024 - 1) {
            c.received(piece);
            while let Some(e) = c.next_event().unwrap() {
                if let Event::Data(d, _) = e {
                    got += d.len();
                }
            }
            assert!(c.capacity() < 1024 * 1024, "buffer capacity {}", c.capacity());
        }
    };
    feed(&mut c, &wire);
    for _ in 0..100 {
        feed(&mut c, &frame_bytes);
    }
    assert_eq!(got, 100 * 256 * 1024);
}

#[test]
fn protocol_violations_are_errors() {
    let proto = |wire: Vec<u8>| match events(&mut codec(), &wire) {
        Err(ProxyError::Protocol(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(proto([hello(), frame(Kind::Data, b"\x00x")].concat()).contains("before the head"));
    assert!(proto(head(200)).contains("before its HELLO"));
    assert!(proto([hello(), head(200), head(200)].concat()).contains("after the head"));
    assert!(proto(vec![0x7f, 0, 0, 0, 0]).contains("unknown frame kind"));
    // Refused from the 5-byte header alone: nothing of the 4 GiB is awaited.
    assert!(proto([hello(), vec![Kind::Data as u8, 0xff, 0xff, 0xff, 0xff]].concat()).contains("at most"));
    let read = frame(Kind::Read, &16u32.to_le_bytes());
    assert!(proto([hello(), read.clone(), read].concat()).contains("second READ"));
    assert!(proto([hello(), head(200), frame(Kind::File, &[0; 17])].concat()).contains("without a passed descriptor"));
    assert!(
        proto([hello(), head(200), frame(Kind::End, b""), frame(Kind::End, b"")].concat()).contains("after the end")
    );
}

#[test]
fn fail_and_retry_map_like_the_blocking_client() {
    let fail = |s: u16| [hello(), frame(Kind::Fail, &protocol::encode_fail(s, "why"))].concat();
    assert!(matches!(events(&mut codec(), &fail(500)).unwrap()[1], Event::Failed));
    assert_eq!(events(&mut codec(), &fail(503)).unwrap_err(), ProxyError::Queue);
    assert_eq!(events(&mut codec(), &fail(504)).unwrap_err(), ProxyError::Timeout);
    assert_eq!(events(&mut codec(), &fail(418)).unwrap_err(), ProxyError::Status(418));
    let retry = [hello(), frame(Kind::Retry, b"")].concat();
    assert_eq!(events(&mut codec(), &retry).unwrap_err(), ProxyError::Restarting);
    // Once the daemon read body bytes, the request cannot be sent again.
    let mut c = codec();
    events(&mut c, &[hello(), frame(Kind::Read, &8u32.to_le_bytes())].concat()).unwrap();
    c.body(b"12345678");
    assert!(matches!(events(&mut c, &frame(Kind::Retry, b"")), Err(ProxyError::Protocol(_))));
}

#[test]
fn body_answers_are_frames() {
    let mut c = codec();
    assert_eq!(c.body(b"abc"), frame(Kind::Body, b"abc"));
    assert_eq!(c.body(b""), frame(Kind::Body, b""));
    // After the end, the body stays ended.
    assert_eq!(c.body(b"more"), frame(Kind::Body, b""));
    assert_eq!(c.body_error("client went away"), frame(Kind::BodyError, b"client went away"));
}

// ---- against the real daemon -------------------------------------------------------

struct NullLog;
impl LogSink for NullLog {
    fn log(&self, _level: Level, _msg: &str) {}
}

const APP: &str = r#"
import os
def application(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/echo':
        body = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return [body]
    if path == '/file':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        f = open(environ['SCRIPT_FILENAME'], 'rb')
        return environ['wsgi.file_wrapper'](f)
    if path == '/boom':
        raise RuntimeError('boom')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'group=', environ['mod_wsgi.process_group'].encode()]
"#;

/// What the driver collected.
#[derive(Default)]
struct Got {
    status: u16,
    body: Vec<u8>,
    files: Vec<Vec<u8>>,
    failed: bool,
    reads: usize,
}

/// Drive one request like an event loop would (here with blocking calls): write the
/// start, then read, feed, take events and answer READs from `body`.
fn drive(socket: &PathBuf, m: &RequestMeta<'_>, body: &[u8]) -> Result<Got, ProxyError> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut c, first) = ClientCodec::start(m, 0)?;
    s.write_all(&first).unwrap();
    let mut got = Got::default();
    let mut sent = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut fds = VecDeque::new();
    loop {
        while let Some(e) = c.next_event()? {
            match e {
                Event::Accepted => {}
                Event::Read(n) => {
                    got.reads += 1;
                    let chunk = &body[sent..(sent + n).min(body.len())];
                    sent += chunk.len();
                    s.write_all(&c.body(chunk)).unwrap();
                }
                Event::Head(h) => got.status = h.status,
                Event::Data(d, _) => got.body.extend(d),
                Event::File { fd, offset, len, .. } => {
                    let mut v = vec![0; len as usize];
                    std::fs::File::from(fd).read_exact_at(&mut v, offset).unwrap();
                    got.files.push(v);
                }
                Event::End => return Ok(got),
                Event::Abort => panic!("aborted"),
                Event::Failed => {
                    got.failed = true;
                    return Ok(got);
                }
            }
        }
        let n = crate::ffi::unix::recv_msg(s.as_fd(), &mut buf, &mut fds).unwrap();
        if n == 0 {
            return Err(c.eof());
        }
        c.received(&buf[..n]);
        c.received_fds(&mut fds);
    }
}

#[test]
fn the_real_daemon_through_the_codec() {
    crate::core::tests::python();
    let dir = std::env::temp_dir().join(format!("oxwsgi-codec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("app.wsgi");
    std::fs::write(&script, APP).unwrap();
    let socket = dir.join("d.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let settings = GroupSettings {
        name: "codec".into(),
        processes: 1,
        threads: 2,
        runtime: Default::default(),
        imports: vec![],
        server_software: "test".into(),
        maximum_requests: None,
        request_timeout: None,
        inactivity_timeout: None,
        restart_interval: None,
        graceful_timeout: Duration::from_secs(5),
        shutdown_timeout: Duration::from_secs(5),
        deadlock_timeout: None,
    };
    let log: Arc<dyn LogSink> = Arc::new(NullLog);
    let worker: &'static Worker = Box::leak(Box::new(Worker::prepare(&crate::daemon::setup(&settings), log.clone())));
    let control = Arc::new(Control::default());
    let c2 = control.clone();
    let s2 = settings.clone();
    let thread = std::thread::spawn(move || serve_with(&s2, listener, log, worker, c2));
    let script_s = script.to_str().unwrap();

    let got = drive(&socket, &meta(script_s, "GET", "/"), b"").unwrap();
    assert_eq!((got.status, &got.body[..]), (200, &b"group=codec"[..]));

    // A 1.5 MiB body, pulled by the application in READs of at most 256 KiB (kept small:
    // the daemon tests beside this one measure the process's RSS).
    let up: Vec<u8> = (0..3 * 512 * 1024).map(|i| (i % 251) as u8).collect();
    let mut m = meta(script_s, "POST", "/echo");
    m.headers.push((Cow::Borrowed(b"Content-Length"), Cow::Owned(up.len().to_string().into_bytes())));
    m.content_length = Some(up.len() as u64);
    let got = drive(&socket, &m, &up).unwrap();
    assert_eq!(got.status, 200);
    assert!(got.body == up, "echoed body differs ({} bytes)", got.body.len());
    assert!(got.reads >= 6, "{} reads", got.reads);

    let got = drive(&socket, &meta(script_s, "GET", "/file"), b"").unwrap();
    assert_eq!(got.files.concat(), APP.as_bytes());

    let got = drive(&socket, &meta(script_s, "GET", "/boom"), b"").unwrap();
    assert!(got.failed && got.status == 0);

    control.stop();
    thread.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_body_frame_built_in_place_matches_the_copied_one_and_ends_once() {
    let mut a = codec();
    let mut b = codec();
    let mut frame = vec![0u8; protocol::HEADER_LEN];
    frame.extend_from_slice(b"chunk");
    let n = a.body_in_place(&mut frame);
    assert_eq!(&frame[..n], &b.body(b"chunk")[..]);
    // An empty chunk ends the body; anything after it is sent as empty too.
    let mut end = vec![0u8; protocol::HEADER_LEN];
    assert_eq!(a.body_in_place(&mut end), protocol::HEADER_LEN);
    let mut late = vec![0u8; protocol::HEADER_LEN];
    late.extend_from_slice(b"late");
    assert_eq!(a.body_in_place(&mut late), protocol::HEADER_LEN);
    assert_eq!(&late[..protocol::HEADER_LEN], &protocol::header(Kind::Body, 0));
}

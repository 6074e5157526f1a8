//! Daemon mode end to end in one process: `serve_with` on a thread behind a real UNIX
//! socket, driven by `client::proxy` with a scripted body and a recording sink.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{self, ClientTimeouts, ProxyError};
use super::protocol::{self, Kind};
use super::{Control, Exit, GroupSettings, serve_with};
use crate::core::head::ResponseHead;
use crate::core::request::{AppSettings, RequestMeta};
use crate::core::response::Outcome;
use crate::core::worker::Worker;
use crate::core::{Level, LogSink, RequestBody, ResponseSink, SinkError, WriteFlags};

#[derive(Default)]
struct MemLog(Mutex<Vec<String>>);

impl LogSink for MemLog {
    fn log(&self, _level: Level, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

impl MemLog {
    fn has(&self, needle: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("oxwsgi-daemon-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn settings(name: &str) -> GroupSettings {
    GroupSettings {
        name: name.into(),
        processes: 2,
        threads: 3,
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
    }
}

/// A daemon group serving `code` (the WSGI script) on a thread of this process.
struct Group {
    dir: PathBuf,
    socket: PathBuf,
    script: PathBuf,
    control: Arc<Control>,
    log: Arc<MemLog>,
    thread: Option<JoinHandle<Exit>>,
}

impl Group {
    fn start(s: GroupSettings, code: &str) -> Group {
        crate::core::tests::python();
        let dir = temp_dir(&s.name);
        let script = dir.join("app.wsgi");
        std::fs::write(&script, code).unwrap();
        let socket = dir.join("daemon.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let log = Arc::new(MemLog::default());
        let worker: &'static Worker = Box::leak(Box::new(Worker::prepare(&super::setup(&s), log.clone())));
        let control = Arc::new(Control::default());
        let (c, l) = (control.clone(), log.clone());
        let thread = std::thread::spawn(move || serve_with(&s, listener, l, worker, c));
        Group { dir, socket, script, control, log, thread: Some(thread) }
    }

    fn meta(&self, path: &str) -> RequestMeta<'static> {
        let b = |s: &str| Cow::Owned(s.as_bytes().to_vec());
        RequestMeta {
            method: b("POST"),
            script_name: b(""),
            path_info: b(path),
            request_uri: b(path),
            protocol: b("HTTP/1.1"),
            server_name: b("www.example.org"),
            server_port: 8443,
            server_addr: b("192.0.2.1"),
            remote_addr: b("198.51.100.7"),
            remote_port: Some(50123),
            tls: true,
            headers: vec![(b("Host"), b("www.example.org:8443")), (b("X-Test"), b("carried"))],
            app: AppSettings {
                script: Cow::Owned(self.script.to_str().unwrap().as_bytes().to_vec()),
                callable: b("application"),
                process_group: b("what-the-server-thought"),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn request(&self, path: &str, body: &mut dyn RequestBody, sink: &mut Rec) -> Result<Outcome, ProxyError> {
        let t = timeouts();
        let stream = client::connect(&self.socket, &t)?;
        client::proxy(stream, &self.meta(path), body, sink, &t)
    }

    fn get(&self, path: &str) -> (Result<Outcome, ProxyError>, Rec) {
        let mut sink = Rec::default();
        let r = self.request(path, &mut crate::core::EmptyBody, &mut sink);
        (r, sink)
    }

    /// Stop the group and return why it stopped.
    fn stop(mut self) -> Exit {
        self.control.stop();
        self.join()
    }

    fn join(&mut self) -> Exit {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.control.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn timeouts() -> ClientTimeouts {
    ClientTimeouts { connect: Duration::from_secs(2), socket: Duration::from_secs(20), queue: None }
}

/// Records what reaches the server's sink; counts (rather than keeps) a large body.
#[derive(Default)]
struct Rec {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    keep_limit: usize,
    bytes: u64,
    writes: usize,
    files: Vec<(u64, u64, Vec<u8>)>,
    aborted: bool,
    gone_after: Option<usize>,
}

impl ResponseSink for Rec {
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        self.head = Some(head.clone());
        Ok(())
    }
    fn write(&mut self, data: &[u8], _flags: WriteFlags) -> Result<(), SinkError> {
        if self.gone_after.is_some_and(|n| self.writes >= n) {
            return Err(SinkError::ClientGone);
        }
        self.writes += 1;
        self.bytes += data.len() as u64;
        if self.keep_limit == 0 || self.body.len() < self.keep_limit {
            self.body.extend_from_slice(data);
        }
        Ok(())
    }
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, _flags: WriteFlags) -> Result<bool, SinkError> {
        // A real descriptor of this process: read the range through it.
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(format!("/proc/self/fd/{fd}")).expect("a passed, open descriptor");
        let mut buf = vec![0; len as usize];
        f.read_exact_at(&mut buf, offset).unwrap();
        self.files.push((offset, len, buf));
        Ok(true)
    }
    fn abort(&mut self) {
        self.aborted = true;
    }
}

/// A body delivered in pieces of `piece` bytes, generated on the fly (no 100 MiB buffer).
struct GenBody {
    len: u64,
    pos: u64,
    piece: usize,
    reads: usize,
}

impl RequestBody for GenBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        self.reads += 1;
        let n = (self.len - self.pos).min(buf.len().min(self.piece) as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.pos + i as u64) % 251) as u8;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn status(r: &Rec) -> u16 {
    r.head.as_ref().map_or(0, |h| h.status)
}

const ECHO_ENV: &str = r#"
import json
def application(environ, start_response):
    keys = ['REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_NAME', 'SERVER_PORT', 'HTTPS', 'wsgi.url_scheme',
            'HTTP_X_TEST', 'mod_wsgi.process_group', 'wsgi.multithread', 'wsgi.multiprocess']
    body = json.dumps({k: environ.get(k) for k in keys}, sort_keys=True).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
"#;

#[test]
fn environ_is_the_clients_and_the_groups() {
    let g = Group::start(settings("envgroup"), ECHO_ENV);
    let (r, rec) = g.get("/env");
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(status(&rec), 200);
    let text = String::from_utf8(rec.body.clone()).unwrap();
    for want in [
        r#""HTTPS": "on""#,
        r#""HTTP_X_TEST": "carried""#,
        r#""REMOTE_ADDR": "198.51.100.7""#,
        r#""REMOTE_PORT": "50123""#,
        r#""SERVER_NAME": "www.example.org""#,
        r#""SERVER_PORT": "8443""#,
        r#""mod_wsgi.process_group": "envgroup""#,
        r#""wsgi.multiprocess": true"#,
        r#""wsgi.multithread": true"#,
        r#""wsgi.url_scheme": "https""#,
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert_eq!(rec.head.unwrap().content_length, Some(text.len() as u64));
    assert_eq!(g.stop(), Exit::Signal);
}

const ECHO_BODY: &str = r#"
def application(environ, start_response):
    i = environ['wsgi.input']
    total, check, reads = 0, 0, 0
    while True:
        chunk = i.read(int(environ.get('HTTP_X_CHUNK', '100')))
        if not chunk:
            break
        reads += 1
        total += len(chunk)
        check = (check + sum(chunk[:64])) % 1000003
    start_response('200 OK', [])
    return [b'%d %d %d' % (total, check, reads)]
"#;

#[test]
fn request_body_is_pulled_in_pieces() {
    let g = Group::start(settings("bodygroup"), ECHO_BODY);
    let mut body = GenBody { len: 1000, pos: 0, piece: 7, reads: 0 };
    let mut rec = Rec::default();
    assert_eq!(g.request("/", &mut body, &mut rec), Ok(Outcome::Complete));
    let text = String::from_utf8(rec.body).unwrap();
    let fields: Vec<u64> = text.split(' ').map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields[0], 1000, "{text}");
    // The server's body was read on demand, 7 bytes at a time, until its end.
    assert_eq!(body.reads, 1000 / 7 + 2);
    let expect: u64 =
        (0..1000u64).collect::<Vec<_>>().chunks(100).map(|c| c[..64].iter().map(|b| b % 251).sum::<u64>()).sum::<u64>()
            % 1000003;
    assert_eq!(fields[1], expect);
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const BIG_DOWN: &str = r#"
def application(environ, start_response):
    if environ['PATH_INFO'] == '/down':
        start_response('200 OK', [])
        chunk = b'y' * (1024 * 1024)
        return (chunk for _ in range(100))
    i = environ['wsgi.input']
    total = 0
    while True:
        c = i.read(65536)
        if not c:
            break
        total += len(c)
    start_response('200 OK', [])
    return [str(total).encode()]
"#;

#[test]
fn hundred_mib_up_and_down_with_bounded_memory() {
    let g = Group::start(settings("biggroup"), BIG_DOWN);
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    const MIB100: u64 = 100 * 1024 * 1024;
    let mut body = GenBody { len: MIB100, pos: 0, piece: 256 * 1024, reads: 0 };
    let mut rec = Rec::default();
    assert_eq!(g.request("/up", &mut body, &mut rec), Ok(Outcome::Complete));
    assert_eq!(rec.body, MIB100.to_string().as_bytes());
    let mut rec = Rec { keep_limit: 16, ..Rec::default() };
    let (r, _) = (g.request("/down", &mut crate::core::EmptyBody, &mut rec), ());
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(rec.bytes, MIB100);
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let growth = peak.load(Ordering::SeqCst).saturating_sub(before);
    eprintln!("RSS growth over 100 MiB up and 100 MiB down: {growth} KiB");
    assert!(growth < 32 * 1024, "RSS grew by {growth} KiB");
}

#[test]
fn file_wrapper_passes_the_descriptor() {
    let dir = temp_dir("fw");
    let data = dir.join("data.bin");
    std::fs::write(&data, b"0123456789").unwrap();
    let code = format!(
        "def application(environ, start_response):\n    f = open({:?}, 'rb')\n    f.seek(3)\n    start_response('200 OK', [])\n    return environ['wsgi.file_wrapper'](f)\n",
        data.to_str().unwrap()
    );
    let g = Group::start(settings("filegroup"), &code);
    let (r, rec) = g.get("/file");
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(rec.files, vec![(3, 7, b"3456789".to_vec())]);
    assert_eq!(rec.bytes, 0, "the file was not copied through the socket");
    assert_eq!(rec.head.unwrap().content_length, Some(7));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn client_gone_mid_response_closes_the_iterable() {
    let dir = temp_dir("gone");
    let marker = dir.join("closed");
    let code = format!(
        "import time\nclass Body:\n    def __iter__(self):\n        for i in range(100000):\n            yield b'x' * 1000\n    def close(self):\n        open({:?}, 'w').write('closed')\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return Body()\n",
        marker.to_str().unwrap()
    );
    let g = Group::start(settings("gonegroup"), &code);
    let mut rec = Rec { gone_after: Some(2), ..Rec::default() };
    let r = g.request("/", &mut crate::core::EmptyBody, &mut rec);
    assert_eq!(r, Ok(Outcome::ClientGone));
    let t = Instant::now();
    while !marker.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(marker.exists(), "close() did not run within 10 s");
    assert!(g.log.has("client closed the connection"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn exception_before_the_head_is_a_500() {
    let g = Group::start(
        settings("failgroup"),
        "def application(environ, start_response):\n    raise ValueError('broken app')\n",
    );
    let (r, rec) = g.get("/");
    assert_eq!(r, Ok(Outcome::Failed));
    assert!(rec.head.is_none());
    assert!(g.log.has("ValueError: broken app"));
}

#[test]
fn abort_after_the_head_aborts_the_sink() {
    let g = Group::start(
        settings("abortgroup"),
        "def application(environ, start_response):\n    start_response('200 OK', [])\n    yield b'part'\n    raise ValueError('late failure')\n",
    );
    let (r, rec) = g.get("/");
    assert_eq!(r, Ok(Outcome::Aborted));
    assert_eq!(rec.head.as_ref().map(|h| h.status), Some(200));
    assert_eq!(rec.body, b"part");
    assert!(rec.aborted, "proxy returned Aborted without aborting the sink");
    assert!(g.log.has("ValueError: late failure"));
}

const VERSIONED: &str = "import os\nVERSION = 1\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v%d' % VERSION]\n";

/// Change the script's code and push its mtime forward (a same-second rewrite keeps it).
fn bump_script(g: &Group, version: u32) {
    let code = VERSIONED.replace("VERSION = 1", &format!("VERSION = {version}"));
    std::fs::write(&g.script, code).unwrap();
    let f = std::fs::File::options().write(true).open(&g.script).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
}

fn get_reloading(g: &Group, reloading: bool) -> (Result<Outcome, ProxyError>, Rec) {
    let t = timeouts();
    let mut meta = g.meta("/");
    meta.app.script_reloading = reloading;
    let mut rec = Rec::default();
    let r = client::proxy(client::connect(&g.socket, &t).unwrap(), &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    (r, rec)
}

#[test]
fn a_changed_script_restarts_the_process_instead_of_reloading_it() {
    let mut g = Group::start(settings("reloadgroup"), VERSIONED);
    for _ in 0..3 {
        let (r, rec) = get_reloading(&g, true);
        assert_eq!(r, Ok(Outcome::Complete));
        assert_eq!(rec.body, b"v1");
    }
    bump_script(&g, 2);
    // Not run here (nothing read, no head): the client sends it again elsewhere.
    let (r, rec) = get_reloading(&g, true);
    assert_eq!(r, Err(ProxyError::Restarting));
    assert!(rec.head.is_none());
    assert_eq!(g.join(), Exit::ScriptChanged);
    assert!(g.log.has("app.wsgi changed (script reloading); restarting the process"));
}

#[test]
fn without_script_reloading_a_change_is_ignored() {
    let g = Group::start(settings("noreloadgroup"), VERSIONED);
    assert_eq!(get_reloading(&g, false).1.body, b"v1");
    bump_script(&g, 2);
    std::thread::sleep(Duration::from_millis(1100)); // past embedded mode's check interval
    let (r, rec) = get_reloading(&g, false);
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(rec.body, b"v1", "the module was reloaded in place");
    assert_eq!(g.stop(), Exit::Signal);
}

const SPIN: &str = r#"
import time
def application(environ, start_response):
    if environ['PATH_INFO'] == '/spin':
        while True:
            pass
    if environ['PATH_INFO'] == '/sleep':
        time.sleep(30)
    start_response('200 OK', [])
    return [b'fine']
"#;

#[test]
fn request_timeout_answers_504_and_the_group_recovers() {
    let mut s = settings("timeoutgroup");
    s.request_timeout = Some(Duration::from_millis(300));
    let g = Group::start(s, SPIN);
    let t = Instant::now();
    let (r, rec) = g.get("/spin");
    assert_eq!(r, Err(ProxyError::Timeout));
    assert!(rec.head.is_none());
    assert!(t.elapsed() < Duration::from_secs(3), "504 took {:?}", t.elapsed());
    let (r, rec) = g.get("/ok");
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(rec.body, b"fine");
    assert!(g.log.has(&format!("daemon group timeoutgroup (pid {}): request-timeout: POST /spin", std::process::id())));
    // The interrupted thread stopped: the group did not ask to be replaced.
    std::thread::sleep(super::INTERRUPT_GRACE + Duration::from_millis(200));
    assert!(!g.log.has("did not stop"));
    assert_eq!(g.stop(), Exit::Signal);
}

#[test]
fn uninterruptible_request_recycles_the_process() {
    let mut s = settings("stuckgroup");
    s.request_timeout = Some(Duration::from_millis(300));
    s.graceful_timeout = Duration::from_millis(500);
    let mut g = Group::start(s, SPIN);
    let (r, _) = g.get("/sleep");
    assert_eq!(r, Err(ProxyError::Timeout));
    assert_eq!(g.join(), Exit::RequestTimeout);
    assert!(g.log.has("did not stop within"));
}

#[test]
fn maximum_requests_recycles_after_n() {
    let mut s = settings("maxgroup");
    s.maximum_requests = Some(3);
    let mut g = Group::start(s, SPIN);
    for _ in 0..3 {
        let (r, rec) = g.get("/ok");
        assert_eq!(r, Ok(Outcome::Complete));
        assert_eq!(rec.body, b"fine");
    }
    assert_eq!(g.join(), Exit::MaximumRequests);
    assert!(g.log.has("maximum-requests (3) reached"));
}

#[test]
fn inactivity_timeout_counts_from_the_last_request() {
    let mut s = settings("idlegroup");
    s.inactivity_timeout = Some(Duration::from_millis(300));
    let mut g = Group::start(s, SPIN);
    // No request yet: the countdown has not started (mod_wsgi's rule), so the process
    // still serves after more than the timeout.
    std::thread::sleep(Duration::from_millis(700));
    let (r, rec) = g.get("/ok");
    assert_eq!(r, Ok(Outcome::Complete));
    assert_eq!(rec.body, b"fine");
    let t = Instant::now();
    assert_eq!(g.join(), Exit::InactivityTimeout);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

/// Read the daemon's frames until it closes; returns (kind, payload) pairs.
fn frames_until_close(mut s: UnixStream) -> Vec<(Kind, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let mut out = Vec::new();
    let mut rest = &all[..];
    while let Ok(Some((k, p, r))) = protocol::split_frame(rest) {
        out.push((k, p.to_vec()));
        rest = r;
    }
    out
}

#[test]
fn malformed_frames_are_refused_with_a_clear_error() {
    let g = Group::start(settings("badgroup"), SPIN);
    // Not our protocol at all.
    let mut s = UnixStream::connect(&g.socket).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let f = frames_until_close(s);
    assert_eq!(f[0].0, Kind::Hello);
    assert_eq!(f[1].0, Kind::Fail);
    let (status, msg) = protocol::decode_fail(&f[1].1).unwrap();
    assert_eq!(status, 500);
    assert!(msg.contains("unknown frame kind 0x47"), "{msg}");
    // Another protocol version.
    let mut s = UnixStream::connect(&g.socket).unwrap();
    let mut hello = protocol::Hello::ours(0).encode();
    hello[6] = protocol::VERSION + 1;
    let mut buf = Vec::new();
    protocol::frame(&mut buf, Kind::Hello, &hello);
    s.write_all(&buf).unwrap();
    let f = frames_until_close(s);
    let (status, msg) = protocol::decode_fail(&f[1].1).unwrap();
    assert_eq!(status, 500);
    assert!(msg.contains("same build"), "{msg}");
    // Good hello, broken request metadata.
    let mut s = UnixStream::connect(&g.socket).unwrap();
    let mut buf = Vec::new();
    protocol::frame(&mut buf, Kind::Hello, &protocol::Hello::ours(0).encode());
    protocol::frame(&mut buf, Kind::Request, b"\x01\x00garbage");
    s.write_all(&buf).unwrap();
    let f = frames_until_close(s);
    let (_, msg) = protocol::decode_fail(&f[1].1).unwrap();
    assert!(msg.contains("malformed request metadata"), "{msg}");
    assert!(g.log.has("malformed request metadata"));
    // The group still serves.
    assert_eq!(g.get("/ok").0, Ok(Outcome::Complete));
}

/// The client side refuses a daemon that breaks the protocol.
#[test]
fn client_refuses_a_broken_daemon() {
    let dir = temp_dir("fake");
    let path = dir.join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fake = std::thread::spawn(move || {
        for reply in [&b"not a frame"[..], b"DATA"] {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            if reply == b"DATA" {
                protocol::frame(&mut buf, Kind::Hello, &protocol::Hello::ours(0).encode());
                protocol::frame(&mut buf, Kind::Data, b"\x00body before head");
            } else {
                buf.extend_from_slice(reply);
            }
            s.write_all(&buf).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let t = timeouts();
    let meta = RequestMeta::default();
    let mut rec = Rec::default();
    let r = client::proxy(client::connect(&path, &t).unwrap(), &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    assert!(matches!(&r, Err(ProxyError::Protocol(m)) if m.contains("unknown frame kind")), "{r:?}");
    let r = client::proxy(client::connect(&path, &t).unwrap(), &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    assert_eq!(r, Err(ProxyError::Protocol("DATA before HEAD".into())));
    fake.join().unwrap();
    // Nobody listening: a connect error within the connect timeout.
    let t = ClientTimeouts { connect: Duration::from_millis(100), ..timeouts() };
    let e = client::connect(&dir.join("nothing.sock"), &t).unwrap_err();
    assert!(matches!(e, ProxyError::Connect(_)));
    assert_eq!(e.status(), 503);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A server thread keeps its connection to a group between requests; when the daemon
/// process behind it stops (recycling, restart: its idle connections are closed), the next
/// request finds the kept connection closed before anything was read and goes out again
/// on a new connection, which the group's next process accepts: nothing fails.
#[test]
fn a_kept_connection_closed_by_a_stopping_daemon_is_retried_on_a_new_one() {
    crate::core::tests::python();
    let s = settings("kept");
    let dir = temp_dir("kept");
    let script = dir.join("app.wsgi");
    std::fs::write(&script, "import os\ndef application(e, sr):\n    sr('200 OK', [])\n    return [b'ok']\n").unwrap();
    let socket = dir.join("daemon.sock");
    // The listener outlives each serving "process", as the parent keeps it in Apache.
    let listener = UnixListener::bind(&socket).unwrap();
    let log = Arc::new(MemLog::default());
    let worker: &'static Worker = Box::leak(Box::new(Worker::prepare(&super::setup(&s), log.clone())));
    let serve = |control: Arc<Control>| {
        let (s, l, log) = (s.clone(), listener.try_clone().unwrap(), log.clone());
        std::thread::spawn(move || serve_with(&s, l, log, worker, control))
    };
    let meta = RequestMeta {
        method: Cow::Borrowed(b"GET"),
        protocol: Cow::Borrowed(b"HTTP/1.1"),
        app: AppSettings {
            script: Cow::Owned(script.to_str().unwrap().as_bytes().to_vec()),
            callable: Cow::Borrowed(b"application"),
            ..Default::default()
        },
        ..Default::default()
    };
    let get = || {
        let mut rec = Rec::default();
        let r = client::forward(&socket, &meta, &mut crate::core::EmptyBody, &mut rec, &timeouts());
        (r, rec.body)
    };
    let first = Arc::new(Control::default());
    let a = serve(first.clone());
    for _ in 0..3 {
        assert_eq!(get(), (Ok(Outcome::Complete), b"ok".to_vec()));
    }
    // The first "process" stops: its idle connection (kept by this thread) is closed.
    first.stop();
    assert_eq!(a.join().unwrap(), Exit::Signal);
    let second = Arc::new(Control::default());
    let b = serve(second.clone());
    for _ in 0..3 {
        assert_eq!(get(), (Ok(Outcome::Complete), b"ok".to_vec()));
    }
    second.stop();
    b.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A daemon that read the request on a kept connection and then went away may have run
/// it: that request is a `DaemonGone` (502), never sent again; one that closed the kept
/// connection without reading it is retried.
#[test]
fn a_request_read_by_a_daemon_that_died_is_not_sent_again() {
    let dir = temp_dir("died");
    let path = dir.join("fake.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let n = accepted.clone();
    // A fake daemon: answers the first request of its first connection, reads the second
    // one and closes; then answers one request on a second connection.
    let fake = std::thread::spawn(move || {
        let answer = |s: &mut UnixStream| {
            let mut buf = vec![0; 64 * 1024];
            let _ = s.read(&mut buf).unwrap(); // HELLO + REQUEST, one write
            let mut out = Vec::new();
            protocol::frame(&mut out, Kind::Hello, &protocol::Hello::ours(0).encode());
            let head =
                ResponseHead { status: 200, status_line: "200 OK".into(), headers: vec![], content_length: None };
            let mut h = Vec::new();
            protocol::encode_head(&head, &mut h);
            protocol::frame(&mut out, Kind::Head, &h);
            protocol::frame(&mut out, Kind::Data, b"\x02ok");
            protocol::frame(&mut out, Kind::End, b"");
            s.write_all(&out).unwrap();
        };
        let (mut s, _) = listener.accept().unwrap();
        n.fetch_add(1, Ordering::SeqCst);
        answer(&mut s);
        let mut buf = vec![0; 64 * 1024];
        assert!(s.read(&mut buf).unwrap() > 0, "the second request came on the kept connection");
        drop(s); // read, then "died"
        let (mut s, _) = listener.accept().unwrap();
        n.fetch_add(1, Ordering::SeqCst);
        answer(&mut s);
        std::thread::sleep(Duration::from_millis(200));
    });
    let meta = RequestMeta::default();
    let t = timeouts();
    let mut rec = Rec::default();
    let r = client::forward(&path, &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    assert_eq!((r, rec.body), (Ok(Outcome::Complete), b"ok".to_vec()));
    let mut rec = Rec::default();
    let r = client::forward(&path, &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    assert!(matches!(&r, Err(ProxyError::DaemonGone(_))), "{r:?}");
    assert_eq!(r.unwrap_err().status(), 502);
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not sent again");
    // The failed connection was not kept: the next request connects anew.
    let mut rec = Rec::default();
    let r = client::forward(&path, &meta, &mut crate::core::EmptyBody, &mut rec, &t);
    assert_eq!((r, rec.body), (Ok(Outcome::Complete), b"ok".to_vec()));
    fake.join().unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

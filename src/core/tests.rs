//! Unit tests of the core with a real embedded interpreter and a scripted body and sink.

use std::ffi::CString;
use std::sync::{Arc, Mutex, Once};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::environ::EnvironTemplate;
use super::head::ResponseHead;
use super::log::StderrLog;
use super::response::{Exchange, Outcome, RequestParts};
use super::runtime::{self, RuntimeConfig};
use super::{Level, LogSink, RequestBody, ResponseSink, SinkError, WriteFlags};

static START: Once = Once::new();

/// Start Python once per test process (shared with the daemon tests).
pub(crate) fn python() {
    START.call_once(|| {
        runtime::start(&RuntimeConfig::default(), Arc::new(StderrLog)).expect("python starts");
    });
    crate::ffi::python::keep_thread_state();
}

/// A body delivered in fixed-size pieces, optionally failing at the end.
struct ScriptedBody {
    data: Vec<u8>,
    pos: usize,
    piece: usize,
    fail_at_end: bool,
}

impl RequestBody for ScriptedBody {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        if self.pos == self.data.len() {
            return if self.fail_at_end { Err("client went away".into()) } else { Ok(0) };
        }
        let n = buf.len().min(self.piece).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[derive(Default)]
struct Record {
    head: Option<ResponseHead>,
    body: Vec<u8>,
    writes: Vec<WriteFlags>,
    files: Vec<(u64, u64)>,
    /// (address, length) of each write that kept a `bytes` object.
    shared: Vec<(usize, usize)>,
    aborted: bool,
}

/// Records what the core sends; fails with ClientGone after `gone_after` writes.
struct RecordingSink {
    rec: Arc<Mutex<Record>>,
    gone_after: Option<usize>,
    sendfile: bool,
    share: bool,
}

impl ResponseSink for RecordingSink {
    fn shares(&self) -> bool {
        self.share
    }
    fn write_shared(&mut self, data: super::SharedBytes, flags: WriteFlags) -> Result<(), SinkError> {
        self.rec.lock().unwrap().shared.push((data.as_slice().as_ptr() as usize, data.len()));
        self.write(data.as_slice(), flags)
    }
    fn send_head(&mut self, head: &ResponseHead) -> Result<(), SinkError> {
        self.rec.lock().unwrap().head = Some(head.clone());
        Ok(())
    }
    fn write(&mut self, data: &[u8], flags: WriteFlags) -> Result<(), SinkError> {
        let mut r = self.rec.lock().unwrap();
        if self.gone_after.is_some_and(|n| r.writes.len() >= n) {
            return Err(SinkError::ClientGone);
        }
        r.body.extend_from_slice(data);
        r.writes.push(flags);
        Ok(())
    }
    fn send_file(&mut self, fd: i32, offset: u64, len: u64, flags: WriteFlags) -> Result<bool, SinkError> {
        if !self.sendfile {
            return Ok(false);
        }
        let mut f = std::fs::File::open(format!("/proc/self/fd/{fd}")).unwrap();
        use std::io::{Read, Seek, SeekFrom};
        f.seek(SeekFrom::Start(offset)).unwrap();
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).unwrap();
        let mut r = self.rec.lock().unwrap();
        r.body.extend_from_slice(&buf);
        r.files.push((offset, len));
        r.writes.push(flags);
        Ok(true)
    }
    fn abort(&mut self) {
        self.rec.lock().unwrap().aborted = true;
    }
}

/// Collects log lines.
#[derive(Default)]
struct MemLog(Mutex<Vec<String>>);

impl LogSink for MemLog {
    fn log(&self, _level: Level, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

struct Run {
    outcome: Outcome,
    rec: Record,
    log: Vec<String>,
    globals: Py<PyDict>,
}

struct Case<'a> {
    code: &'a str,
    body: &'a [u8],
    piece: usize,
    gone_after: Option<usize>,
    sendfile: bool,
    share: bool,
    fail_body: bool,
}

impl<'a> Case<'a> {
    fn new(code: &'a str) -> Self {
        Case { code, body: b"", piece: 3, gone_after: None, sendfile: true, share: false, fail_body: false }
    }
    fn run(self) -> Run {
        python();
        let rec = Arc::new(Mutex::new(Record::default()));
        let log = Arc::new(MemLog::default());
        let (outcome, globals) = Python::attach(|py| {
            let globals = PyDict::new(py);
            let code = CString::new(self.code).unwrap();
            py.run(&code, Some(&globals), None).expect("test app compiles");
            let app = globals.get_item("application").unwrap().expect("defines application");
            let template = EnvironTemplate::new(py, true, true, "test").unwrap();
            let env = template.instantiate(py).unwrap();
            env.set(pyo3::intern!(py, "REQUEST_METHOD"), b"POST").unwrap();
            env.set(pyo3::intern!(py, "PATH_INFO"), b"/caf\xe9").unwrap();
            let parts = RequestParts {
                body: Box::new(ScriptedBody {
                    data: self.body.to_vec(),
                    pos: 0,
                    piece: self.piece,
                    fail_at_end: self.fail_body,
                }),
                sink: Box::new(RecordingSink {
                    rec: rec.clone(),
                    gone_after: self.gone_after,
                    sendfile: self.sendfile,
                    share: self.share,
                }),
                log: log.clone(),
                context: Arc::from("test.wsgi"),
            };
            let outcome = Exchange::run(py, &app, env, parts).unwrap();
            (outcome, globals.unbind())
        });
        let rec = std::mem::take(&mut *rec.lock().unwrap());
        let log = log.0.lock().unwrap().clone();
        Run { outcome, rec, log, globals }
    }
}

impl Run {
    fn global<T: for<'py> pyo3::conversion::FromPyObjectOwned<'py>>(&self, name: &str) -> T {
        Python::attach(|py| match self.globals.bind(py).get_item(name).unwrap().unwrap().extract::<T>() {
            Ok(v) => v,
            Err(_) => panic!("global {name} has an unexpected type"),
        })
    }
    fn logged(&self, needle: &str) -> bool {
        self.log.iter().any(|l| l.contains(needle))
    }
}

#[test]
fn list_body_gets_content_length_and_one_write() {
    let r = Case::new(
        "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'Hello, ', b'world']\n",
    )
    .run();
    assert_eq!(r.outcome, Outcome::Complete);
    let head = r.rec.head.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length, Some(12));
    assert!(head.headers.contains(&("Content-Length".into(), "12".into())));
    assert_eq!(r.rec.body, b"Hello, world");
    assert_eq!(r.rec.writes.len(), 1);
    assert!(r.rec.writes[0].last);
}

#[test]
fn environ_is_latin1_and_has_wsgi_keys() {
    let r = Case::new(
        "def application(environ, start_response):\n    global seen\n    seen = [environ['PATH_INFO'], type(environ['wsgi.input']).__name__, str(environ['wsgi.version']), str(environ['wsgi.input_terminated'])]\n    start_response('200 OK', [])\n    return []\n",
    )
    .run();
    let seen: Vec<String> = r.global("seen");
    assert_eq!(seen, vec!["/caf\u{e9}".to_string(), "Input".into(), "(1, 0)".into(), "True".into()]);
}

#[test]
fn generator_streams_with_flush_and_is_closed() {
    let r = Case::new(
        "closed = []\nclass Body:\n    def __iter__(self):\n        yield b'a'\n        yield b''\n        yield b'b'\n    def close(self):\n        closed.append(True)\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return Body()\n",
    )
    .run();
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.rec.body, b"ab");
    assert!(r.rec.writes[0].flush);
    assert!(r.rec.writes.last().unwrap().last);
    assert_eq!(r.global::<Vec<bool>>("closed"), vec![true]);
}

#[test]
fn exception_before_headers_is_a_500_with_traceback() {
    let r = Case::new("def application(environ, start_response):\n    raise ValueError('broken app')\n").run();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.rec.head.is_none());
    assert!(r.logged("ValueError: broken app"), "{:?}", r.log);
    assert!(r.logged("Traceback"));
}

#[test]
fn exception_mid_body_aborts_and_closes() {
    let r = Case::new(
        "closed = []\nclass Body:\n    def __iter__(self):\n        yield b'first'\n        raise RuntimeError('mid-body')\n    def close(self):\n        closed.append(1)\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return Body()\n",
    )
    .run();
    assert_eq!(r.outcome, Outcome::Aborted);
    assert!(r.rec.aborted);
    assert_eq!(r.rec.body, b"first");
    assert!(r.logged("RuntimeError: mid-body"));
    assert_eq!(r.global::<Vec<i32>>("closed"), vec![1]);
}

#[test]
fn str_and_none_bodies_are_errors() {
    let r =
        Case::new("def application(environ, start_response):\n    start_response('200 OK', [])\n    return ['text']\n")
            .run();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.logged("is str, not bytes"), "{:?}", r.log);
    let r = Case::new("def application(environ, start_response):\n    start_response('200 OK', [])\n    return None\n")
        .run();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.logged("NoneType"), "{:?}", r.log);
    let r = Case::new("def application(environ, start_response):\n    start_response('200 OK', [])\n    def g():\n        yield b'x'\n        yield 'y'\n    return g()\n").run();
    assert_eq!(r.outcome, Outcome::Aborted);
}

#[test]
fn invalid_status_and_headers_are_refused() {
    for (status, headers) in [
        ("'OK'", "[]"),
        ("'200 OK'", "[('X-Bad', 'a\\r\\nSet-Cookie: evil=1')]"),
        ("'200 OK'", "[('X-Euro', '\\u20ac')]"),
        ("'200 OK'", "[('Connection', 'close')]"),
        ("'200 OK'", "[('X', b'bytes')]"),
        ("b'200 OK'", "[]"),
    ] {
        let code = format!(
            "def application(environ, start_response):\n    start_response({status}, {headers})\n    return [b'x']\n"
        );
        let r = Case::new(&code).run();
        assert_eq!(r.outcome, Outcome::Failed, "{status} {headers}");
        assert!(r.rec.head.is_none());
    }
}

/// The address of the data of global `name`, a bytes object.
fn bytes_address(r: &Run, name: &str) -> usize {
    use pyo3::types::{PyBytes, PyBytesMethods};
    Python::attach(|py| {
        let item = r.globals.bind(py).get_item(name).unwrap().unwrap();
        item.cast::<PyBytes>().unwrap().as_bytes().as_ptr() as usize
    })
}

#[test]
fn a_sharing_sink_gets_big_bytes_items_themselves_and_copies_of_small_ones() {
    let app = "BIG = b'a' * 16384\nSMALL = b'b' * 100\nTAIL = b'c' * 20000\ndef application(environ, start_response):\n    start_response('200 OK', CL)\n    def g():\n        yield BIG\n        yield SMALL\n        yield TAIL\n    return g()\n";
    let code = format!("CL = []\n{app}");
    let mut case = Case::new(&code);
    case.share = true;
    let r = case.run();
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.rec.body.len(), 36484);
    // The sink saw the objects' own memory for the two big items, not a copy.
    assert_eq!(r.rec.shared, vec![(bytes_address(&r, "BIG"), 16384), (bytes_address(&r, "TAIL"), 20000)]);
    // Cut by Content-Length: the shared part is the start of the item.
    let cut = format!("CL = [('Content-Length', '20000')]\n{app}");
    let mut case = Case::new(&cut);
    case.share = true;
    let r = case.run();
    assert_eq!(r.rec.body.len(), 20000);
    assert_eq!(r.rec.shared, vec![(bytes_address(&r, "BIG"), 16384), (bytes_address(&r, "TAIL"), 3516)]);
    assert!(r.rec.body.ends_with(b"c"));
    // A list of one big item, and a sink that does not share.
    let mut case = Case::new(
        "BIG = b'x' * 100000\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return [BIG]\n",
    );
    case.share = true;
    let r = case.run();
    assert_eq!(r.rec.shared, vec![(bytes_address(&r, "BIG"), 100000)]);
    let r = Case::new(&code).run();
    assert!(r.rec.shared.is_empty());
    assert_eq!(r.rec.body.len(), 36484);
}

#[test]
fn content_length_is_never_exceeded_and_short_bodies_abort() {
    let r = Case::new("def application(environ, start_response):\n    start_response('200 OK', [('Content-Length', '5')])\n    def g():\n        yield b'123'\n        yield b'4567890'\n        yield b'more'\n    return g()\n").run();
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.rec.body, b"12345");
    assert!(r.logged("more than its Content-Length"));
    let r = Case::new("def application(environ, start_response):\n    start_response('200 OK', [('Content-Length', '20')])\n    return [b'short']\n").run();
    assert_eq!(r.outcome, Outcome::Aborted);
    assert!(r.rec.aborted);
    assert!(r.logged("response truncated"));
}

#[test]
fn start_response_rules() {
    let r = Case::new("def application(environ, start_response):\n    global err\n    start_response('200 OK', [])\n    try:\n        start_response('201 Created', [])\n    except AssertionError as e:\n        err = str(e)\n    return [b'x']\n").run();
    assert!(r.global::<String>("err").contains("second time"));
    let r = Case::new("import sys\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    try:\n        raise KeyError('k')\n    except KeyError:\n        start_response('500 Oops', [('Content-Type', 'text/plain')], sys.exc_info())\n    return [b'error page']\n").run();
    assert_eq!(r.rec.head.unwrap().status_line, "500 Oops");
    let r = Case::new("import sys\ndef application(environ, start_response):\n    write = start_response('200 OK', [])\n    write(b'sent')\n    try:\n        raise KeyError('after headers')\n    except KeyError:\n        start_response('500 Oops', [], sys.exc_info())\n    return [b'never']\n").run();
    assert_eq!(r.outcome, Outcome::Aborted);
    assert!(r.logged("KeyError: 'after headers'"));
}

#[test]
fn write_callable_then_iterable() {
    let r = Case::new("def application(environ, start_response):\n    write = start_response('200 OK', [])\n    write(b'one ')\n    return [b'two']\n").run();
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(r.rec.body, b"one two");
    let r = Case::new("def application(environ, start_response):\n    write = start_response('200 OK', [])\n    write('text')\n    return []\n").run();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.logged("TypeError"));
}

#[test]
fn client_gone_stops_iteration_and_closes() {
    let mut c = Case::new(
        "closed = []\nproduced = []\nclass Body:\n    def __iter__(self):\n        for i in range(100):\n            produced.append(i)\n            yield b'x' * 10\n    def close(self):\n        closed.append(1)\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return Body()\n",
    );
    c.gone_after = Some(2);
    let r = c.run();
    assert_eq!(r.outcome, Outcome::ClientGone);
    assert_eq!(r.global::<Vec<i32>>("closed"), vec![1]);
    assert!(r.global::<Vec<i32>>("produced").len() <= 3);
    let mut c = Case::new(
        "def application(environ, start_response):\n    global err\n    write = start_response('200 OK', [])\n    write(b'a')\n    try:\n        write(b'b')\n    except OSError as e:\n        err = str(e)\n    return []\n",
    );
    c.gone_after = Some(1);
    let r = c.run();
    assert!(r.global::<String>("err").contains("client connection closed"));
}

#[test]
fn input_methods() {
    let mut c = Case::new(
        "def application(environ, start_response):\n    global got\n    i = environ['wsgi.input']\n    got = [i.readline(), i.readline(3), i.read(4)]\n    global lines\n    lines = i.readlines()\n    got += [i.read(), i.read(10), i.readline()]\n    start_response('200 OK', [])\n    return []\n",
    );
    c.body = b"line one\nabcdefgh\nx\ny\n";
    let r = c.run();
    let got: Vec<Vec<u8>> = r.global("got");
    let expect: Vec<Vec<u8>> =
        vec![b"line one\n".to_vec(), b"abc".to_vec(), b"defg".to_vec(), b"".to_vec(), b"".to_vec(), b"".to_vec()];
    assert_eq!(got, expect);
    let lines: Vec<Vec<u8>> = r.global("lines");
    assert_eq!(lines, vec![b"h\n".to_vec(), b"x\n".to_vec(), b"y\n".to_vec()]);
    let mut c = Case::new(
        "def application(environ, start_response):\n    global got\n    got = list(environ['wsgi.input'])\n    start_response('200 OK', [])\n    return []\n",
    );
    c.body = b"a\nb\nc";
    let got: Vec<Vec<u8>> = c.run().global("got");
    assert_eq!(got, vec![b"a\n".to_vec(), b"b\n".to_vec(), b"c".to_vec()]);
    let mut c = Case::new(
        "def application(environ, start_response):\n    global got\n    got = str(environ['wsgi.input'].read(2))\n    try:\n        environ['wsgi.input'].read()\n    except OSError as e:\n        got = str(e)\n    start_response('200 OK', [])\n    return []\n",
    );
    c.body = b"abcdef";
    c.fail_body = true;
    assert!(c.run().global::<String>("got").contains("client went away"));
}

#[test]
fn file_wrapper_uses_sendfile_from_current_offset() {
    let dir = std::env::temp_dir().join(format!("oxwsgi-fw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data.bin");
    std::fs::write(&path, b"0123456789").unwrap();
    let code = format!(
        "def application(environ, start_response):\n    f = open({:?}, 'rb')\n    f.seek(3)\n    start_response('200 OK', [])\n    return environ['wsgi.file_wrapper'](f, 4)\n",
        path.to_str().unwrap()
    );
    let r = Case::new(&code).run();
    assert_eq!(r.rec.body, b"3456789");
    assert_eq!(r.rec.files, vec![(3, 7)]);
    assert_eq!(r.rec.head.unwrap().content_length, Some(7));
    let mut c = Case::new(&code);
    c.sendfile = false;
    let r = c.run();
    assert_eq!(r.rec.body, b"3456789");
    assert!(r.rec.files.is_empty());
    let r = Case::new("import io\ndef application(environ, start_response):\n    start_response('200 OK', [])\n    return environ['wsgi.file_wrapper'](io.BytesIO(b'in memory'), 2)\n").run();
    assert_eq!(r.rec.body, b"in memory");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pump_respects_budget() {
    python();
    let rec = Arc::new(Mutex::new(Record::default()));
    Python::attach(|py| {
        let globals = PyDict::new(py);
        py.run(c"def application(environ, start_response):\n    start_response('200 OK', [])\n    return (b'x' * 1000 for _ in range(10))\n", Some(&globals), None).unwrap();
        let app = globals.get_item("application").unwrap().unwrap();
        let template = EnvironTemplate::new(py, true, true, "test").unwrap();
        let parts = RequestParts {
            body: Box::new(super::EmptyBody),
            sink: Box::new(RecordingSink { rec: rec.clone(), gone_after: None, sendfile: true, share: false }),
            log: Arc::new(MemLog::default()),
            context: Arc::from("t"),
        };
        let mut ex = Exchange::begin(py, &app, template.instantiate(py).unwrap(), parts).unwrap();
        assert_eq!(ex.pump(py, Some(2500)), None);
        assert_eq!(rec.lock().unwrap().body.len(), 3000);
        // 3 items per call: 6000, 9000, then the last item and the end.
        let mut calls = 1;
        loop {
            calls += 1;
            if ex.pump(py, Some(2500)).is_some() {
                break;
            }
        }
        assert_eq!(ex.outcome(), Some(Outcome::Complete));
        assert_eq!(calls, 4);
    });
    assert_eq!(rec.lock().unwrap().body.len(), 10_000);
}

/// The environ rules that used to be written once per server: one place, checked here.
#[test]
fn environ_from_request_meta() {
    use super::request::{AppSettings, RequestMeta};
    use std::borrow::Cow;
    python();
    let b = |s: &'static [u8]| Cow::Borrowed(s);
    let mut m = RequestMeta {
        method: b(b"GET"),
        script_name: b(b"/app"),
        path_info: b(b"/caf\xe9"),
        server_name: b(b"::1"),
        server_port: 8080,
        remote_port: Some(4242),
        headers: vec![
            (b(b"Host"), b(b"[::1]:8080")),
            (b(b"X-Pad"), b(b" \tpadded value\t ")),
            (b(b"Authorization"), b(b"Basic eA==")),
            (b(b"Proxy-Authorization"), b(b"Basic eQ==")),
            (b(b"X_Sneaky"), b(b"dropped")),
            (b(b"Cookie"), b(b"a=1")),
            (b(b"Cookie"), b(b"b=2")),
        ],
        server_vars: vec![(b(b"HTTPS"), b(b"1")), (b(b"SERVER_NAME"), b(b"overridden"))],
        params: vec![(b(b"EXTRA"), b(b"x"))],
        app: AppSettings { script: b(b"/srv/app.wsgi"), application_group: b(b"%{GLOBAL}"), ..Default::default() },
        ..Default::default()
    };
    Python::attach(|py| {
        let template = EnvironTemplate::new(py, true, true, "test").unwrap();
        let env = template.build(py, &m).unwrap().finish();
        let get = |k: &str| env.get_item(k).unwrap().map(|v| v.extract::<String>().unwrap());
        assert_eq!(get("SERVER_NAME").as_deref(), Some("[::1]"));
        assert_eq!(get("SERVER_PORT").as_deref(), Some("8080"));
        assert_eq!(get("REMOTE_PORT").as_deref(), Some("4242"));
        assert_eq!(get("PATH_INFO").as_deref(), Some("/caf\u{e9}"));
        assert_eq!(get("HTTP_X_PAD").as_deref(), Some("padded value"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("HTTP_PROXY_AUTHORIZATION"), None);
        assert_eq!(get("HTTP_X_SNEAKY"), None);
        assert_eq!(get("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
        assert_eq!(get("wsgi.url_scheme").as_deref(), Some("https"), "SetEnv HTTPS 1 means TLS in front");
        assert_eq!(get("HTTPS").as_deref(), Some("on"));
        assert_eq!(get("EXTRA").as_deref(), Some("x"));
        assert_eq!(get("SCRIPT_FILENAME").as_deref(), Some("/srv/app.wsgi"));
        assert_eq!(get("mod_wsgi.application_group").as_deref(), Some(""));
        assert_eq!(get("CONTENT_LENGTH"), None);
    });
    m.server_vars.clear();
    m.pass_authorization = true;
    m.content_length = Some(7);
    m.params.push((b(b"HTTPS"), b(b"off")));
    Python::attach(|py| {
        let template = EnvironTemplate::new(py, true, true, "test").unwrap();
        let env = template.build(py, &m).unwrap().finish();
        let get = |k: &str| env.get_item(k).unwrap().map(|v| v.extract::<String>().unwrap());
        assert_eq!(get("wsgi.url_scheme").as_deref(), Some("http"));
        assert_eq!(get("HTTP_AUTHORIZATION").as_deref(), Some("Basic eA=="));
        assert_eq!(get("CONTENT_LENGTH").as_deref(), Some("7"));
    });
}

/// Python's exit work runs when a worker exits (atexit, logging.shutdown via atexit,
/// weakref.finalize), and a non-daemon thread that never ends does not hold it past the limit.
#[test]
fn exit_handlers_run_and_are_bounded() {
    use super::exit::run_exit_handlers;
    use std::time::{Duration, Instant};
    python();
    let code = c"
import atexit, threading, weakref, logging, logging.handlers
ran = []
atexit.register(lambda: ran.append('atexit'))
class Obj: pass
keep = Obj()
weakref.finalize(keep, lambda: ran.append('finalize'))
class Collect(logging.Handler):
    def emit(self, record):
        ran.append('log:' + record.getMessage())
target = Collect()
buffered = logging.handlers.MemoryHandler(capacity=100, target=target, flushLevel=logging.CRITICAL)
lg = logging.getLogger('oxwsgi-exit-test')
lg.addHandler(buffered)
lg.warning('buffered until shutdown')
stop = threading.Event()
hang = threading.Thread(target=stop.wait, name='never-ends', daemon=False)
hang.start()
";
    let globals = Python::attach(|py| {
        let g = PyDict::new(py);
        py.run(code, Some(&g), None).unwrap();
        g.unbind()
    });
    let log = Arc::new(MemLog::default());
    let started = Instant::now();
    run_exit_handlers(Duration::from_millis(1500), log.clone(), "");
    let took = started.elapsed();
    Python::attach(|py| {
        let g = globals.bind(py);
        let ran: Vec<String> = g.get_item("ran").unwrap().unwrap().extract().unwrap();
        assert!(ran.contains(&"atexit".to_string()), "{ran:?}");
        assert!(ran.contains(&"finalize".to_string()), "{ran:?}");
        assert!(ran.contains(&"log:buffered until shutdown".to_string()), "logging.shutdown flushed: {ran:?}");
        g.get_item("stop").unwrap().unwrap().call_method0("set").unwrap();
    });
    assert!(took < Duration::from_millis(1400), "the hanging thread held the exit for {took:?}");
    let text = log.0.lock().unwrap().join("\n");
    // (Other tests of this process may run non-daemon threads too: the list can be longer.
    // daemon=False above: a thread started from a test thread, a "dummy" thread to Python,
    // would otherwise inherit daemon=True.)
    let alive = text.lines().find(|l| l.contains("non-daemon threads were still running:"));
    assert!(alive.is_some_and(|l| l.contains("never-ends")), "{text}");

    // A callback that hangs is cut at the limit, and the log says where. (One test: the
    // atexit registry is process-wide.)
    Python::attach(|py| {
        py.run(c"import atexit, time\natexit.register(time.sleep, 30)\n", None, None).unwrap();
    });
    let log = Arc::new(MemLog::default());
    let started = Instant::now();
    run_exit_handlers(Duration::from_millis(500), log.clone(), "");
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = log.0.lock().unwrap().join("\n");
    assert!(text.contains("exit handlers cut after 0.5 s while running"), "{text}");
}

/// Recurring values are shared str objects per thread; different values stay different.
#[test]
fn recurring_environ_values_are_shared() {
    use super::request::RequestMeta;
    use std::borrow::Cow;
    python();
    Python::attach(|py| {
        let template = EnvironTemplate::new(py, true, true, "test").unwrap();
        let meta = |method: &'static [u8]| RequestMeta { method: Cow::Borrowed(method), ..Default::default() };
        let a = template.build(py, &meta(b"GET")).unwrap().finish();
        let b = template.build(py, &meta(b"GET")).unwrap().finish();
        let c = template.build(py, &meta(b"P\xd6ST")).unwrap().finish();
        let (a, b, c) = [a, b, c].map(|d| d.get_item("REQUEST_METHOD").unwrap().unwrap()).into();
        assert!(a.is(&b), "the same value is one object");
        assert!(!a.is(&c));
        assert_eq!(c.extract::<String>().unwrap(), "P\u{d6}ST");
        assert_eq!(a.extract::<String>().unwrap(), "GET");
    });
}

/// What a thread remembers between requests (values by place, the derived template of
/// stable keys) never changes an environ: a run of requests whose values vary, repeat,
/// appear and disappear gives, each time, the dict a fresh build gives.
#[test]
fn remembered_environ_equals_a_fresh_build() {
    use super::request::{AppSettings, RequestMeta};
    use std::borrow::Cow;
    python();
    let o = |s: String| Cow::Owned(s.into_bytes());
    let meta = |i: usize, dup: bool| {
        let mut server_vars = vec![
            (Cow::Borrowed(&b"mod_wsgi.request_start"[..]), o(format!("{}", 1_700_000_000_000_000u64 + i as u64))),
            (Cow::Borrowed(&b"mod_wsgi.script_name"[..]), Cow::Borrowed(&b"/app"[..])),
            (Cow::Borrowed(&b"mod_wsgi.listener_port"[..]), Cow::Borrowed(&b"8080"[..])),
        ];
        if dup {
            // A server variable with a CGI name: the CGI key wins, whatever the order.
            server_vars.push((Cow::Borrowed(&b"SERVER_NAME"[..]), o(format!("name{}", i % 2))));
        }
        if i % 5 == 3 {
            server_vars.push((Cow::Borrowed(&b"HTTPS"[..]), Cow::Borrowed(&b"on"[..])));
        }
        RequestMeta {
            method: Cow::Borrowed(if i % 7 == 6 { &b"POST"[..] } else { &b"GET"[..] }),
            script_name: Cow::Borrowed(&b"/app"[..]),
            path_info: if i < 4 { Cow::Borrowed(&b"/same"[..]) } else { o(format!("/p{}", i % 3)) },
            query: if i % 4 == 0 { Cow::Borrowed(&b""[..]) } else { o(format!("q={i}")) },
            server_name: Cow::Borrowed(&b"example.org"[..]),
            server_port: 8080,
            remote_port: (i % 6 != 5).then_some(40_000 + (i as u16 % 3)),
            document_root: (i % 9 != 8).then(|| Cow::Borrowed(&b"/srv"[..])),
            headers: vec![
                (Cow::Borrowed(&b"Host"[..]), Cow::Borrowed(&b"example.org"[..])),
                (Cow::Borrowed(&b"Cookie"[..]), o(format!("a={}", i % 2))),
                (Cow::Borrowed(&b"Cookie"[..]), Cow::Borrowed(&b"b=2"[..])),
            ],
            server_vars,
            app: AppSettings {
                script: Cow::Borrowed(&b"/srv/app.wsgi"[..]),
                callable: Cow::Borrowed(&b"application"[..]),
                application_group: Cow::Borrowed(if i % 8 == 7 { &b"other"[..] } else { &b"%{GLOBAL}"[..] }),
                process_group: Cow::Borrowed(&b""[..]),
                script_reloading: i % 10 != 9,
            },
            ..Default::default()
        }
    };
    Python::attach(|py| {
        let template = EnvironTemplate::new(py, true, true, "test").unwrap();
        for dup in [false, true] {
            for i in 0..40 {
                let m = meta(i, dup);
                let kept = template.build(py, &m).unwrap().finish();
                let fresh = template.build_fresh(py, &m).unwrap().finish();
                assert!(kept.eq(&fresh).unwrap(), "request {i} (dup {dup}): {kept} != {fresh}");
                assert_eq!(kept.len(), fresh.len());
            }
        }
    });
}

"""Server flavours and their common behaviour.

Names accepted in OXWSGI_SERVERS (comma separated, default "apache,nginx"):

    modwsgi[-MPM]   Debian's apache2 + Debian's mod_wsgi 4.9 (the reference)
    apache[-MPM]    Debian's apache2 + our mod_oxwsgi.so
    apache-daemon   the same (event MPM), every mount in one WSGIDaemonProcess group
                    (processes=2, threads=15)
    nginx           Debian's nginx + our ngx_http_oxwsgi_module.so
    nginx-daemon    the same, every location in one wsgi_daemon_process group
                    (processes=2, threads=15)

MPM is event, worker or prefork; without a suffix OXWSGI_APACHE_MPM decides
(default event). Other variables: OXWSGI_TEST_VENV, OXWSGI_MODULE_DIR,
OXWSGI_KEEP_STAGE=1 (keep /tmp/oxwsgi-* after the run, for debugging).
"""

import os
import re
import time
import warnings

import requests

from . import crash, procs
from .mounts import HEALTH_PATH  # noqa: F401 (re-exported)
from .stage import Stage

# Lines that mean a server or interpreter crashed or hit a fatal condition.
# Apache 2.4 writes levels as [module:level], nginx as [level].
BAD_LOG_PATTERNS = [
    re.compile(r"segfault", re.I),
    re.compile(r"exit signal"),
    re.compile(r"exited on signal"),
    re.compile(r"core dumped"),
    re.compile(r"\[(?:[\w.-]+:)?alert\]"),
    re.compile(r"\[(?:[\w.-]+:)?emerg\]"),
    re.compile(r"Fatal Python error"),
    re.compile(r"oxwsgi crash report: .*fatal signal"),
]


def crash_stacks(text):
    """The crash reports of `text` (oxwsgi's, harness/crash.py), to show with a failure."""
    found = crash.reports(text)
    return "".join(f"\n--- crash report of pid {pid} ({sig}) ---\n" + "\n".join(frames)
                   for pid, (sig, frames) in found.items())


def bad_log_lines(text):
    return [line for line in text.splitlines()
            if any(p.search(line) for p in BAD_LOG_PATTERNS)]


class ServerError(Exception):
    pass


class Server:
    kind = "?"            # "apache" or "nginx"
    wsgi = "?"            # "modwsgi" or "oxwsgi"

    def __init__(self, name):
        self.name = name
        self.host = "127.0.0.1"
        self.port = procs.free_port()
        self.stage = Stage(name)
        self.error_log_path = self.stage.logs / "error.log"
        self.started = False
        self.stop_problems = []

    # -- addresses ---------------------------------------------------------
    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}"

    def url(self, path):
        return self.base_url + path

    # -- life cycle --------------------------------------------------------
    def start(self):
        try:
            self.stage.populate()
            self.install_module()
            self.stage.prepare_django()
            self.write_config()
            self.stage.make_readable()
            self.launch()
            self.started = True
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout=40.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.master_alive():
                raise ServerError(f"{self.name}: server exited during start-up\n"
                                  f"{self.startup_output()}\n--- error log ---\n{self.log_tail()}")
            try:
                r = requests.get(self.url(HEALTH_PATH), timeout=5)
                if r.status_code == 200 and r.content.startswith(b"ok"):
                    return
                last = f"{r.status_code} {r.content[:300]!r}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        raise ServerError(f"{self.name}: not ready after {timeout}s (last: {last})\n"
                          f"--- error log ---\n{self.log_tail()}")

    def health(self):
        """One GET of the health app on a fresh connection."""
        try:
            r = requests.get(self.url(HEALTH_PATH), timeout=10)
            return r.status_code == 200 and r.content.startswith(b"ok")
        except requests.RequestException:
            return False

    def stop(self):
        """Stop the server and wait until every one of its processes is gone.
        Problems (survivors that needed SIGKILL) are recorded in stop_problems.
        Returns the error-log offset at which shutdown began."""
        self.shutdown_offset = self.log_size()
        self.terminate()
        return self.shutdown_offset

    def cleanup(self):
        if os.environ.get("OXWSGI_KEEP_STAGE") == "1":
            return
        self.stage.remove()

    # -- error log ---------------------------------------------------------
    def log_size(self):
        try:
            return self.error_log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset=0):
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    test_log_offset = 0  # set by the `server` fixture when a test starts

    def test_log(self):
        """The error log written since the current test started."""
        return self.log_since(self.test_log_offset)

    def wait_for_test_log(self, pattern, timeout=10.0):
        return self.wait_for_log(pattern, since=self.test_log_offset, timeout=timeout)

    def error_log(self):
        return self.log_since(0)

    def log_tail(self, n=60):
        return "\n".join(self.error_log().splitlines()[-n:])

    def wait_for_log(self, pattern, since=0, timeout=10.0):
        """Wait until the error log written after `since` matches `pattern`
        (a regex or plain string); return the matching text. Servers may
        write the log a little after the response is complete."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(since)
            if rx.search(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: error log never matched {rx.pattern!r}; "
                                     f"log since offset {since}:\n{text[-4000:]}")
            time.sleep(0.1)

    def check_log(self, since=0):
        text = self.log_since(since)
        bad = bad_log_lines(text)
        if bad and self.wsgi in ("modwsgi", "modpython"):
            # Debian's mod_wsgi and mod_python, the references, now and then lose a child
            # to a segfault when httpd stops: not a failure of the test that compares.
            warnings.warn(f"{self.name} (the reference, {self.wsgi}) logged a crash: " + "; ".join(bad[:3]))
            return
        # httpd's own race at stop, shown by oxwsgi's crash report (harness/crash.py).
        bad, why = crash.without_excused(text, bad)
        if why:
            warnings.warn(f"{self.name}: {why}")
        if bad:
            raise AssertionError(f"{self.name}: error log shows a crash or fatal condition:\n"
                                 + "\n".join(bad[:20]) + crash_stacks(text))

    # -- per flavour -------------------------------------------------------
    def install_module(self):
        raise NotImplementedError

    def write_config(self):
        raise NotImplementedError

    def launch(self):
        raise NotImplementedError

    def master_alive(self):
        raise NotImplementedError

    def startup_output(self):
        return ""

    def terminate(self):
        raise NotImplementedError


def parse_name(name):
    """'apache-prefork' -> ('apache', 'prefork')."""
    base, _, mpm = name.partition("-")
    return base, mpm or None


def create(name):
    from .apache import ApacheServer
    from .nginx import NginxServer
    base, mpm = parse_name(name)
    if name in ("apache-daemon", "modwsgi-daemon"):
        return ApacheServer(name, wsgi="modwsgi" if base == "modwsgi" else "oxwsgi", mpm="event", daemon=True)
    if base in ("modwsgi", "apache"):
        return ApacheServer(name, wsgi="modwsgi" if base == "modwsgi" else "oxwsgi",
                            mpm=mpm or os.environ.get("OXWSGI_APACHE_MPM", "event"))
    if base == "nginx" and mpm is None:
        return NginxServer(name)
    if name == "nginx-daemon":
        return NginxServer(name, daemon=True)
    raise ValueError(f"unknown server {name!r} in OXWSGI_SERVERS "
                     f"(known: modwsgi[-MPM], apache[-MPM], apache-daemon, modwsgi-daemon, nginx, nginx-daemon; "
                     f"MPM = event|worker|prefork)")


def selected():
    raw = os.environ.get("OXWSGI_SERVERS", "apache,nginx")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if not names:
        raise ValueError("OXWSGI_SERVERS selects no server")
    for n in names:
        if n in ("apache-daemon", "modwsgi-daemon", "nginx-daemon"):
            continue
        base, mpm = parse_name(n)
        if base not in ("modwsgi", "apache", "nginx") or (
                mpm is not None and (base == "nginx" or mpm not in ("event", "worker", "prefork"))):
            raise ValueError(f"unknown server {n!r} in OXWSGI_SERVERS")
    return names


def _raw_helpers():
    # Attached here to keep rawhttp free of server knowledge.
    from . import rawhttp

    def raw(self, timeout=rawhttp.DEFAULT_TIMEOUT):
        """A RawConnection to this server."""
        return rawhttp.RawConnection(self.host, self.port, timeout=timeout)

    def raw_request(self, method, target, headers=(), body=None,
                    timeout=rawhttp.DEFAULT_TIMEOUT, version="HTTP/1.1"):
        """One exact request on a fresh connection (Connection: close)."""
        return rawhttp.request(self.port, method, target, headers=headers, body=body,
                               timeout=timeout, version=version)

    Server.raw = raw
    Server.raw_request = raw_request


_raw_helpers()

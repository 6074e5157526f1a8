"""Fixtures for the `oxwsgi` launcher tests: they run the real binary, which runs the
real Debian apache2 / nginx with the built modules on 127.0.0.1.

Environment: OXWSGI_BIN (default <repo>/target/release/oxwsgi), OXWSGI_MODULE_DIR
(default <repo>/target/modules), OXWSGI_TEST_VENV (default /opt/oxwsgi-test-venv).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent.parent
OXWSGI = Path(os.environ.get("OXWSGI_BIN", REPO / "target" / "release" / "oxwsgi"))
MODULE_DIR = Path(os.environ.get("OXWSGI_MODULE_DIR", REPO / "target" / "modules"))
VENV = Path(os.environ.get("OXWSGI_TEST_VENV", "/opt/oxwsgi-test-venv"))
MODULE_FILES = {"apache": "mod_oxwsgi.so", "nginx": "ngx_http_oxwsgi_module.so"}


def pytest_configure(config):
    if not OXWSGI.is_file():
        raise pytest.UsageError(f"{OXWSGI} does not exist: build it with `make launcher` (or set OXWSGI_BIN)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def proc_table():
    """{pid: (ppid, pgrp, state)} from /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(d)] = (int(fields[1]), int(fields[2]), fields[0])
        except (OSError, IndexError, ValueError):
            continue
    return out


def family(root):
    """Live pids descending from `root` (not root itself), or in its process group."""
    t = proc_table()
    fam = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, pgrp, _) in t.items():
            if pid not in fam and (ppid in fam or pgrp in fam):
                fam.add(pid)
                changed = True
    fam.discard(root)
    return {p for p in fam if t.get(p, (0, 0, "Z"))[2] != "Z"}


# Process look-ups shared with the conformance harness.
from harness.procs import alive, with_cmdline  # noqa: E402,F401


def module_args(server):
    so = MODULE_DIR / MODULE_FILES[server]
    if not so.is_file():
        pytest.fail(f"{so} is not built (make {server})")
    return ["--server", server, "--module-dir", str(MODULE_DIR)]


def run_oxwsgi(*args, timeout=60, **kw):
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.update(kw.pop("env", {}))
    return subprocess.run([str(OXWSGI), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


class Serve:
    """`oxwsgi serve ...` running in the background, as a user would run it in a terminal."""

    def __init__(self, args, cwd, tmp):
        self.port = free_port()
        self.out_path = tmp / f"serve-{self.port}.out"
        self.err_path = tmp / f"serve-{self.port}.err"
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        self.proc = subprocess.Popen([str(OXWSGI), "serve", *map(str, args), "--port", str(self.port)],
                                     cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err, env=env)
        self.seen = set()  # every server pid observed while running
        self.private_dir = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def wait_ready(self, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            m = re.search(r"config\s+(/tmp/oxwsgi-serve-\w+)/", text)
            if m:
                self.private_dir = m.group(1)
            if "oxwsgi: serving" in text:
                self.observe()
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"oxwsgi serve exited ({self.proc.returncode}) before serving:\n{text}")
            time.sleep(0.05)
        raise AssertionError(f"oxwsgi serve not ready after {timeout}s:\n{self.stderr()}")

    def observe(self):
        self.seen |= family(self.proc.pid)
        return self.seen

    def stop(self, sig=signal.SIGINT, timeout=40):
        self.observe()
        assert self.seen, "no server process was ever seen under the launcher"
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"oxwsgi did not exit {timeout}s after {sig!r}:\n{self.stderr()}")
        return rc

    def leftovers(self):
        left = {p for p in self.seen if alive(p)}
        if self.private_dir:
            left |= set(with_cmdline(self.private_dir))
        return left

    def cleanup(self):
        """Whatever a failed test left: stop the launcher, then kill what survived."""
        if self.proc.poll() is None:
            self.observe()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in self.leftovers():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()
        self.err.close()


@pytest.fixture
def workdir():
    """A directory the server's worker user (www-data) can read."""
    d = Path(tempfile.mkdtemp(prefix="oxwsgi-launcher-test-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(workdir):
    started = []

    def start(*args, cwd=None):
        s = Serve(list(args), cwd or workdir, workdir)
        started.append(s)
        return s

    yield start
    for s in started:
        s.cleanup()


@pytest.fixture(params=["apache", "nginx"])
def server(request):
    return request.param


FLASK_APP = '''\
import os
from flask import Flask, request

STATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "state", "paths.log")
app = Flask(__name__, static_folder=None)


@app.before_request
def record():
    with open(STATE, "a") as f:
        f.write(request.path + "\\n")


@app.route("/", defaults={"path": ""})
@app.route("/<path:path>")
def anything(path):
    return "python handled /%s\\n" % path

application = app
'''


@pytest.fixture
def flask_project(workdir):
    """app.wsgi (Flask, records every path it handles) + static/ with a stylesheet."""
    (workdir / "app.wsgi").write_text(FLASK_APP)
    static = workdir / "static"
    static.mkdir()
    (static / "style.css").write_text("body { color: rebeccapurple }\n")
    state = workdir / "state"
    state.mkdir()
    state.chmod(0o1777)
    subprocess.run(["chmod", "-R", "a+rX", str(workdir)], check=True)
    state.chmod(0o1777)
    return workdir

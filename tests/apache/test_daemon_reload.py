"""Script reloading in daemon mode (mod_wsgi's rule): a changed WSGI script restarts the
group's processes gracefully -- in-flight requests finish on the old code, the parent
starts fresh processes, the request that noticed the change is sent again to one of them --
rather than re-importing the module in place. With the real Apache, under load."""

import concurrent.futures
import os
import textwrap
import time

import pytest
import requests

from harness.load import Load
from test_daemon import DaemonServer

APP = textwrap.dedent("""\
    import json, os, time
    VERSION = 1

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/sleep":
            open("{state}/sleeping", "w").close()  # the test waits for this
            time.sleep(float(environ.get("QUERY_STRING") or 1))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"version": VERSION, "pid": os.getpid(),
                            "reloading": environ.get("mod_wsgi.script_reloading")}).encode()]
    """)

GROUP = """
WSGIDaemonProcess gr processes=2 threads=4 display-name=%{{GROUP}}
WSGIScriptAlias /r {stage}/gr/app.wsgi process-group=gr
<Directory {stage}/gr>
    Require all granted
</Directory>
"""


class ReloadServer(DaemonServer):
    def write_config(self):
        d = self.stage.root / "gr"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(self.app())
        self.conf.write_text(self.config_text() + "\n" + self.extra.format(stage=self.stage.root))

    def app(self):
        return APP.replace("{state}", str(self.stage.state))

    @property
    def script(self):
        return self.stage.root / "gr" / "app.wsgi"

    def set_version(self, version):
        """New code, and an mtime that surely differs (a rewrite within the same clock tick
        would keep it). Replaced atomically: a process loading the script for the first
        time at this moment must not read it half-written."""
        tmp = self.script.with_suffix(".new")
        tmp.write_text(self.app().replace("VERSION = 1", f"VERSION = {version}"))
        st = tmp.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000 * version))
        os.replace(tmp, self.script)


@pytest.fixture(scope="module")
def srv():
    s = ReloadServer("apache-daemon-reload", GROUP)
    s.start()
    s.wait_daemons(2)
    yield s
    s.stop()
    s.cleanup()


def get(srv, path, timeout=30):
    return requests.get(srv.url(path), timeout=timeout, headers={"Connection": "close"})


def test_a_changed_script_restarts_the_group_under_load_with_no_failed_request(srv):
    seen = {}  # version -> pids that served it
    served = {}  # pid -> versions it served

    def note(r):
        j = r.json()
        seen.setdefault(j["version"], set()).add(j["pid"])
        served.setdefault(j["pid"], set()).add(j["version"])
        return j

    def check(r):
        if r.status_code != 200:
            return False
        note(r)
        return True

    r = get(srv, "/r/")
    assert r.status_code == 200 and note(r)["version"] == 1 and r.json()["reloading"] == "1"
    total_ok = total_failed = 0
    with Load(srv.url("/r/"), check, threads=4) as load:
        for version in (2, 3, 4):
            old = srv.daemons("gr")
            time.sleep(0.7)
            # A request in flight when the script changes finishes on the old code.
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                marker = srv.stage.state / "sleeping"
                marker.unlink(missing_ok=True)
                slow = ex.submit(get, srv, "/r/sleep?1.5")
                # The change only once the slow request runs the old code (on a loaded
                # machine it can take a while to get there).
                deadline = time.monotonic() + 10
                while not marker.exists():
                    assert time.monotonic() < deadline, "the slow request never started"
                    time.sleep(0.02)
                srv.set_version(version)
                first = get(srv, "/r/")
                assert first.status_code == 200 and note(first)["version"] == version, first.text
                # Served by a process that never ran the old code: a replacement, or a
                # process that loads the script only now (it loads the new one).
                assert served[first.json()["pid"]] == {version}, (first.json(), served)
                s = slow.result()
            assert s.status_code == 200 and note(s)["version"] == version - 1, s.text
            assert s.json()["pid"] in old
            # Every process of the group that ran the old code is replaced once it sees
            # the change; afterwards only the new code answers.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                now = srv.daemons("gr")
                stale = {p for p in now if any(v < version for v in served.get(p, ()))}
                if len(now) == 2 and not stale:
                    break
                note(get(srv, "/r/"))
                time.sleep(0.1)
            assert len(srv.daemons("gr")) == 2 and not stale, (old, srv.daemons("gr"), served)
            assert not set(srv.daemons("gr")) & set(seen[version - 1]), (seen, srv.daemons("gr"))
            for _ in range(10):
                j = note(get(srv, "/r/"))
                assert j["version"] == version and served[j["pid"]] == {version}, (j, served)
    total_ok, total_failed = load.ok, len(load.failed)
    print(f"script reloading: 3 changes under 4 clients, {total_ok} requests, {total_failed} failed; "
          f"versions seen {sorted(seen)}")
    assert not load.failed, load.failed[:5]
    assert total_ok > 100, total_ok
    assert sorted(seen) == [1, 2, 3, 4]
    # No process ever served two versions (nothing was reloaded in place).
    for a in seen:
        for b in seen:
            assert a == b or not seen[a] & seen[b], seen
    srv.wait_for_log(r"daemon process \d+ of group \"gr\" exits: its WSGI script changed \(script reloading\)")
    srv.wait_for_log(r"app.wsgi changed \(script reloading\); restarting the process")
    srv.check_log()

"""Daemon mode on nginx, the processes, with the real nginx: the master forks a keeper per
configuration, the keeper forks the groups' daemons (as their users), replaces a killed
one, hands over to a new keeper on reload, and nothing survives quit, stop or a killed
master (docs/nginx-daemon.md)."""

import os
import pwd
import re
import signal
import stat
import subprocess
import time

import pytest
import requests

from custom import CustomNginx
from harness import paths, procs

GROUPS = """
    wsgi_daemon_process site processes=2 threads=3 user=nobody graceful_timeout=2s shutdown_timeout=2s;
    wsgi_daemon_process other shutdown_timeout=2s;
"""

LOCATIONS = """
        location /site/ {{ wsgi_app {d}/slow.wsgi; wsgi_process_group site; }}
"""


DaemonNginx = CustomNginx


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def keepers(server, since=0):
    return [int(p) for p in re.findall(r"keeper (\d+) started", server.log_since(since))]


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def daemons(keeper):
    return [p for p in procs.children(keeper) if procs.alive(p)]


def settled(keeper, n):
    """The keeper's daemons once there are exactly n and each one serves (Python up)."""
    def ok():
        d = daemons(keeper)
        return d if len(d) == n else None
    return wait_for(ok, what=f"{n} daemons of keeper {keeper}")


@pytest.fixture
def server():
    s = DaemonNginx("nginx-daemon-procs", locations=LOCATIONS, http_extra=GROUPS)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def sockets(server):
    return sorted((server.stage.root / "run").glob("oxwsgi.*.sock"))


def test_keeper_starts_each_group_as_its_user(server):
    [keeper] = wait_for(lambda: keepers(server), what="the keeper's start line")
    assert keeper in procs.children(server.proc.pid), "the keeper is the master's child"
    pids = settled(keeper, 3)
    # Once serving, each daemon has dropped to its user (a just-forked one is still root).
    log = wait_for(lambda: len(re.findall(r"serving on", server.log_since())) >= 3 and server.log_since(),
                   what="three daemons serving")
    nobody = pwd.getpwnam("nobody").pw_uid
    worker = pwd.getpwnam(paths.RUN_USER).pw_uid
    assert sorted(uid_of(p) for p in pids) == sorted([nobody, nobody, worker])
    assert len(re.findall(r'daemon process \d+ of group "site" started \(processes=2, threads=3', log)) == 2
    assert len(re.findall(r'daemon process \d+ of group "other" started', log)) == 1
    with open(f"/proc/{keeper}/comm") as f:
        assert f.read().strip() == "oxwsgi-keeper"
    # One socket per group, only the workers' user may connect (mode 0600)
    socks = sockets(server)
    assert len(socks) == 2
    for s in socks:
        st = s.stat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == worker, s
    # The location's requests run in the group's daemons, as nobody
    seen = set()
    for _ in range(20):
        r = requests.get(server.url("/site/x"), timeout=10)
        assert r.status_code == 200 and r.text.startswith("/x pid="), r.text
        seen.add(int(r.text.split("pid=")[1]))
    assert seen <= set(pids) and all(uid_of(p) == nobody for p in seen), (seen, pids)


def test_socket_refuses_other_local_users(server):
    wait_for(lambda: len(sockets(server)) == 2, what="the sockets")
    path = sockets(server)[0]
    probe = ("import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX)\n"
             "try:\n s.connect(sys.argv[1]); print('connected')\n"
             "except PermissionError: print('refused')\n")
    out = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3.11", "-c", probe, str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "refused", out


def test_a_killed_daemon_is_replaced_and_logged(server):
    [keeper] = wait_for(lambda: keepers(server), what="the keeper")
    before = settled(keeper, 3)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    line = wait_for(lambda: re.search(rf'daemon process {victim} of group "(\w+)" exited \(killed by signal 9[^)]*\)\); '
                                      r"starting a replacement", server.log_since()), what="the replacement line")
    assert line
    after = settled(keeper, 3)
    assert victim not in after and len(set(after) - set(before)) == 1


def test_reloads_hand_over_to_a_new_keeper(server):
    [first] = wait_for(lambda: keepers(server), what="the keeper")
    old_daemons = settled(first, 3)
    socks = sockets(server)
    keeper = first
    for i in range(3):
        offset = server.log_size()
        os.kill(server.proc.pid, signal.SIGHUP)
        [keeper] = wait_for(lambda: keepers(server, offset), what=f"keeper of reload {i + 1}")
        settled(keeper, 3)
    # the old keepers drained their daemons and left; exactly the configured daemons remain
    wait_for(lambda: not procs.alive(first), what="the first keeper's exit")
    assert all(not procs.alive(p) for p in old_daemons)
    # (each old keeper leaves once its daemons finished: graceful + shutdown timeouts)
    wait_for(lambda: [p for p in procs.children(server.proc.pid) if procs.alive(p) and daemons(p)] == [keeper],
             timeout=15, what="the newest keeper alone")
    assert len(daemons(keeper)) == 3
    assert re.search(rf"keeper {first}: 3 daemon process\(es\) drained", server.log_since())
    # unchanged groups keep their sockets across reloads
    assert sockets(server) == socks


def test_a_changed_group_gets_a_new_socket_and_the_old_one_goes(server):
    [keeper] = wait_for(lambda: keepers(server), what="the keeper")
    settled(keeper, 3)
    before = sockets(server)
    server.http_extra = GROUPS.replace("wsgi_daemon_process other shutdown_timeout=2s;",
                                       "wsgi_daemon_process other processes=2 shutdown_timeout=2s;")
    server.write_config()
    offset = server.log_size()
    os.kill(server.proc.pid, signal.SIGHUP)
    [new] = wait_for(lambda: keepers(server, offset), what="the new keeper")
    settled(new, 4)
    after = wait_for(lambda: (lambda s: s if s != before else None)(sockets(server)), what="the socket change")
    assert len(after) == 2 and len(set(after) & set(before)) == 1


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL])
def test_nothing_survives_quit_stop_or_a_killed_master(sig):
    s = DaemonNginx("nginx-daemon-end", locations=LOCATIONS, http_extra=GROUPS)
    s.start()
    try:
        [keeper] = wait_for(lambda: keepers(s), what="the keeper")
        pids = [keeper] + settled(keeper, 3)
        workers = [p for p in procs.children(s.proc.pid) if p != keeper]
        assert sockets(s)
        s.proc.send_signal(sig)
        s.proc.wait(30)
        if sig == signal.SIGKILL:
            # nginx's workers outlive a killed master; the test ends them itself
            procs.kill_survivors(workers)
        wait_for(lambda: not any(procs.alive(p) for p in pids), timeout=15, what="every keeper and daemon gone")
        assert sockets(s) == []
    finally:
        if s.proc is not None and s.proc.poll() is not None:
            s.out.close()
            s.proc = None
        s.stop()
        s.cleanup()


def test_a_crash_loop_backs_off():
    s = DaemonNginx("nginx-daemon-backoff", locations="",
                    http_extra="    wsgi_daemon_process crash home=/root user=nobody;\n")
    s.start()
    try:
        wait_for(lambda: len(re.findall(r"in [\d.]+ s \(back-off\)", s.log_since())) >= 3, timeout=30,
                 what="three backed-off restarts")
        delays = [float(x) for x in re.findall(r"in ([\d.]+) s \(back-off\)", s.log_since())]
        assert delays[:3] == [0.25, 0.5, 1.0], delays
        assert "cannot change to the home directory /root" in s.log_since()
    finally:
        s.stop()
        s.cleanup()


LOG_APP = """
def application(environ, start_response):
    environ['wsgi.errors'].write('oxwsgi-rotation-marker %s\\n' % environ['QUERY_STRING'])
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'logged']
"""


def test_daemons_follow_a_rotated_error_log():
    # `nginx -s reopen` (SIGUSR1 to the master) reaches the master and the workers; the
    # daemons reopen a log file replaced at its path before their next line.
    app = None
    s = DaemonNginx("nginx-daemon-reopen", http_extra=GROUPS,
                    locations="        location /log/ {{ wsgi_app {d}/../logapp.wsgi; wsgi_process_group other; }}\n")
    app = s.stage.root / "logapp.wsgi"
    app.write_text(LOG_APP)
    os.chmod(app, 0o644)
    s.start()
    try:
        log = s.error_log_path
        assert requests.get(s.url("/log/?first"), timeout=20).text == "logged"
        wait_for(lambda: "oxwsgi-rotation-marker first" in log.read_text(), what="the first line")
        rotated = log.with_name("error.log.1")
        os.rename(log, rotated)
        os.kill(s.proc.pid, signal.SIGUSR1)
        wait_for(log.exists, what="nginx's new error log")
        time.sleep(1.2)
        assert requests.get(s.url("/log/?second"), timeout=20).text == "logged"
        wait_for(lambda: "oxwsgi-rotation-marker second" in log.read_text(), what="the line in the new log")
        assert "oxwsgi-rotation-marker second" not in rotated.read_text()
    finally:
        s.stop()
        s.check_log()
        s.cleanup()

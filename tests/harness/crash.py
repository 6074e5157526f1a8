"""Reading oxwsgi's crash reports (src/ffi/crash_report.rs) out of an error log, to say
whose code a crash was in.

A server process that runs oxwsgi and dies of a fault writes the faulting thread's stack
to the error log first:

    oxwsgi crash report: pid 3261 thread 3261: fatal signal 11 (SIGSEGV), fault address 0x8; ...
    /lib/x86_64-linux-gnu/libc.so.6(+0x3c050)[0x7ff20d3fd050]
    /lib/x86_64-linux-gnu/libapr-1.so.0(apr_os_sock_get+0x0)[0x7ff20d5c0180]
    /usr/lib/apache2/modules/mod_mpm_event.so(+0x606c)[0x7ff20d2ff06c]
    ...
    oxwsgi crash report: pid 3261: end of stack

One crash of httpd itself is known and excused: the event MPM, stopped with SIGTERM,
closes the sockets of the connections its workers are serving from the main thread
(close_worker_sockets in server/mpm/event/event.c) while a worker may be finishing that
connection and destroying its pool; the main thread then reads a freed socket in
apr_os_sock_get. Debian's mod_wsgi and mod_python lose children to it too. Its stack has
no frame of oxwsgi, of CPython or of any Python extension: only libc, APR, the event MPM
and httpd. Every other crash is a failure.
"""

import re

HEADER = re.compile(r"oxwsgi crash report: pid (\d+) thread \d+: fatal signal (\d+) \((\w+)\)")
END = re.compile(r"oxwsgi crash report: pid (\d+): end of stack")
CHILD_CRASH = re.compile(r"child pid (\d+) exit signal")

# Libraries of httpd and the system under the known race.
HTTPD_ONLY = re.compile(r"/(libc\.so\.6|libapr-1\.so\.0|libaprutil-1\.so\.0|mod_mpm_event\.so|apache2)\(")


def reports(text):
    """{pid: (signal name, [frame lines])} for each complete crash report in `text`."""
    found, current = {}, None
    for line in text.splitlines():
        m = HEADER.search(line)
        if m:
            current = (int(m.group(1)), m.group(3), [])
            continue
        m = END.search(line)
        if m and current and int(m.group(1)) == current[0]:
            found[current[0]] = (current[1], current[2])
            current = None
            continue
        if current:
            current[2].append(line.strip())
    return found


def is_httpd_stop_race(signal, frames):
    """The known event-MPM race (module docstring): a SIGSEGV whose faulting frame is APR's
    apr_os_sock_get called by the event MPM, and no frame outside httpd, APR and libc."""
    if signal != "SIGSEGV" or not frames:
        return False
    inner = [f for f in frames if "libc.so.6(" not in f][:2]
    return (len(inner) == 2 and "apr_os_sock_get" in inner[0] and "mod_mpm_event.so(" in inner[1]
            and all(HTTPD_ONLY.search(f) for f in frames))


def excused(text, bad_lines):
    """Of `bad_lines` (from the same log `text`), the ones that are the known httpd race:
    the crash report lines themselves and the parent's "child pid N exit signal" line of a
    process whose report shows it. Returns (excused lines, explanation) ."""
    races = {pid for pid, (sig, frames) in reports(text).items() if is_httpd_stop_race(sig, frames)}
    if not races:
        return [], ""
    out = []
    for line in bad_lines:
        m = CHILD_CRASH.search(line) or HEADER.search(line)
        if m and int(m.group(1)) in races:
            out.append(line)
    why = (f"httpd's event MPM crashed at stop in its own code (pids {sorted(races)}: "
           "apr_os_sock_get from close_worker_sockets, no oxwsgi or Python frame on the stack)")
    return out, why


def without_excused(text, bad_lines):
    """`bad_lines` less httpd's known race (see excused), and the warning to give for the
    lines taken out ("" when none were)."""
    known, why = excused(text, bad_lines)
    return [line for line in bad_lines if line not in known], (why if known else "")


# A WSGI script that kills its process with a fault: reading address 0 through ctypes.
CRASH_APP = """
import ctypes
def application(environ, start_response):
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    start_response('200 OK', [])
    return [b'not reached']
"""


def assert_crash_reported(srv, url, module_file, exit_pattern):
    """GET `url` (a CRASH_APP) on `srv`: its process must die of SIGSEGV at address 0 and
    leave one report whose frames run through CPython and `module_file` (the module's
    file name), the server must log the death (`exit_pattern`), and the harness must not
    excuse it. Returns the error log text."""
    import requests

    try:
        r = requests.get(srv.url(url), timeout=20)
        assert r.status_code >= 500, r.status_code
    except requests.ConnectionError:
        pass  # the process died with the connection: what the client sees
    text = srv.wait_for_log(r"oxwsgi crash report: pid \d+: end of stack", timeout=20)
    srv.wait_for_log(exit_pattern, timeout=20)
    found = reports(text)
    assert len(found) == 1, text[-3000:]
    ((signal, frames),) = found.values()
    assert signal == "SIGSEGV"
    assert "fault address 0x0;" in text
    # The faulting thread's stack runs through CPython and into oxwsgi's request path.
    assert any("libpython3.11" in f for f in frames), frames
    assert any(module_file in f for f in frames), frames
    # Not httpd's own race: the harness would fail a server that logged this.
    deaths = [line for line in text.splitlines() if re.search(exit_pattern, line) or HEADER.search(line)]
    assert excused(text, deaths) == ([], "")
    return text

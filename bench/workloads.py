"""The workloads: wrk/h2load parameters, the wrk Lua scripts, and running/parsing them."""

import json
import os
import re
import subprocess
import tempfile
import time
from typing import NamedTuple

POST_SIZE = 1 << 20

# 20 request headers on top of wrk's Host: the environ workload and its check.
ENVIRON_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.7,fr;q=0.3",
    "Accept-Encoding": "identity",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Cookie": "sessionid=8d3c7a1f9b2e4c6d; csrftoken=Yk3jP0qLm8N2rT5vW7xZ; theme=dark",
    "Referer": "http://127.0.0.1/some/previous/page?with=query&and=more",
    "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl",
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "X-Forwarded-For": "203.0.113.7, 198.51.100.23",
    "X-Forwarded-Proto": "https",
    "X-Request-Id": "6f1e0c52-7d0b-4a5e-9a8c-3b1f2e4d5c6a",
    "X-Real-Ip": "203.0.113.7",
    "Dnt": "1",
    "Upgrade-Insecure-Requests": "1",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "same-origin",
    "If-None-Match": "\"5d8c72a5edda8\"",
    "X-Bench-Trace": "0123456789abcdef0123456789abcdef",
}



class Workload(NamedTuple):
    method: str
    path: str
    threads: int          # wrk/h2load threads
    conns: int            # connections (h2: concurrent streams = conns x H2_STREAMS)
    pinned: bool          # wrk and every server process on CPU 0
    tool: str = "wrk"     # "wrk"; "mixed" (two wrk at once); "h2" (h2load over TLS)


# mixed: the fast wrk (-t2 -c32 on /hello, as the hello workload) and, at the same time, a
# second wrk keeping MIXED_SLOW_CONNS requests to /sleep100 (100 ms in the app) in flight:
# 4 of 36 requests in flight (11 %) are slow ones. The row is the fast requests' req/s and
# latency; the slow ones are counted in slow_requests (and in CPU us/req).
MIXED_SLOW_PATH = "/sleep100"
MIXED_SLOW_CONNS = 4
# h2: h2load -c (conns / H2_STREAMS) -m H2_STREAMS, i.e. the same 32 requests in flight as
# wrk -c32, multiplexed 4 per TLS connection as a browser would.
H2_STREAMS = 4

WORKLOADS = {
    "hello":    Workload("GET",  "/hello",   2, 32, False),
    "64k":      Workload("GET",  "/64k",     2, 32, False),
    "stream":   Workload("GET",  "/stream",  2, 32, False),
    "post":     Workload("POST", "/post",    2, 32, False),
    "environ":  Workload("GET",  "/environ", 2, 32, False),
    # One connection, wrk and every server process on CPU 0: a cross-CPU wake-up costs
    # ~60 us per round trip on a 2-vCPU VM and makes unpinned -c1 bimodal.
    "hello-c1": Workload("GET",  "/hello",   1, 1,  True),
    "mixed":    Workload("GET",  "/hello",   2, 32, False, "mixed"),
    "h2":       Workload("GET",  "/hello",   2, 32, False, "h2"),
    # Real apps (bench/apps/): a Flask view and a Django view rendering the same template.
    # Last: app.py imports Flask and Django on their first request, and the peak RSS of the
    # workloads measured after them would include both frameworks.
    "flask":    Workload("GET",  "/flask/page",  2, 32, False),
    "django":   Workload("GET",  "/django/page", 2, 32, False),
}

DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_scripts(dirpath):
    """One Lua script per workload in dirpath; returns {workload: path}."""
    paths = {}
    for name, (method, _path, *_rest) in WORKLOADS.items():
        if WORKLOADS[name].tool == "h2":
            continue
        lines = []
        if method == "POST":
            lines += ['wrk.method = "POST"',
                      f'wrk.body = string.rep("p", {POST_SIZE})',
                      'wrk.headers["Content-Type"] = "application/octet-stream"']
        if name == "environ":
            lines += [f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}"
                      for k, v in ENVIRON_HEADERS.items()]
        p = os.path.join(dirpath, f"{name}.lua")
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n" + DONE_LUA)
        paths[name] = p
    p = os.path.join(dirpath, "mixed-slow.lua")
    with open(p, "w") as f:
        f.write(DONE_LUA)
    paths["mixed-slow"] = p
    return paths


def run(port, tls_port, workload, scripts, seconds):
    """Run one workload against a contender; returns (result dict or None, the load
    generators' own CPU seconds, output text). result["requests"] and result["rps"] count
    the measured requests (the fast ones for mixed); result["all_requests"] every request."""
    tool = WORKLOADS[workload].tool
    if tool == "h2":
        return run_h2load(tls_port, workload, seconds)
    if tool == "mixed":
        return run_mixed(port, workload, scripts, seconds)
    r, cpu, out = _finish(_start_wrk(port, workload, scripts[workload], seconds))
    return r, cpu, out


def _start_wrk(port, workload, script, seconds, timeout_s=10, path=None, threads=None,
               conns=None):
    w = WORKLOADS[workload]
    argv = ["wrk", f"-t{threads or w.threads}", f"-c{conns or w.conns}", f"-d{int(seconds)}s",
            f"--timeout={timeout_s}s", "-s", script, f"http://127.0.0.1:{port}{path or w.path}"]
    if w.pinned:
        argv = ["taskset", "-c", "0"] + argv
    # Output to a file, not a pipe: two wrk run at once for the mixed workload.
    out = tempfile.TemporaryFile()
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), out


def _finish(started):
    """Wait for one wrk; returns (result dict or None, its CPU seconds, its output)."""
    p, outf = started
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    outf.seek(0)
    out = outf.read().decode(errors="replace")
    outf.close()
    for line in out.splitlines():
        if line.startswith("BENCH "):
            r = json.loads(line[6:])
            r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["all_requests"] = r["requests"]
            return r, cpu, out
    return None, cpu, out


def run_wrk(port, workload, script, seconds, timeout_s=10):
    """Run wrk once; returns (result dict or None, wrk's own CPU seconds, output text)."""
    return _finish(_start_wrk(port, workload, script, seconds, timeout_s))


def run_mixed(port, workload, scripts, seconds):
    """The fast wrk and the slow wrk at once; the result is the fast one's, plus the slow
    requests (slow_requests, slow_p50_us; all_requests = fast + slow)."""
    slow = _start_wrk(port, workload, scripts["mixed-slow"], seconds, path=MIXED_SLOW_PATH,
                      threads=1, conns=MIXED_SLOW_CONNS)
    fast = _start_wrk(port, workload, scripts[workload], seconds)
    rf, cpu_f, out_f = _finish(fast)
    rs, cpu_s, out_s = _finish(slow)
    out = f"--- fast (GET {WORKLOADS[workload].path})\n{out_f}--- slow (GET {MIXED_SLOW_PATH})\n{out_s}"
    if rf is None or rs is None:
        return None, cpu_f + cpu_s, out
    rf.update(slow_requests=rs["requests"], slow_p50_us=rs["p50_us"], slow_errors=rs["errors"],
              all_requests=rf["requests"] + rs["requests"])
    rf["errors"] += rs["errors"]
    return rf, cpu_f + cpu_s, out


def _percentile(sorted_vals, pct):
    if not sorted_vals:
        return 0
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * pct / 100))]


def run_h2load(tls_port, workload, seconds):
    """h2load over TLS (ALPN h2) for `seconds`; p50/p99 from its per-request log."""
    w = WORKLOADS[workload]
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        argv = ["h2load", f"-t{w.threads}", f"-c{w.conns // H2_STREAMS}", f"-m{H2_STREAMS}",
                f"-D{int(seconds)}", f"--log-file={log.name}",
                f"https://127.0.0.1:{tls_port}{w.path}"]
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = p.stdout.read().decode(errors="replace")
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        cpu = ru.ru_utime + ru.ru_stime
        lat = sorted(int(line.split("\t")[2]) for line in open(log.name) if line.count("\t") >= 2)
    if "Application protocol: h2" not in out:
        return None, cpu, "h2load: no h2 negotiated (ALPN)\n" + out
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not m or not codes:
        return None, cpu, out
    fin = re.search(r"finished in ([\d.]+)s,", out)
    done, ok = int(m.group(2)), int(codes.group(1))
    r = {"requests": ok, "all_requests": done,
         "duration_us": int(float(fin.group(1)) * 1e6) if fin else int(seconds * 1e6),
         "errors": sum(int(m.group(i)) for i in (4, 5, 6)) + int(codes.group(3)) + int(codes.group(4)),
         "p50_us": _percentile(lat, 50), "p99_us": _percentile(lat, 99),
         "max_us": lat[-1] if lat else 0, "h2load_wall_s": round(wall, 2)}
    r["rps"] = ok / (r["duration_us"] / 1e6)
    return r, cpu, out

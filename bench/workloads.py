"""The workloads: wrk parameters, the wrk Lua scripts, and running/parsing wrk."""

import json
import os
import subprocess

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

# name: (method, path, wrk threads, connections, pinned to CPU 0)
WORKLOADS = {
    "hello":    ("GET",  "/hello",   2, 32, False),
    "64k":      ("GET",  "/64k",     2, 32, False),
    "stream":   ("GET",  "/stream",  2, 32, False),
    "post":     ("POST", "/post",    2, 32, False),
    "environ":  ("GET",  "/environ", 2, 32, False),
    # One connection, wrk and every server process on CPU 0: a cross-CPU wake-up costs
    # ~60 us per round trip on a 2-vCPU VM and makes unpinned -c1 bimodal.
    "hello-c1": ("GET",  "/hello",   1, 1,  True),
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
    return paths


def run_wrk(port, workload, script, seconds, timeout_s=10):
    """Run wrk once; returns (result dict or None, wrk's own CPU seconds, output text)."""
    method, path, threads, conns, pinned = WORKLOADS[workload]
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(seconds)}s", f"--timeout={timeout_s}s",
            "-s", script, f"http://127.0.0.1:{port}{path}"]
    if pinned:
        argv = ["taskset", "-c", "0"] + argv
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    for line in out.splitlines():
        if line.startswith("BENCH "):
            r = json.loads(line[6:])
            r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            return r, cpu, out
    return None, cpu, out

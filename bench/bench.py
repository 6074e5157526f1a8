"""oxwsgi benchmark harness: every contender in turn, interleaved repetitions, wrk load.

Run it through bench/run.sh (which installs what it needs); bench/README.md explains
the contenders, the workloads and the columns of the report.
"""

import argparse
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import check
import contenders
import procs
import report
import workloads
from workloads import WORKLOADS, write_scripts

BENCH = Path(__file__).resolve().parent
# Workloads whose first request imports a framework into the process (app.py): after a check
# of them, the contender is started afresh before it is measured.
LATE_IMPORTS = {"flask", "django"}
ROOT = BENCH.parent


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 repetition, 1 s warm-up, 1 s runs (2-3 minutes)")
    ap.add_argument("--only", help="comma-separated contenders (default: all)")
    ap.add_argument("--workloads", help="comma-separated workloads (default: all)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 3)")
    ap.add_argument("--duration", type=int, help="seconds per measured wrk run (default 2)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up before each run (default 1)")
    ap.add_argument("--modules", default=os.environ.get("OXWSGI_MODULE_DIR", str(ROOT / "target/modules")),
                    help="where mod_oxwsgi.so and ngx_http_oxwsgi_module.so are")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run oxwsgi-nginx/oxwsgi-apache with the modules in DIR (an earlier build), "
                         "as contenders NAME@baseline, interleaved with the others: before/after figures "
                         "from one run")
    ap.add_argument("--out", help="results directory (default bench/results/<timestamp>)")
    ap.add_argument("--keep-stage", action="store_true", help="keep the /tmp stage (configs, logs)")
    ap.add_argument("--list", action="store_true", help="list contenders and workloads, and exit")
    ap.add_argument("--serve", metavar="NAME",
                    help="start one contender, print its port and pids, and keep it up until Ctrl-C "
                         "(for profiling with perf/strace; nothing is measured)")
    a = ap.parse_args(argv)
    a.reps = a.reps or (1 if a.quick else 3)
    a.duration = a.duration or (1 if a.quick else 2)
    a.warmup = a.warmup if a.warmup is not None else 1
    return a


def select(names, known, what):
    if not names:
        return list(known)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in chosen if n not in known]
    if bad:
        sys.exit(f"unknown {what}: {', '.join(bad)} (known: {', '.join(known)})")
    return [n for n in known if n in chosen]


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_stage(tls=False):
    """The /tmp stage: the app (and bench/apps/ as app/apps/), the ceilings' static files,
    the wrk scripts' directory, and with tls a self-signed certificate (tls/cert.pem,
    tls/key.pem) for the TLS listeners of the h2 workload."""
    stage = Path(tempfile.mkdtemp(prefix="oxwsgi-bench-", dir="/tmp"))
    stage.chmod(0o755)
    (stage / "app").mkdir(mode=0o755)
    shutil.copy(BENCH / "app.py", stage / "app/app.py")
    shutil.copytree(BENCH / "apps", stage / "app/apps",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = subprocess.run([str(contenders.VENV / "bin/python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (stage / "app/bench_site.py").write_text(f"SITE = {site!r}\n")
    static = stage / "static"
    static.mkdir(mode=0o755)
    (static / "flask").mkdir(mode=0o755)
    (static / "django").mkdir(mode=0o755)
    for name, data in (("hello", check.HELLO), ("post", check.HELLO), ("environ", check.HELLO),
                       ("64k", check.BODY_64K), ("stream", check.BODY_STREAM),
                       ("flask/page", check.PAGE), ("django/page", check.PAGE)):
        (static / name).write_bytes(data)
    (stage / "wrk").mkdir()
    if tls:
        (stage / "tls").mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-keyout", str(stage / "tls/key.pem"),
                        "-out", str(stage / "tls/cert.pem")], check=True, capture_output=True)
    for p in stage.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return stage


def contender_dir(stage, name):
    d = stage / name
    if d.exists():
        shutil.rmtree(d)
    for sub in ("", "logs", "run", "tmp", "sock"):
        (d / sub).mkdir(mode=0o755, exist_ok=True)
    for sub in ("logs", "tmp", "sock"):
        shutil.chown(d / sub, contenders.USER, contenders.USER)
    return d


def port_free(port):
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def log_tail(d, lines=15):
    out = []
    for f in sorted((d / "logs").glob("*")) + sorted(d.glob("*.out")):
        try:
            text = f.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            continue
        if text:
            out.append(f"--- {f.name}\n" + "\n".join(text))
    return "\n".join(out)


class Running:
    """One started contender: its process groups, readiness, and stop."""

    def __init__(self, c, stage, modules, tls=False):
        self.c = c
        self.d = contender_dir(stage, c.name)
        self.groups = []
        self.only = {}            # group -> the one workload it serves (contenders.py)
        self.tls = tls and not c.unsupported("h2")
        for i, (argv, sig, *only) in enumerate(c.commands(stage, self.d, modules, tls=self.tls)):
            name = Path(argv[0]).name
            if any(Path(g.argv[0]).name == name for g in self.groups):
                name += str(i)
            g = procs.Group(argv, self.d / f"{name}.out",
                            env=contenders.SERVER_ENV, cwd=str(self.d), stop_signal=sig)
            self.groups.append(g)
            if only:
                self.only[g] = only[0]

    def pids(self, workload=None):
        """Every process of the contender; with workload, those that serve it."""
        groups = self.groups
        if workload is not None:
            own = [g for g in groups if self.only.get(g) == workload]
            groups = own or [g for g in groups if g not in self.only]
        return procs.session_pids([g.sid for g in groups])

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.c.port}/hello"
        while time.monotonic() < deadline:
            dead = [g for g in self.groups if not g.alive()]
            if dead:
                return f"exited at start ({dead[0].argv[0]} status {dead[0].proc.returncode})"
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    # With the h2 workload, the TLS listener must accept connections too.
                    if r.status == 200 and (not self.tls or not port_free(self.c.tls_port)):
                        return None
            except OSError:
                pass
            time.sleep(0.1)
        tls = f" (and TLS port {self.c.tls_port})" if self.tls else ""
        return f"not answering {url}{tls} after {timeout}s"

    def stop(self):
        killed = []
        for g in reversed(self.groups):
            killed += g.stop()
        return killed


def measure(run, workload, scripts, seconds):
    """One measured wrk run with CPU and memory sampling around it."""
    pids = run.pids(workload)
    peak = {"rss": 0, "pss": 0, "procs": 0}
    stop = threading.Event()

    def sample():
        while True:
            ps = run.pids(workload)
            rss, pss = procs.memory_kib(ps)
            if rss > peak["rss"]:
                peak["rss"], peak["procs"] = rss, len(ps)
            peak["pss"] = max(peak["pss"], pss)
            if stop.wait(0.25):
                return

    cpu0 = procs.cpu_seconds(pids)
    busy0, self0, t0 = procs.machine_busy_seconds(), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    r, wrk_cpu, out = workloads.run(run.c.port, run.c.tls_port, workload, scripts, seconds)
    stop.set()
    sampler.join()
    cpu1 = procs.cpu_seconds(run.pids(workload))
    busy1, self1, t1 = procs.machine_busy_seconds(), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    if r is None:
        return None, out
    server_cpu = procs.cpu_delta(cpu0, cpu1)
    harness_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    other = (busy1 - busy0) - server_cpu - wrk_cpu - harness_cpu
    r.update(server_cpu_s=server_cpu, wrk_cpu_s=wrk_cpu,
             cpu_us_per_req=server_cpu / r["all_requests"] * 1e6 if r["all_requests"] else None,
             peak_rss_kib=peak["rss"], peak_pss_kib=peak["pss"], procs=peak["procs"],
             other_cpu_pct=max(0.0, other) / ((t1 - t0) * procs.NCPU) * 100)
    return r, out


def serve(a, allc, modules):
    c = next((c for c in allc if c.name == a.serve), None)
    if c is None:
        sys.exit(f"unknown contender {a.serve} (known: {', '.join(x.name for x in allc)})")
    modules = c.modules_dir or modules
    why = c.missing(modules)
    if why:
        sys.exit(f"{c.name}: {why}")
    stage = make_stage(tls=True)
    write_scripts(str(stage / "wrk"))
    running = Running(c, stage, modules, tls=True)
    try:
        err = running.wait_ready()
        if err:
            print(f"{c.name}: {err}\n{log_tail(running.d)}")
            return 1
        tls = "" if c.unsupported("h2") else f", https://127.0.0.1:{c.tls_port}/ (h2)"
        print(f"{c.name} on http://127.0.0.1:{c.port}/ (hello, 64k, stream, post, environ){tls}; "
              f"pids {sorted(running.pids())}; wrk scripts in {stage}/wrk; Ctrl-C stops it", flush=True)
        while all(g.alive() for g in running.groups):
            time.sleep(0.5)
        print(f"{c.name}: a process group exited\n{log_tail(running.d)}")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        running.stop()
        shutil.rmtree(stage, ignore_errors=True)


def stop_and_keep_logs(running, rows, c, rep, out_dir):
    """Stop a measured instance; keep its logs when one of its runs had errors."""
    killed = running.stop()
    tls = running.tls
    if any(r["errors"] for r in rows
           if r["contender"] == c.name and r["rep"] == rep and r.get("tls") == tls):
        keep = out_dir / "logs" / f"{c.name}-rep{rep + 1}{'-tls' if tls else ''}"
        (out_dir / "logs").mkdir(exist_ok=True)
        shutil.copytree(running.d / "logs", keep, dirs_exist_ok=True)
        for f in running.d.glob("*.out"):
            shutil.copy(f, keep)
        print(f"  {c.name}: errors in this repetition; its logs are in {keep}", flush=True)
    if killed:
        print(f"  {c.name}: killed {killed} after the stop timeout", flush=True)


def main(argv):
    a = parse_args(argv)
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the running contender is still stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    allc = contenders.all_contenders()
    if a.baseline:
        allc = contenders.with_baseline(allc, Path(a.baseline))
    if a.list:
        print("contenders:", ", ".join(c.name for c in allc))
        print("workloads: ", ", ".join(WORKLOADS))
        for c in allc:
            na = [f"{w} ({c.unsupported(w)})" for w in WORKLOADS if c.unsupported(w)]
            if na:
                print(f"  {c.name}: n/a: {'; '.join(na)}")
        return 0
    names = select(a.only, [c.name for c in allc], "contender")
    chosen = [c for c in allc if c.name in names]
    wls = select(a.workloads, list(WORKLOADS), "workload")
    modules = Path(a.modules)
    if os.geteuid() != 0:
        sys.exit("bench: run as root (Apache and nginx switch to www-data)")

    # One run at a time on this machine: the ports are fixed and two runs would measure each other.
    lock = open("/tmp/oxwsgi-bench.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("bench: another bench run holds /tmp/oxwsgi-bench.lock; waiting for it", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)

    if a.serve:
        return serve(a, allc, modules)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(a.out) if a.out else BENCH / "results" / stamp
    out_dir.mkdir(parents=True, exist_ok=True)

    status = {}
    active = []
    for c in chosen:
        why = c.missing(c.modules_dir or modules)
        if why:
            status[c.name] = why
            print(f"{c.name}: {why}", flush=True)
        elif not port_free(c.port) or ("h2" in wls and not c.unsupported("h2")
                                       and not port_free(c.tls_port)):
            status[c.name] = f"port {c.port} or {c.tls_port} already in use"
            print(f"{c.name}: {status[c.name]}", flush=True)
        else:
            active.append(c)
    per_start = len(wls) * (a.warmup + a.duration) + 4
    print(f"bench: {len(active)} contenders x {len(wls)} workloads x {a.reps} reps, "
          f"about {len(active) * a.reps * per_start // 60 + 1} min; results in {out_dir}", flush=True)

    meta = {"command": "bench/run.sh " + " ".join(argv), "started": stamp, "uptime_before": uptime(),
            "reps": a.reps, "duration": a.duration, "warmup": a.warmup, "workloads": wls,
            "contenders": [c.name for c in chosen], "kinds": {c.name: c.kind for c in allc},
            "ceilings": {c.name: c.ceiling for c in allc},
            "na": {c.name: {w: c.unsupported(w) for w in wls if c.unsupported(w)} for c in chosen},
            "machine": f"{procs.NCPU} CPUs, {os.uname().release}"}
    print(meta["uptime_before"], flush=True)
    stage = make_stage(tls="h2" in wls)
    scripts = write_scripts(str(stage / "wrk"))
    rows = []
    checked = set()
    running = None
    t_start = time.monotonic()
    try:
        for rep in range(a.reps):
            for c in list(active):
                mods = c.modules_dir or modules
                # Workloads on a start without TLS, then h2 on a start with it: the TLS listener
                # (mod_ssl + mod_http2, nginx's ssl server) stays out of the other workloads.
                phases = [(tls, [w for w in wls if not c.unsupported(w)
                                 and (WORKLOADS[w].tool == "h2") == tls]) for tls in (False, True)]
                phases = [(tls, ws) for tls, ws in phases if ws]
                err = None
                if c.name not in checked:
                    checked.add(c.name)
                    running = Running(c, stage, mods, tls=any(tls for tls, _ in phases))
                    err = running.wait_ready()
                    if err is None:
                        failures = [f for f in (check.check(c, w) for _, ws in phases for w in ws) if f]
                        if failures:
                            err = "failed the correctness check: " + "; ".join(failures)
                    # After a check of flask/django (imported into a process) or with the TLS
                    # listener, the measured instances are fresh starts.
                    if err is None and (running.tls or LATE_IMPORTS & set(wls)):
                        running.stop()
                        running = None
                for tls, ws in phases:
                    if err:
                        break
                    if running is not None and running.tls != tls:
                        stop_and_keep_logs(running, rows, c, rep, out_dir)
                        running = None
                    if running is None:
                        running = Running(c, stage, mods, tls=tls)
                        err = running.wait_ready()
                        if err:
                            break
                    for w in ws:
                        pinned = WORKLOADS[w].pinned
                        if pinned:
                            procs.pin(running.pids(), {0})
                        if a.warmup:
                            measure(running, w, scripts, a.warmup)
                        r, out = measure(running, w, scripts, a.duration)
                        if pinned:
                            procs.unpin(running.pids())
                        if r is None:
                            print(f"  {c.name} {w}: no result:\n{out}", flush=True)
                            r = {"rps": 0.0, "requests": 0, "errors": -1}
                        r.update(contender=c.name, workload=w, rep=rep, tls=tls)
                        rows.append(r)
                        print(f"  rep {rep + 1}/{a.reps} {c.name:20} {w:9} {r['rps']:>10,.0f} req/s"
                              + (f"  {r['cpu_us_per_req']:7.1f} us/req  p99 {r['p99_us'] / 1000:.2f} ms"
                                 if r.get("cpu_us_per_req") else "")
                              + (f"  errors {r['errors']}" if r["errors"] else "")
                              + (f"  (+{r['slow_requests']} slow)" if "slow_requests" in r else ""),
                              flush=True)
                if err:
                    tail = log_tail(running.d) if running else ""
                    if running:
                        running.stop()
                    running = None
                    status[c.name] = err
                    active.remove(c)
                    print(f"{c.name}: {err}\n{tail}", flush=True)
                    (out_dir / f"{c.name}.log").write_text(f"{err}\n{tail}\n")
                    continue
                stop_and_keep_logs(running, rows, c, rep, out_dir)
                running = None
                status.setdefault(c.name, "ok")
    except KeyboardInterrupt:
        print("bench: interrupted; stopping the running contender", flush=True)
        meta["interrupted"] = True
    finally:
        if running is not None:
            running.stop()
        if not a.keep_stage:
            shutil.rmtree(stage, ignore_errors=True)
        else:
            print(f"stage kept: {stage}")
    meta["uptime_after"] = uptime()
    meta["wall_s"] = round(time.monotonic() - t_start)
    print(meta["uptime_after"], flush=True)
    report.write(out_dir, meta, status, rows)
    print(f"bench: {meta['wall_s']} s; report: {out_dir / 'results.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

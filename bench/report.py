"""results.md (markdown tables), rows.json and chart.png from the measured rows."""

import json
import statistics
from pathlib import Path

COLUMNS_NOTE = """\
- **req/s**: median over the interleaved repetitions; spread = min-max.
- **vs best peer**: req/s divided by the best non-oxwsgi WSGI server on that workload
  (mod_wsgi embedded/daemon, uWSGI, gunicorn, Granian, bjoern, pyruvate). **vs ceiling**: divided by the static ceiling
  of the same front server (apache-static for the Apache contenders, nginx-static for the others).
- **p50/p99**: wrk's latency percentiles (median over reps). At -c32 on 2 CPUs p99 is mostly scheduler noise.
- **CPU us/req**: utime+stime of all the contender's processes (from /proc/<pid>/stat) during the run,
  divided by the requests served: the steadiest per-request cost on a box that wrk shares.
- **RSS/PSS**: the peak during the measured runs of the sum over the contender's processes
  (/proc/<pid>/smaps_rollup); procs = how many processes. PSS splits shared pages fairly.
- **other CPU %**: machine CPU busy time not used by the contender, wrk or the harness, as % of all CPUs
  (max over reps): noise from anything else running on the box.
- **n/a**: the contender cannot serve that workload (see the status lines); not a failure.
- **mixed**: req/s and p50/p99 of the fast requests (GET /hello, -c32) while a second wrk keeps
  4 requests to /sleep100 (100 ms) in flight; CPU us/req divides by fast + slow requests.
- **h2**: h2load over TLS, ALPN h2, 8 connections x 4 streams; p50/p99 from its per-request log.
"""


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(rows):
    """{(contender, workload): aggregated dict}."""
    by = {}
    for r in rows:
        by.setdefault((r["contender"], r["workload"]), []).append(r)
    agg = {}
    for key, rs in by.items():
        rps = [r["rps"] for r in rs]
        agg[key] = {
            "rps": _med(rps), "min": min(rps), "max": max(rps), "n": len(rs),
            "p50_us": _med([r.get("p50_us") for r in rs]), "p99_us": _med([r.get("p99_us") for r in rs]),
            "errors": sum(max(0, r.get("errors", 0)) for r in rs),
            "failed_runs": sum(1 for r in rs if r.get("errors", 0) < 0),
            "cpu_us": _med([r.get("cpu_us_per_req") for r in rs]),
            "rss": max(r.get("peak_rss_kib", 0) for r in rs) / 1024,
            "pss": max(r.get("peak_pss_kib", 0) for r in rs) / 1024,
            "procs": max(r.get("procs", 0) for r in rs),
            "other": max(r.get("other_cpu_pct", 0) for r in rs),
            "slow_rps": _med([r["slow_requests"] / (r["duration_us"] / 1e6)
                              for r in rs if r.get("slow_requests") is not None]),
        }
    return agg


def _fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def write(out_dir, meta, status, rows):
    out_dir = Path(out_dir)
    (out_dir / "rows.json").write_text(json.dumps({"meta": meta, "status": status, "rows": rows}, indent=1))
    agg = summarize(rows)
    kinds, ceilings = meta["kinds"], meta["ceilings"]
    na = meta.get("na", {})

    def missing_cell(n, w):
        return "n/a" if na.get(n, {}).get(w) else "-"

    names = [n for n in meta["contenders"] if any((n, w) in agg for w in meta["workloads"])]
    wls = [w for w in meta["workloads"] if any((n, w) in agg for n in names)]

    def best_peer(w):
        vals = [agg[(n, w)]["rps"] for n in names if kinds[n] == "peer" and (n, w) in agg]
        return max(vals) if vals else None

    def ceiling(n, w):
        c = agg.get((ceilings[n], w))
        return c["rps"] if c else None

    md = [f"# oxwsgi benchmark {meta['started']}", "",
          f"Command: `{meta['command']}` ({meta['reps']} interleaved reps, {meta['warmup']} s warm-up + "
          f"{meta['duration']} s per run, {meta.get('wall_s', '?')} s wall). Machine: {meta['machine']}.", "",
          f"- uptime before: `{meta['uptime_before']}`",
          f"- uptime after: `{meta.get('uptime_after', '?')}`", ""]
    md += ["| contender | status |", "|---|---|"]
    md += [f"| {n} | {status.get(n, 'not run')}"
           + "".join(f"; {w}: n/a ({why})" for w, why in na.get(n, {}).items()) + " |"
           for n in meta["contenders"]]
    md += ["", "## Requests/sec (median); in brackets: vs best peer / vs ceiling", ""]
    md += ["| contender | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)]
    for n in names:
        cells = []
        for w in wls:
            a = agg.get((n, w))
            if not a:
                cells.append(missing_cell(n, w))
                continue
            extra = "" if kinds[n] == "ceiling" else \
                f" ({_ratio(a['rps'], best_peer(w))} / {_ratio(a['rps'], ceiling(n, w))})"
            cells.append(_fmt(a["rps"]) + extra)
        md.append(f"| {n} | " + " | ".join(cells) + " |")
    md += ["", "## Server CPU us/request (median)", ""]
    md += ["| contender | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)]
    for n in names:
        md.append(f"| {n} | " + " | ".join(_fmt(agg[(n, w)]["cpu_us"], 1) if (n, w) in agg
                                          else missing_cell(n, w) for w in wls) + " |")
    md += ["", "## p50 / p99 latency ms (median); mixed: the fast requests'", ""]
    md += ["| contender | " + " | ".join(wls) + " |", "|---|" + "---:|" * len(wls)]
    for n in names:
        md.append(f"| {n} | " + " | ".join(
            f"{_fmt(agg[(n, w)]['p50_us'] and agg[(n, w)]['p50_us'] / 1000, 2)} / "
            f"{_fmt(agg[(n, w)]['p99_us'] and agg[(n, w)]['p99_us'] / 1000, 1)}"
            if (n, w) in agg else missing_cell(n, w) for w in wls) + " |")
    for w in wls:
        md += ["", f"## {w}", "",
               "| contender | req/s | spread | vs best peer | vs ceiling | p50 ms | p99 ms | errors | "
               "CPU us/req | peak RSS MiB (procs) | peak PSS MiB | other CPU % |",
               "|---|" + "---:|" * 11]
        for n in names:
            a = agg.get((n, w))
            if not a:
                continue
            ratio_peer = _ratio(a["rps"], best_peer(w))
            ratio_ceil = "-" if kinds[n] == "ceiling" else _ratio(a["rps"], ceiling(n, w))
            errs = str(a["errors"]) + (f" ({a['failed_runs']} runs failed)" if a["failed_runs"] else "")
            md.append(f"| {n} | {_fmt(a['rps'])} | {_fmt(a['min'])}-{_fmt(a['max'])} | {ratio_peer} | "
                      f"{ratio_ceil} | {_fmt(a['p50_us'] and a['p50_us'] / 1000, 3)} | "
                      f"{_fmt(a['p99_us'] and a['p99_us'] / 1000, 3)} | {errs} | {_fmt(a['cpu_us'], 1)} | "
                      f"{_fmt(a['rss'], 1)} ({a['procs']}) | {_fmt(a['pss'], 1)} | {_fmt(a['other'], 1)} |")
        if w == "mixed":
            md += ["", "Slow requests (GET /sleep100, 4 in flight) served per second, median: "
                   + ", ".join(f"{n} {_fmt(agg[(n, w)]['slow_rps'], 1)}" for n in names if (n, w) in agg)
                   + " (at most 40/s: 4 connections x 10 per second)."]
    md += ["", "## Columns", "", COLUMNS_NOTE]
    (out_dir / "results.md").write_text("\n".join(md) + "\n")
    if not names or not wls:
        return
    try:
        chart(out_dir / "chart.png", meta, names, wls, agg)
    except ImportError as e:
        print(f"report: no chart ({e}); run through bench/run.sh for the bench venv's matplotlib")


COLORS = {"ceiling": "#9e9e9e", "oxwsgi": "#e6550d", "peer": "#3182bd"}


def chart(path, meta, names, wls, agg):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = meta["kinds"]
    rows = [sum(1 for n in names if (n, w) in agg) for w in wls]
    fig, axes = plt.subplots(len(wls), 2, figsize=(12, 1.0 + sum(max(1.4, 0.32 * r + 0.6) for r in rows)),
                             squeeze=False, gridspec_kw={"height_ratios": [max(r, 2) for r in rows]})
    for i, w in enumerate(wls):
        ns = [n for n in names if (n, w) in agg]
        ys = list(range(len(ns)))[::-1]
        colors = [COLORS[kinds[n]] for n in ns]
        rps = [agg[(n, w)]["rps"] for n in ns]
        err = [[r - agg[(n, w)]["min"] for n, r in zip(ns, rps)],
               [agg[(n, w)]["max"] - r for n, r in zip(ns, rps)]]
        ax = axes[i][0]
        ax.barh(ys, rps, xerr=err, color=colors, capsize=2)
        ax.set_yticks(ys, ns, fontsize=8)
        ax.set_title(f"{w}: requests/s (median, min-max)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        for y, r in zip(ys, rps):
            ax.text(r, y, f" {r:,.0f}", va="center", fontsize=7)
        ax = axes[i][1]
        if w == "mixed":      # what issue 14 asks of mixed: the fast requests' p99
            cpu = [(agg[(n, w)]["p99_us"] or 0) / 1000 for n in ns]
            title = f"{w}: fast requests' p99 ms (lower is better)"
        else:
            cpu = [agg[(n, w)]["cpu_us"] or 0 for n in ns]
            title = f"{w}: server CPU us/request (lower is better)"
        ax.barh(ys, cpu, color=colors)
        ax.set_yticks(ys, ns, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        for y, c in zip(ys, cpu):
            ax.text(c, y, f" {c:,.1f}", va="center", fontsize=7)
    fig.suptitle(f"oxwsgi benchmark {meta['started']} ({meta['reps']} reps x {meta['duration']} s; "
                 "grey = ceiling, orange = oxwsgi, blue = peers)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)

"""Process groups and /proc readings for the benchmark harness.

Every command of a contender is started in its own session (setsid), so that its
processes -- Apache children, nginx workers, uWSGI/gunicorn/Granian workers -- are
found by session id, measured together, and stopped together.
"""

import os
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def _stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return raw[raw.rindex(")") + 2:].split()


def session_pids(sids):
    """Live (non-zombie) processes whose session id is one of sids."""
    sids = set(sids)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            st = _stat_fields(name)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if st[0] != "Z" and int(st[3]) in sids:
            found.append(int(name))
    return found


def cpu_seconds(pids):
    """{pid: utime+stime in seconds} (all threads of each process)."""
    out = {}
    for pid in pids:
        try:
            st = _stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[pid] = (int(st[11]) + int(st[12])) / CLK_TCK
    return out


def cpu_delta(before, after):
    """CPU seconds spent between two cpu_seconds() snapshots; processes that appeared count from 0."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def memory_kib(pids):
    """(sum of Rss, sum of Pss) in KiB over pids, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return rss, pss


def machine_busy_seconds():
    """CPU seconds the whole machine spent not idle (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def pin(pids, cpus):
    """Set the CPU affinity of every thread of pids."""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, OSError):
                pass


def unpin(pids):
    pin(pids, set(range(NCPU)))


class Group:
    """One command started in its own session; stop() ends every process of it."""

    def __init__(self, argv, log_path, env=None, cwd=None, stop_signal=signal.SIGTERM):
        self.argv = argv
        self.stop_signal = stop_signal
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                     start_new_session=True)
        self.sid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=15):
        """Signal the leader, then the whole session; SIGKILL what is left. Returns survivors killed."""
        killed = []
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, self.stop_signal)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.proc.poll()                      # reap the leader as soon as it exits
            if not session_pids([self.sid]):
                break
            time.sleep(0.05)
        else:
            for pid in session_pids([self.sid]):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        return killed

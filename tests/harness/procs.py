"""Process bookkeeping by pid, read from /proc. The harness only ever signals
pids of servers it started itself (the master from the pid file or Popen, and
that master's children), never processes found by a broad name."""

import os
import signal
import socket
import time


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie has exited; it only waits to be reaped by its parent.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return out


def with_cmdline(fragment):
    """Pids whose command line contains `fragment` (used with the unique,
    absolute config path of one stage: Apache children inherit the parent's
    argv, so this finds exactly the processes of that one server)."""
    out = []
    needle = fragment.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    out.append(int(d))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_gone(pids, timeout):
    """Wait until none of `pids` is alive; return the survivors."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def kill_survivors(pids):
    for p in pids:
        signal_pid(p, signal.SIGKILL)
    return wait_gone(pids, 5)


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

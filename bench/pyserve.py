"""Start bjoern or pyruvate with PROCS processes, as their users run them.

    pyserve.py bjoern PORT PROCS APPDIR
    pyserve.py pyruvate SOCKDIR PROCS APPDIR THREADS

Runs on the bench venv's Python, already as www-data (the harness starts it under setpriv).
The app (APPDIR/app.py) is imported once, then PROCS-1 children are forked (one process
per core). The children die with the first process (PR_SET_PDEATHSIG), which the harness
stops with SIGTERM (default action: exit).

- bjoern 3 (C, libev, one thread per process), on 127.0.0.1:PORT: every process binds its
  own SO_REUSEPORT socket (bjoern.run(app, host, port, reuse_port=True)), so the kernel
  spreads connections over the processes.
- pyruvate (Rust, mio event loop + THREADS worker threads per process), behind nginx:
  process i serves the unix socket SOCKDIR/pyruvate<i>.sock (nginx's upstream lists them
  all). Keep-alive stays off, pyruvate's default (max_reuse_count=0, "Connection: close"):
  with max_reuse_count=255 (its largest, an 8-bit setting), pyruvate 1.6.1 answered the
  first request of a connection and never the second one (http.client timed out after 3 s;
  wrk got 1 request/s per connection), on TCP, with or without systemd socket activation.
  Served directly on TCP without keep-alive, every request is a new connection: at ~10k
  requests/s the 28k local ports of loopback were soon taken by connections in TIME_WAIT
  (14k still there after a run), connects then waited for 1 s SYN retransmits (flask: p99
  969 ms, 203 req/s, in a run where it had done 3.5k), and the contenders measured next
  met the same. Over unix sockets no TIME_WAIT is left behind.
"""

import ctypes
import logging
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _fork_children(n):
    """Fork n children; returns 0 in the parent and 1..n in the children."""
    parent = os.getpid()
    for i in range(1, n + 1):
        if os.fork() == 0:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:        # the parent exited before the prctl
                os._exit(0)
            return i
    return 0


def main(argv):
    server, where, nprocs, appdir = argv[0], argv[1], int(argv[2]), argv[3]
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, appdir)
    from app import application
    if server == "bjoern":
        import bjoern
        _fork_children(nprocs - 1)
        bjoern.run(application, "127.0.0.1", int(where), reuse_port=True)
    elif server == "pyruvate":
        import pyruvate
        threads = int(argv[4])
        i = _fork_children(nprocs - 1)
        path = os.path.join(where, f"pyruvate{i}.sock")
        if os.path.exists(path):
            os.unlink(path)
        pyruvate.serve(application, path, threads, max_reuse_count=0, keepalive_timeout=30,
                       async_logging=True)
    else:
        sys.exit(f"pyserve.py: unknown server {server}")


if __name__ == "__main__":
    main(sys.argv[1:])

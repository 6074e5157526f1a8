"""Start bjoern or pyruvate on 127.0.0.1:PORT with PROCS processes, as their users run them.

    pyserve.py bjoern PORT PROCS APPDIR
    pyserve.py pyruvate PORT PROCS APPDIR THREADS

Runs on the bench venv's Python, already as www-data (the harness starts it under setpriv).
The app (APPDIR/app.py) is imported once, then PROCS-1 children are forked; every process
binds its own SO_REUSEPORT socket, so the kernel spreads connections over the processes
(one process per core). The children die with the first process (PR_SET_PDEATHSIG), which
the harness stops with SIGTERM (default action: exit).

- bjoern 3 (C, libev, one thread per process): bjoern.run(app, host, port, reuse_port=True).
- pyruvate (Rust, mio event loop + THREADS worker threads per process): the socket is
  handed over by systemd's socket-activation protocol (fd 3, LISTEN_FDS=1, LISTEN_PID),
  the only way pyruvate takes a socket it did not bind. Keep-alive stays off, pyruvate's
  default (max_reuse_count=0: "Connection: close", wrk reconnects for every request): with
  max_reuse_count=255 (its largest, an 8-bit setting), pyruvate 1.6.1 answers the first
  request of a connection and leaves the second one unanswered (http.client timed out after
  3 s; wrk got 1 request/s per connection), with or without socket activation.
"""

import ctypes
import logging
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


def _fork_children(n):
    """Fork n children; returns in the parent and in each child."""
    parent = os.getpid()
    for _ in range(n):
        if os.fork() == 0:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:        # the parent exited before the prctl
                os._exit(0)
            return


def main(argv):
    server, port, nprocs, appdir = argv[0], int(argv[1]), int(argv[2]), argv[3]
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, appdir)
    from app import application
    if server == "bjoern":
        import bjoern
        _fork_children(nprocs - 1)
        bjoern.run(application, "127.0.0.1", port, reuse_port=True)
    elif server == "pyruvate":
        import pyruvate
        threads = int(argv[4])
        _fork_children(nprocs - 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1024)
        if s.fileno() != 3:
            os.dup2(s.fileno(), 3)
            s.close()
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        pyruvate.serve(application, None, threads, max_reuse_count=0,
                       keepalive_timeout=30, async_logging=True)
    else:
        sys.exit(f"pyserve.py: unknown server {server}")


if __name__ == "__main__":
    main(sys.argv[1:])

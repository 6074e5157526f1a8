"""A fresh, self-contained directory under /tmp per server run.

Everything a server loads (apps, frameworks, the module .so, the config) is
copied here so that the unprivileged worker user can read it, and the server's
pid file, logs and state live here so that runs never collide.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import paths

# Deterministic content served by the file_wrapper endpoints; the tests
# recompute it with sample_bytes() to compare.
SAMPLE_SIZE = 1024 * 1024 + 4099  # not a multiple of any block size


def sample_bytes(size=SAMPLE_SIZE):
    out = bytearray()
    block = b"oxwsgi-sample"
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _ignore(_dir, names):
    return [n for n in names if n in ("__pycache__",) or n.endswith(".pyc")]


class Stage:
    def __init__(self, name):
        self.root = Path(tempfile.mkdtemp(prefix=f"oxwsgi-{name}-", dir="/tmp"))
        self.root.chmod(0o755)
        self.apps = self.root / "apps"
        self.frameworks = self.root / "frameworks"
        self.logs = self.root / "logs"
        self.run = self.root / "run"
        self.modules = self.root / "modules"
        # World-writable on purpose: apps running as www-data record facts here
        # (close() was called, peak RSS, sqlite DB) for the tests to read.
        self.state = self.root / "state"
        self.tmp = self.root / "tmp"

    def populate(self):
        shutil.copytree(paths.APPS_DIR, self.apps, ignore=_ignore)
        shutil.copytree(paths.FRAMEWORKS_DIR, self.frameworks, ignore=_ignore)
        for d in (self.logs, self.run, self.modules, self.tmp, self.root / "htdocs"):
            d.mkdir(exist_ok=True)
        self.state.mkdir()
        # A static file the server serves itself (Apache's DocumentRoot; an nginx location).
        (self.root / "htdocs" / "static.txt").write_text("static file served by the server\n")
        data = self.apps / "data"
        data.mkdir(exist_ok=True)
        (data / "sample.bin").write_bytes(sample_bytes())
        self.make_readable()
        self.state.chmod(0o1777)
        self.tmp.chmod(0o1777)

    def make_readable(self):
        subprocess.run(["chmod", "-R", "a+rX", str(self.root)], check=True)

    def copy_module(self, filename):
        """Copy a built module from OXWSGI_MODULE_DIR; fail loudly if absent."""
        src = paths.MODULE_DIR / filename
        if not src.is_file():
            raise FileNotFoundError(
                f"module {src} does not exist: build it first (cargo build, see README), "
                f"or set OXWSGI_MODULE_DIR to the directory holding {filename}, "
                f"or drop this server from OXWSGI_SERVERS")
        dst = self.modules / filename
        shutil.copy2(src, dst)
        dst.chmod(0o755)
        return dst

    def prepare_django(self):
        """Create the Django sqlite DB and the admin user, as root with the venv
        python, before the server starts; then hand it to the worker user."""
        manage = self.frameworks / "django_project" / "manage.py"
        env = dict(os.environ, DJANGO_SUPERUSER_PASSWORD="oxwsgi-admin-pw",
                   PYTHONDONTWRITEBYTECODE="1")
        for args in (["migrate", "--noinput", "-v", "0"],
                     ["createsuperuser", "--noinput", "--username", "admin",
                      "--email", "admin@example.invalid"]):
            r = subprocess.run([str(paths.VENV_PYTHON), str(manage), *args],
                               env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
        for f in self.state.iterdir():
            f.chmod(0o666)

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)

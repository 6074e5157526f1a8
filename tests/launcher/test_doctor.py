"""`oxwsgi doctor`: finds what breaks real deployments, and says how to fix it."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MODULE_FILES, OXWSGI, VENV, module_args, run_oxwsgi

PYENV = Path("/root/.pyenv/versions")


def other_python():
    """A Python of another minor version than the module's 3.11, if this machine has one."""
    if PYENV.is_dir():
        for d in sorted(PYENV.iterdir()):
            if d.name.startswith(("3.12", "3.13", "3.10")) and (d / "bin" / "python").exists():
                return d / "bin" / "python"
    return None


def test_healthy_setup(flask_project, server):
    r = run_oxwsgi("doctor", *module_args(server), "--python-home", VENV, "app.wsgi", cwd=flask_project)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "is built against Python 3.11" in out
    assert f"loads {MODULE_FILES[server]}" in out
    assert f"python-home {VENV}: virtualenv, Python 3.11" in out
    assert "imports and is callable" in out
    assert "no problems found" in out
    assert "FAIL" not in out


def test_venv_from_another_python_version(workdir):
    py = other_python()
    venv = workdir / "venv-other"
    if py is not None:
        subprocess.run([str(py), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    else:
        # No other interpreter here: a venv is recognised by its pyvenv.cfg.
        (venv / "bin").mkdir(parents=True)
        (venv / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("home = /usr/local/bin\nversion = 3.12.1\n")
    version = [l.split("=")[1].strip() for l in (venv / "pyvenv.cfg").read_text().splitlines()
               if l.startswith("version")][0]
    r = run_oxwsgi("doctor", *module_args("apache"), "--python-home", venv)
    assert r.returncode == 1, r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith("FAIL") and "virtualenv made with" in l)
    assert f"made with Python {version}" in line and "built against Python 3.11" in line
    assert f"fix: recreate it with the module's Python: /usr/bin/python3.11 -m venv --clear {venv}" in r.stdout
    # serve refuses it up front, with the same diagnosis and no stack trace.
    r = run_oxwsgi("serve", *module_args("apache"), "--python-home", venv, "--port", "0")
    assert r.returncode == 1
    assert f"--python-home {venv} is a virtualenv made with Python {version}, but" in r.stderr


def test_virtual_env_variable_is_the_default_home(workdir):
    venv = workdir / "venv-env"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.13.0\n")
    r = run_oxwsgi("doctor", *module_args("apache"), env={"VIRTUAL_ENV": str(venv)})
    assert r.returncode == 1
    assert f"python-home {venv} is a virtualenv made with Python 3.13.0" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker user differs from the invoking user only as root")
def test_venv_unreadable_by_workers(workdir):
    private = workdir / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    venv = private / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    r = run_oxwsgi("doctor", *module_args("apache"), "--python-home", venv)
    assert r.returncode == 1
    assert f"FAIL  python-home {venv} is not readable by the workers: user www-data cannot enter {private}" in r.stdout
    assert "fix: move the virtualenv under /opt or /srv" in r.stdout
    r = run_oxwsgi("serve", *module_args("apache"), "--python-home", venv, "--port", "0")
    assert r.returncode == 1
    assert f"--python-home {venv} is not readable by the workers: user www-data cannot enter {private}" in r.stderr


def test_app_that_fails_to_import(workdir):
    (workdir / "broken.wsgi").write_text("import not_installed_anywhere_xyz\n")
    (workdir / "broken.wsgi").chmod(0o644)
    r = run_oxwsgi("doctor", *module_args("apache"), "--python-home", VENV, "broken.wsgi", cwd=workdir)
    assert r.returncode == 1
    assert "fails to import" in r.stdout
    assert "ModuleNotFoundError: No module named 'not_installed_anywhere_xyz'" in r.stdout


def test_missing_server(workdir):
    r = run_oxwsgi("doctor", "--server", "nginx", env={"OXWSGI_NGINX_BIN": "/nonexistent/nginx"})
    assert r.returncode == 1
    assert "FAIL  $OXWSGI_NGINX_BIN is /nonexistent/nginx" in r.stdout and "apt-get install nginx" in r.stdout


@pytest.mark.skipif(os.path.exists("/usr/lib/nginx/modules/ngx_http_oxwsgi_module.so"),
                    reason="the module is installed system-wide")
def test_missing_module(workdir):
    (workdir / "bin").mkdir()
    shutil.copy2(OXWSGI, workdir / "bin" / "oxwsgi")
    r = subprocess.run([str(workdir / "bin" / "oxwsgi"), "doctor", "--server", "nginx"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, OXWSGI_MODULE_DIR=str(workdir)))
    assert r.returncode == 1
    assert "FAIL  ngx_http_oxwsgi_module.so not found; looked in:" in r.stdout
    assert "make nginx" in r.stdout

"""Two applications in two daemon groups, each with its own virtualenv (python-home=)
holding a different version of one package: each sees its own. The venvs are made with
/usr/bin/python3.11 -m venv at set-up; the package (`pkgx`, 1.0 and 2.0, with its
dist-info) is written into each venv's site-packages, so the test needs no network."""

import subprocess
import textwrap

import pytest
import requests

from test_daemon import DaemonServer

APP = textwrap.dedent("""\
    import importlib.metadata, json, os, sys
    import pkgx

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"pkgx": pkgx.VERSION, "dist": importlib.metadata.version("pkgx"),
                            "file": pkgx.__file__, "prefix": sys.prefix, "pid": os.getpid(),
                            "group": environ["mod_wsgi.process_group"]}).encode()]
    """)

GROUPS = """
WSGIDaemonProcess v1 python-home={stage}/venv1 display-name=%{{GROUP}}
WSGIDaemonProcess v2 python-home={stage}/venv2 display-name=%{{GROUP}}
WSGIScriptAlias /one {stage}/site1/app.wsgi process-group=v1
WSGIScriptAlias /two {stage}/site2/app.wsgi process-group=v2
<Directory {stage}/site1>
    Require all granted
</Directory>
<Directory {stage}/site2>
    Require all granted
</Directory>
"""


def make_venv(path, version):
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    site = path / "lib" / "python3.11" / "site-packages"
    assert site.is_dir(), site
    (site / "pkgx").mkdir()
    (site / "pkgx" / "__init__.py").write_text(f'VERSION = "{version}"\n')
    dist = site / f"pkgx-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pkgx\nVersion: {version}\n")
    (dist / "RECORD").write_text("")


class VenvServer(DaemonServer):
    def write_config(self):
        for n, version in ((1, "1.0"), (2, "2.0")):
            make_venv(self.stage.root / f"venv{n}", version)
            site = self.stage.root / f"site{n}"
            site.mkdir()
            (site / "app.wsgi").write_text(APP)
        self.conf.write_text(self.config_text() + "\n" + self.extra.format(stage=self.stage.root))


@pytest.fixture(scope="module")
def srv():
    s = VenvServer("apache-daemon-venvs", GROUPS)
    s.start()
    s.wait_daemons(2)
    yield s
    s.stop()
    s.cleanup()


def test_each_group_sees_its_own_virtualenv_and_package_version(srv):
    got = {}
    for path, group in (("/one/", "v1"), ("/two/", "v2")):
        r = requests.get(srv.url(path), timeout=30)
        assert r.status_code == 200, (r.status_code, r.text[:300], srv.log_tail(20))
        got[group] = r.json()
        assert got[group]["group"] == group
        assert got[group]["pid"] in srv.daemons(group)
    venv1, venv2 = (str(srv.stage.root / f"venv{n}") for n in (1, 2))
    assert (got["v1"]["pkgx"], got["v1"]["dist"], got["v1"]["prefix"]) == ("1.0", "1.0", venv1)
    assert (got["v2"]["pkgx"], got["v2"]["dist"], got["v2"]["prefix"]) == ("2.0", "2.0", venv2)
    assert got["v1"]["file"].startswith(venv1 + "/") and got["v2"]["file"].startswith(venv2 + "/")

"""Where things are. Every path here can be moved with an environment variable
so that CI or a developer can point the suite elsewhere."""

import os
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
APPS_DIR = TESTS_DIR / "apps"
FRAMEWORKS_DIR = TESTS_DIR / "frameworks"

# The venv made by tests/setup-venv.sh; it is also WSGIPythonHome of the servers.
VENV = Path(os.environ.get("OXWSGI_TEST_VENV", "/opt/oxwsgi-test-venv"))
VENV_PYTHON = VENV / "bin" / "python"

# Where the Rust build leaves mod_oxwsgi.so and ngx_http_oxwsgi_module.so: this
# checkout's own build (a fixed path would silently test another checkout's modules).
MODULE_DIR = Path(os.environ.get("OXWSGI_MODULE_DIR", str(TESTS_DIR.parent / "target" / "modules")))

APACHE_BIN = os.environ.get("OXWSGI_APACHE_BIN", "/usr/sbin/apache2")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
MODWSGI_SO = APACHE_MODULES / "mod_wsgi.so"
NGINX_BIN = os.environ.get("OXWSGI_NGINX_BIN", "/usr/sbin/nginx")

# Unprivileged user the server workers run as.
RUN_USER = os.environ.get("OXWSGI_RUN_USER", "www-data")
RUN_GROUP = os.environ.get("OXWSGI_RUN_GROUP", "www-data")

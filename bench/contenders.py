"""The contenders: each one's generated config and start commands.

Every contender serves bench/app.py (or, for the two ceilings, static content with
the same bytes) on 127.0.0.1, with 2 processes: Apache event MPM 2 x 32 threads,
mod_wsgi daemon 2 x 16, nginx 2 workers (+ a 16-thread pool each for oxwsgi),
uWSGI 2 x 16, gunicorn gthread 2 x 16, Granian 2 workers x 16 blocking threads,
bjoern 2 processes x 1 thread, pyruvate (behind nginx) 2 processes x 16 worker threads.

When the run has the h2 workload, the stage has tls/ (a self-signed certificate), and for
h2 (only) every Apache and nginx contender is started again, also listening with TLS and
HTTP/2 on its tls_port (port + 20).
"""

import copy
import os
import shutil
import signal
import subprocess
from pathlib import Path

VENV = Path(os.environ.get("OXWSGI_BENCH_VENV", "/opt/oxwsgi-bench-venv"))
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
NGINX = "/usr/sbin/nginx"
UWSGI = "/usr/bin/uwsgi"
USER = "www-data"
SERVER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Apache's LogLevel (e.g. "info" to see why connections close); warn by default.
APACHE_LOGLEVEL = os.environ.get("OXWSGI_BENCH_APACHE_LOGLEVEL", "warn")

# ---------------------------------------------------------------- Apache

APACHE_BASE = """\
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{d}/run/httpd.pid"
DefaultRuntimeDir "{d}/run"
ErrorLog "{d}/logs/error.log"
LogLevel {loglevel}
User {user}
Group {user}
Timeout 30
KeepAlive On
KeepAliveTimeout 30
MaxKeepAliveRequests 0
EnableSendfile On

LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule mime_module {mods}/mod_mime.so
LoadModule alias_module {mods}/mod_alias.so
{load}

# Pinned MPM: 2 children x 32 threads, none forked or reaped mid-run.
StartServers 2
ServerLimit 2
ThreadLimit 32
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 1
MaxSpareThreads 64
MaxConnectionsPerChild 0

TypesConfig /etc/mime.types
<Directory />
    AllowOverride None
    Require all denied
</Directory>
DocumentRoot "{stage}/static"
<Directory "{stage}/static">
    Require all granted
</Directory>
<Directory "{stage}/app">
    Require all granted
</Directory>
{wsgi}
{tls}
"""

# The h2 workload: the same server, also on TLS with HTTP/2 (mod_ssl + mod_http2).
APACHE_TLS = """\
LoadModule ssl_module {mods}/mod_ssl.so
LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so
LoadModule http2_module {mods}/mod_http2.so
Listen 127.0.0.1:{tls_port}
SSLSessionCache shmcb:{d}/run/ssl_scache(512000)
<VirtualHost 127.0.0.1:{tls_port}>
    ServerName 127.0.0.1
    SSLEngine on
    SSLCertificateFile {stage}/tls/cert.pem
    SSLCertificateKeyFile {stage}/tls/key.pem
    Protocols h2 http/1.1
</VirtualHost>
"""

MODWSGI_EMBEDDED = """\
WSGIApplicationGroup %{{GLOBAL}}
WSGIPassAuthorization On
WSGIScriptAlias / {stage}/app/app.py
WSGIImportScript {stage}/app/app.py process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
"""

MODWSGI_DAEMON = """\
WSGIRestrictEmbedded On
WSGISocketPrefix {d}/run/wsgi
WSGIPassAuthorization On
WSGIDaemonProcess bench processes=2 threads=16 user={user} group={user}
WSGIScriptAlias / {stage}/app/app.py process-group=bench application-group=%{{GLOBAL}}
"""

# ---------------------------------------------------------------- nginx

NGINX_BASE = """\
daemon off;
master_process on;
user {user} {user};
worker_processes 2;
pid {d}/run/nginx.pid;
error_log {d}/logs/error.log warn;
{main}
events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    keepalive_timeout 30;
    keepalive_requests 1000000;
    client_body_buffer_size 2m;
    client_max_body_size 8m;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{http}
    server {{
        listen 127.0.0.1:{port};
        server_name 127.0.0.1;
{server}
    }}
{tls}
}}
"""

# The h2 workload: the same locations, also on TLS with HTTP/2.
NGINX_TLS = """\
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        server_name 127.0.0.1;
        ssl_certificate {stage}/tls/cert.pem;
        ssl_certificate_key {stage}/tls/key.pem;
{server}
    }}
"""

NGINX_STATIC_SERVER = """\
        location = /hello   {{ return 200 "Hello world!\\n"; }}
        location = /post    {{ return 200 "Hello world!\\n"; }}
        location = /environ {{ return 200 "Hello world!\\n"; }}
        location / {{ root {stage}/static; }}
"""

OXWSGI_NGINX_MAIN = """\
thread_pool default threads=16;
load_module {d}/ngx_http_oxwsgi_module.so;
"""
OXWSGI_NGINX_HTTP = """\
    wsgi_python_path {stage}/app;
    wsgi_import {stage}/app/app.py;
"""
OXWSGI_NGINX_SERVER = """\
        location / {{
            wsgi_app {stage}/app/app.py;
            wsgi_pass_authorization on;
        }}
"""

# oxwsgi's daemon mode on nginx: the same group shape as the mod_wsgi daemon contender
# (2 processes x 16 threads), the workers only forward (no thread pool, no Python in them).
OXWSGI_NGINX_DAEMON_MAIN = """\
load_module {d}/ngx_http_oxwsgi_module.so;
"""
OXWSGI_NGINX_DAEMON_HTTP = """\
    wsgi_daemon_process bench processes=2 threads=16 user={user} group={user} python_path={stage}/app;
"""
OXWSGI_NGINX_DAEMON_SERVER = """\
        location / {{
            wsgi_process_group bench;
            wsgi_app {stage}/app/app.py;
            wsgi_pass_authorization on;
        }}
"""

UWSGI_HTTP = """\
    upstream app {{ server unix:{d}/sock/uwsgi.sock; }}
"""
UWSGI_SERVER = """\
        location / {{
            include /etc/nginx/uwsgi_params;
            uwsgi_pass app;
            uwsgi_buffer_size 16k;
            uwsgi_buffers 64 16k;
            uwsgi_max_temp_file_size 0;
        }}
"""
UWSGI_INI = """\
[uwsgi]
plugins = python3
master = true
processes = 2
threads = 16
thunder-lock = true
disable-logging = true
die-on-term = true
need-app = true
uid = {user}
gid = {user}
socket = {d}/sock/uwsgi.sock
chmod-socket = 666
buffer-size = 32768
chdir = {stage}/app
wsgi-file = {stage}/app/app.py
"""

GUNICORN_HTTP = """\
    upstream app {{ server unix:{d}/sock/gunicorn.sock; keepalive 32; }}
"""
GUNICORN_SERVER = """\
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffer_size 16k;
            proxy_buffers 64 16k;
            proxy_max_temp_file_size 0;
        }}
"""
# pyruvate: one unix socket per process (pyserve.py), no upstream keep-alive (pyruvate's
# keep-alive does not work: pyserve.py says how it fails).
PYRUVATE_HTTP = """\
    upstream app {{
        # max_fails=0: a socket not yet there at start must not take its server out for 10 s.
        server unix:{d}/sock/pyruvate0.sock max_fails=0;
        server unix:{d}/sock/pyruvate1.sock max_fails=0;
    }}
"""
PYRUVATE_SERVER = """\
        location / {{
            proxy_pass http://app;
            proxy_set_header Host $host;
            proxy_buffer_size 16k;
            proxy_buffers 64 16k;
            proxy_max_temp_file_size 0;
        }}
"""

GUNICORN_CONF = """\
bind = "unix:{d}/sock/gunicorn.sock"
workers = 2
worker_class = "gthread"
threads = 16
keepalive = 30
user = "{user}"
group = "{user}"
umask = 0
preload_app = True
pythonpath = "{stage}/app"
accesslog = None
errorlog = "{d}/logs/gunicorn.log"
loglevel = "warning"
pidfile = "{d}/run/gunicorn.pid"
"""


class Contender:
    """name, kind ('ceiling', 'oxwsgi' or 'peer'), the ceiling it is compared with."""

    def __init__(self, name, kind, ceiling, port):
        self.name, self.kind, self.ceiling, self.port = name, kind, ceiling, port
        self.tls_port = port + 20                 # the h2 workload (TLS + ALPN h2)
        # Where this contender's module comes from, when not the run's --modules.
        self.modules_dir = None

    def missing(self, modules_dir):
        """Why this contender cannot run here, or None."""
        return None

    def unsupported(self, workload):
        """Why this contender has no figure for workload ("n/a" in the report), or None."""
        if workload == "mixed" and self.kind == "ceiling":
            return "static content: nothing sleeps"
        return None

    def commands(self, stage, d, modules_dir=None, tls=False):
        """Write the config under d; return [(argv, stop_signal)] started in order; with tls,
        also listen on tls_port with TLS and HTTP/2 (the h2 workload). An entry
        (argv, stop_signal, workload) is a process group that serves only that workload:
        it is measured alone on it, and left out of the others' measurements."""
        raise NotImplementedError

    def fmt(self, text, stage, d, **kw):
        return text.format(d=d, stage=stage, port=self.port, tls_port=self.tls_port, user=USER,
                           mods=APACHE_MODULES, **kw)


class Apache(Contender):
    def __init__(self, name, kind, port, wsgi="", so=None):
        super().__init__(name, kind, "apache-static", port)
        self.wsgi, self.so = wsgi, so

    def missing(self, modules_dir):
        if self.so == "mod_oxwsgi.so" and not (modules_dir / self.so).exists():
            return f"module missing ({modules_dir / self.so}: make apache)"
        if self.so == "mod_wsgi" and not (APACHE_MODULES / "mod_wsgi.so").exists():
            return "mod_wsgi missing (apt-get install libapache2-mod-wsgi-py3)"
        return None

    def commands(self, stage, d, modules_dir=None, tls=False):
        load = ""
        if self.so == "mod_wsgi":
            load = f"LoadModule wsgi_module {APACHE_MODULES}/mod_wsgi.so"
        elif self.so:
            shutil.copy(modules_dir / self.so, d / self.so)
            load = f"LoadModule oxwsgi_module {d / self.so}"
        conf = d / "httpd.conf"
        tls = self.fmt(APACHE_TLS, stage, d) if tls else ""
        conf.write_text(self.fmt(APACHE_BASE, stage, d, load=load, loglevel=APACHE_LOGLEVEL,
                                 wsgi=self.fmt(self.wsgi, stage, d), tls=tls))
        # SIGTERM stops Apache at once (children included).
        return [([APACHE, "-f", str(conf), "-DFOREGROUND"], signal.SIGTERM)]


class Nginx(Contender):
    def __init__(self, name, kind, port, main="", http="", server="", backend=None, so=None):
        super().__init__(name, kind, "nginx-static", port)
        self.main, self.http, self.server, self.backend, self.so = main, http, server, backend, so

    def missing(self, modules_dir):
        if self.so and not (modules_dir / self.so).exists():
            return f"module missing ({modules_dir / self.so}: make nginx)"
        if self.backend == "uwsgi" and not Path(UWSGI).exists():
            return "uwsgi missing (apt-get install uwsgi-core uwsgi-plugin-python3)"
        if self.backend == "gunicorn" and not (VENV / "bin/gunicorn").exists():
            return f"gunicorn missing ({VENV}: bench/setup.sh)"
        if self.backend == "pyruvate":
            return venv_import_missing("pyruvate")
        return None

    def commands(self, stage, d, modules_dir=None, tls=False):
        cmds = []
        if self.so:
            shutil.copy(modules_dir / self.so, d / self.so)
        if self.backend == "uwsgi":
            (d / "uwsgi.ini").write_text(self.fmt(UWSGI_INI, stage, d))
            cmds.append(([UWSGI, "--ini", str(d / "uwsgi.ini")], signal.SIGTERM))
        elif self.backend == "gunicorn":
            (d / "gunicorn.conf.py").write_text(self.fmt(GUNICORN_CONF, stage, d))
            cmds.append(([str(VENV / "bin/gunicorn"), "-c", str(d / "gunicorn.conf.py"),
                          "app:application"], signal.SIGTERM))
        elif self.backend == "pyruvate":
            cmds.append((pyserve_argv(d, "pyruvate", f"{d}/sock", f"{stage}/app", 16),
                         signal.SIGTERM))
        conf = d / "nginx.conf"
        server = self.fmt(self.server, stage, d)
        tls = self.fmt(NGINX_TLS, stage, d, server=server) if tls else ""
        conf.write_text(self.fmt(NGINX_BASE, stage, d, main=self.fmt(self.main, stage, d),
                                 http=self.fmt(self.http, stage, d), server=server, tls=tls))
        # -e keeps Debian's compiled-in /var/log/nginx/error.log out; SIGQUIT = graceful stop.
        cmds.append(([NGINX, "-p", f"{d}/", "-e", str(d / "logs/error.log"), "-c", str(conf)],
                     signal.SIGQUIT))
        return cmds


class Granian(Contender):
    def __init__(self, name, port):
        super().__init__(name, "peer", "nginx-static", port)

    def missing(self, modules_dir):
        if not (VENV / "bin/granian").exists():
            return f"granian missing ({VENV}: bench/setup.sh)"
        return None

    def commands(self, stage, d, modules_dir=None, tls=False):
        def argv(port, *extra):
            return ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
                    str(VENV / "bin/granian"), "--interface", "wsgi", "--host", "127.0.0.1",
                    "--port", str(port), "--workers", "2", "--blocking-threads", "16",
                    *extra, "--no-ws", "--log-level", "warning",
                    "--working-dir", f"{stage}/app", "app:application"]
        cmds = [(argv(self.port, "--http", "1"), signal.SIGTERM)]
        if tls:
            # One Granian instance has one address: the h2 workload gets a second instance
            # (2 workers x 16 threads as well) on TLS with HTTP/2 negotiated by ALPN; it is
            # measured alone on h2, and the first one alone on the other workloads.
            cmds.append((argv(self.tls_port, "--http", "auto",
                              "--ssl-certificate", f"{stage}/tls/cert.pem",
                              "--ssl-keyfile", f"{stage}/tls/key.pem"), signal.SIGTERM, "h2"))
        return cmds


class PyServer(Contender):
    """bjoern from the bench venv, started by bench/pyserve.py as www-data, serving
    HTTP/1.1 directly (no front server, as its users and issue 14's table run it):
    2 processes with SO_REUSEPORT, compared with nginx-static."""

    def __init__(self, name, server, port, threads=None):
        super().__init__(name, "peer", "nginx-static", port)
        self.server, self.threads = server, threads

    def missing(self, modules_dir):
        return venv_import_missing(self.server)

    def unsupported(self, workload):
        if workload == "h2":
            return f"{self.server} speaks HTTP/1.1 only"
        return super().unsupported(workload)

    def commands(self, stage, d, modules_dir=None, tls=False):
        return [(pyserve_argv(d, self.server, self.port, f"{stage}/app", self.threads),
                 signal.SIGTERM)]


def pyserve_argv(d, server, where, appdir, threads=None):
    """bench/pyserve.py (copied into d) starting server with 2 processes, as www-data."""
    shutil.copy(Path(__file__).resolve().parent / "pyserve.py", d / "pyserve.py")
    (d / "pyserve.py").chmod(0o644)
    return (["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
             str(VENV / "bin/python"), str(d / "pyserve.py"), server, str(where), "2", appdir]
            + ([str(threads)] if threads else []))


def venv_import_missing(module):
    """None if the bench venv's Python imports module, else why not (with the last error
    line of its failed install, bench/setup.sh)."""
    p = subprocess.run([str(VENV / "bin/python"), "-c", f"import {module}"],
                       capture_output=True, text=True)
    if p.returncode == 0:
        return None
    why = (p.stderr.strip().splitlines() or ["?"])[-1]
    log = VENV / "bench-install-failed" / f"{module}.log"
    if log.exists():
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
        errs = [x.strip() for x in lines if "error" in x.lower()]
        why = f"pip install failed: {(errs or lines or ['?'])[-1]} (full log: {log})"
    return f"{module} missing from {VENV}: {why}"


def all_contenders():
    """In run order: the ceilings first, then oxwsgi, then the peers."""
    p = iter(range(18401, 18500))
    return [
        Nginx("nginx-static", "ceiling", next(p), server=NGINX_STATIC_SERVER),
        Apache("apache-static", "ceiling", next(p)),
        Nginx("oxwsgi-nginx", "oxwsgi", next(p), main=OXWSGI_NGINX_MAIN, http=OXWSGI_NGINX_HTTP,
              server=OXWSGI_NGINX_SERVER, so="ngx_http_oxwsgi_module.so"),
        Apache("oxwsgi-apache", "oxwsgi", next(p), wsgi=MODWSGI_EMBEDDED, so="mod_oxwsgi.so"),
        Apache("modwsgi-embedded", "peer", next(p), wsgi=MODWSGI_EMBEDDED, so="mod_wsgi"),
        Apache("modwsgi-daemon", "peer", next(p), wsgi=MODWSGI_DAEMON, so="mod_wsgi"),
        Nginx("nginx-uwsgi", "peer", next(p), http=UWSGI_HTTP, server=UWSGI_SERVER, backend="uwsgi"),
        Nginx("nginx-gunicorn", "peer", next(p), http=GUNICORN_HTTP, server=GUNICORN_SERVER,
              backend="gunicorn"),
        Granian("granian", next(p)),
        # oxwsgi's daemon mode with mod_wsgi's own daemon configuration (drop-in).
        Apache("oxwsgi-apache-daemon", "oxwsgi", next(p), wsgi=MODWSGI_DAEMON, so="mod_oxwsgi.so"),
        PyServer("bjoern", "bjoern", next(p)),
        Nginx("nginx-pyruvate", "peer", next(p), http=PYRUVATE_HTTP, server=PYRUVATE_SERVER,
              backend="pyruvate"),
        Nginx("oxwsgi-nginx-daemon", "oxwsgi", next(p), main=OXWSGI_NGINX_DAEMON_MAIN,
              http=OXWSGI_NGINX_DAEMON_HTTP, server=OXWSGI_NGINX_DAEMON_SERVER,
              so="ngx_http_oxwsgi_module.so"),
        # New contenders go at the end, so that the others keep their ports.
    ]


def with_baseline(allc, modules_dir):
    """`allc` plus, for each oxwsgi contender, a copy NAME@baseline that loads the modules
    of an earlier build from `modules_dir` (same configuration, its own port), placed right
    after it so that both meet the same machine load in each repetition."""
    ports = iter(range(18450, 18500))
    out = []
    for c in allc:
        out.append(c)
        if c.kind == "oxwsgi":
            b = copy.copy(c)
            b.name, b.port, b.modules_dir = f"{c.name}@baseline", next(ports), modules_dir
            b.tls_port = b.port + 20
            out.append(b)
    return out

"""A corpus of published mod_wsgi configurations (issue 11): each entry cites where its
stanzas come from (project, file or URL, version). Each runs on Debian's mod_wsgi 4.9.4 and
on oxwsgi with only the LoadModule line changed (`LoadModule wsgi_module .../mod_oxwsgi.so`):
`apache2 -t` must accept the configuration with either module, and every request must get
the same status and body from both.

What is adapted, and nothing else (each entry's `adapted` says which of these it needed):
- paths: the published directories become directories of the test stage (`{d}`), log files
  go to the stage's logs, socket prefixes to its run directory;
- ports: `Listen` lines are dropped and `<VirtualHost *:80>`/`*:443`/`*:5000` become the
  test's one port (the harness listens on 127.0.0.1:port);
- accounts: `user=`/`group=` of a daemon group become the account Apache's workers run as
  (the published accounts do not exist here);
- the applications: a small stand-in WSGI script (it answers with the environ keys a
  configuration decides) replaces the project's application, which is not installed;
- lines that need a module not installed here (mod_auth_gssapi, mod_session, mod_ssl,
  mod_lookup_identity, mod_proxy) are left out, each named in `adapted`;
- `env`: what the distribution's own apache2.conf provides and the published file relies on
  (a `<Directory>` grant for the directory the package installs its script into) is written
  before the entry, outside the published stanzas.
Apache modules an entry's directives need (mod_headers, mod_expires,
mod_access_compat for `Order`/`Satisfy`, ...) are loaded with the entry."""

import subprocess
from dataclasses import dataclass

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

DUMP = """
import json, os
def application(environ, start_response):
    keys = ('SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'mod_wsgi.application_group',
            'mod_wsgi.process_group', 'HTTP_AUTHORIZATION', 'REMOTE_USER', 'wsgi.url_scheme')
    body = {k: environ.get(k) for k in keys}
    body['LANG'] = os.environ.get('LANG')
    body = json.dumps(body, sort_keys=True).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
"""

# Django's auth handler contract (django.contrib.auth.handlers.modwsgi.check_password).
DJANGO_AUTH = DUMP + """
def check_password(environ, username, password):
    if username != 'alice':
        return None
    return password == 'secret'
"""


@dataclass
class Entry:
    source: str
    adapted: str
    files: dict
    conf: str
    requests: list
    modules: tuple = ()
    env: str = ""


def basic(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


CORPUS = {
    # ---- embedded mode -------------------------------------------------------------------
    "django-docs": Entry(
        "Django 4.2 docs, How to use Django with Apache and mod_wsgi "
        "(docs/howto/deployment/wsgi/modwsgi.txt): root mount, <Files wsgi.py>, static Alias",
        "paths",
        {"mysite/mysite/wsgi.py": DUMP, "static/style.css": "body { color: red }\n"},
        """
WSGIScriptAlias / {d}/mysite/mysite/wsgi.py
<Directory {d}/mysite/mysite>
    <Files wsgi.py>
        Require all granted
    </Files>
</Directory>
Alias /static/ {d}/static/
<Directory {d}/static>
    Require all granted
</Directory>
""",
        [("/", {}), ("/polls/3/?page=2", {}), ("/static/style.css", {}), ("/static/missing.css", {})],
    ),
    "modwsgi-quick-configuration": Entry(
        "mod_wsgi 4.9.4 docs/user-guides/quick-configuration-guide.rst, Mounting The WSGI Application",
        "paths, port",
        {"wsgi-scripts/myapp.wsgi": DUMP},
        """
<VirtualHost *:{port}>
    ServerName www.example.com
    WSGIScriptAlias /myapp {d}/wsgi-scripts/myapp.wsgi
    <Directory {d}/wsgi-scripts>
        Require all granted
    </Directory>
</VirtualHost>
""",
        [("/myapp", {"Host": "www.example.com"}), ("/myapp/a/b", {"Host": "www.example.com"}),
         ("/myappx", {"Host": "www.example.com"})],
    ),
    "modwsgi-directory-mount": Entry(
        "mod_wsgi 4.9.4 docs/configuration-directives/WSGIScriptAlias.rst: a directory of scripts",
        "paths",
        {"wsgi-scripts/name": DUMP, "wsgi-scripts/other": DUMP},
        """
WSGIScriptAlias /wsgi-scripts/ {d}/wsgi-scripts/
<Directory {d}/wsgi-scripts>
    Require all granted
</Directory>
""",
        [("/wsgi-scripts/name", {}), ("/wsgi-scripts/other/x", {}), ("/wsgi-scripts/none", {})],
    ),
    "modwsgi-addhandler": Entry(
        "mod_wsgi 4.9.4 docs/user-guides/configuration-guidelines.rst, The Apache Alias Directive: "
        "Options ExecCGI + AddHandler wsgi-script",
        "paths",
        {"scripts/app.wsgi": DUMP, "scripts/readme.txt": "not a script\n", "noexec/app.wsgi": DUMP},
        """
Alias /scripts {d}/scripts
<Directory {d}/scripts>
    Options ExecCGI
    AddHandler wsgi-script .wsgi
    Require all granted
</Directory>
Alias /noexec {d}/noexec
<Directory {d}/noexec>
    AddHandler wsgi-script .wsgi
    Require all granted
</Directory>
""",
        [("/scripts/app.wsgi", {}), ("/scripts/app.wsgi/more", {}), ("/scripts/readme.txt", {}),
         ("/noexec/app.wsgi", {})],
    ),
    "modwsgi-aliasmatch": Entry(
        "mod_wsgi 4.9.4 docs/configuration-directives/WSGIScriptAliasMatch.rst",
        "paths",
        {"wsgi-scripts/alpha.wsgi": DUMP},
        """
WSGIScriptAliasMatch ^/wsgi/([^/]+) {d}/wsgi-scripts/$1.wsgi
<Directory {d}/wsgi-scripts>
    Require all granted
</Directory>
""",
        [("/wsgi/alpha", {}), ("/wsgi/alpha/x/y", {}), ("/wsgi/beta", {})],
    ),
    "trailing-slash-script": Entry(
        "pastebin.com/ZYcWDVDv (a user's configuration): WSGIScriptAlias /websys/ .../index.py/",
        "paths",
        {"websys/index.py": DUMP},
        """
WSGIScriptAlias /websys/ {d}/websys/index.py/
<Directory {d}/websys>
    Require all granted
</Directory>
""",
        [("/websys/", {}), ("/websys/page", {}), ("/websys", {})],
    ),
    "reviewboard": Entry(
        "Review Board, rb-site's template reviewboard/cmdline/conf/apache-wsgi.conf.in "
        "(github.com/reviewboard/reviewboard, 92d6b804): WSGIScriptAlias \"/reviews\" "
        "\".../reviewboard.wsgi/reviews\", WSGIPassAuthorization On, static Aliases under the mount",
        "paths (@sitedir@), port (@port@), @sitedomain@ = reviews.example.com, @siteroot@ = /reviews/, "
        "@apache_auth@ = Require all granted (what rb-site writes for httpd 2.4)",
        {"htdocs/reviewboard.wsgi": DUMP, "htdocs/media/uploaded/files/x.html": "<p>uploaded</p>\n",
         "htdocs/static/rb/app.css": "rb {}\n", "htdocs/errordocs/500.html": "<p>500</p>\n"},
        """
<VirtualHost *:{port}>
	ServerName reviews.example.com
	DocumentRoot "{d}/htdocs"

	# Error handlers
	ErrorDocument 500 /errordocs/500.html

	WSGIPassAuthorization On
	WSGIScriptAlias "/reviews" "{d}/htdocs/reviewboard.wsgi/reviews"

	<Directory "{d}/htdocs">
		AllowOverride All
		Options -Indexes +FollowSymLinks
		Require all granted
	</Directory>

	# Prevent the server from processing or allowing the rendering of
	# certain file types.
	<Location "/reviews/media/uploaded">
		SetHandler None
		Options None

		AddType text/plain .html .htm .shtml .php .php3 .php4 .php5 .phps .asp
		AddType text/plain .pl .py .fcgi .cgi .phtml .phtm .pht .jsp .sh .rb

		<IfModule mod_php5.c>
			php_flag engine off
		</IfModule>

		# Force all uploaded media files to download.
		<IfModule mod_headers.c>
			Header set Content-Disposition "attachment"
		</IfModule>
	</Location>

	# Alias static media requests to filesystem
	Alias /reviews/media "{d}/htdocs/media"
	Alias /reviews/static "{d}/htdocs/static"
	Alias /reviews/errordocs "{d}/htdocs/errordocs"
	Alias /reviews/favicon.ico "{d}/htdocs/static/rb/images/favicon.png"
</VirtualHost>
""",
        [("/reviews/", {}), ("/reviews/r/1/", {"Authorization": "Basic eDp5"}),
         ("/reviews/media/uploaded/files/x.html", {}), ("/reviews/static/rb/app.css", {}),
         ("/reviews/errordocs/500.html", {}), ("/reviews/favicon.ico", {})],
        modules=("headers",),
    ),
    "trac-global-group": Entry(
        "Trac 1.6, trac/wiki/default-pages/TracModWSGI (github.com/edgewall/trac, 25c4b3a86), "
        "Mapping requests to the script: the cgi-bin directory that trac-admin deploy generates",
        "paths (/usr/share/trac/cgi-bin)",
        {"trac/cgi-bin/trac.wsgi": DUMP},
        """
WSGIScriptAlias /trac {d}/trac/cgi-bin/trac.wsgi

<Directory {d}/trac/cgi-bin>
    WSGIApplicationGroup %{{GLOBAL}}
    # For Apache 2.2
    <IfModule !mod_authz_core.c>
        Order deny,allow
        Allow from all
    </IfModule>
    # For Apache 2.4
    <IfModule mod_authz_core.c>
        Require all granted
    </IfModule>
</Directory>
""",
        [("/trac", {}), ("/trac/wiki/WikiStart", {}), ("/trac/chrome/common/trac.css", {})],
    ),
    "koji-hub": Entry(
        "Koji 1.35.3, kojihub/app/httpd.conf (github.com/koji-project/koji): Alias onto the "
        "script + SetHandler wsgi-script in its <Directory>, WSGIScriptReloading Off",
        "paths",
        {"koji-hub/kojiapp.py": DUMP, "mnt-koji/packages/README": "koji files\n"},
        """
Alias /kojihub {d}/koji-hub/kojiapp.py

<Directory "{d}/koji-hub">
    Options ExecCGI
    SetHandler wsgi-script
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptReloading Off
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
</Directory>

Alias /kojifiles "{d}/mnt-koji/"

<Directory "{d}/mnt-koji">
    Options Indexes SymLinksIfOwnerMatch
    AllowOverride None
    IndexOptions +NameWidth=*
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
</Directory>
""",
        [("/kojihub", {}), ("/kojihub/ssllogin?x=1", {}), ("/kojifiles/packages/README", {})],
        modules=("autoindex",),
    ),
    "django-apache-auth": Entry(
        "Django 4.2 docs, How to authenticate against Django's user database from Apache "
        "(docs/howto/deployment/wsgi/apache-auth.txt): AuthBasicProvider wsgi + WSGIAuthUserScript",
        "paths; the script's check_password is a stand-in for django.contrib.auth.handlers.modwsgi",
        {"mysite.com/mysite/wsgi.py": DJANGO_AUTH},
        """
WSGIScriptAlias / {d}/mysite.com/mysite/wsgi.py
WSGIPythonPath {d}/mysite.com

WSGIProcessGroup %{{GLOBAL}}
WSGIApplicationGroup django

<Location "/secret">
    AuthType Basic
    AuthName "Top Secret"
    Require valid-user
    AuthBasicProvider wsgi
    WSGIAuthUserScript {d}/mysite.com/mysite/wsgi.py
</Location>
""",
        [("/", {}), ("/secret/page", {}), ("/secret/page", basic("alice", "secret")),
         ("/secret/page", basic("alice", "wrong")), ("/secret/page", basic("bob", "secret"))],
        modules=("auth_basic", "authn_core", "authz_user"),
        env="<Directory {d}/mysite.com/mysite>\n    Require all granted\n</Directory>\n",
    ),
    # ---- daemon mode ---------------------------------------------------------------------
    "modwsgi-daemon-quick-configuration": Entry(
        "mod_wsgi 4.9.4 docs/user-guides/quick-configuration-guide.rst, Delegation To Daemon Process",
        "paths, port",
        {"www/documents/robots.txt": "User-agent: *\n", "www/documents/media/a.css": "a {}\n",
         "www/wsgi-scripts/myapp.wsgi": DUMP},
        """
<VirtualHost *:{port}>

    ServerName www.example.com
    ServerAlias example.com
    ServerAdmin webmaster@example.com

    DocumentRoot {d}/www/documents

    Alias /robots.txt {d}/www/documents/robots.txt
    Alias /favicon.ico {d}/www/documents/favicon.ico

    Alias /media/ {d}/www/documents/media/

    <Directory {d}/www/documents>
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
    </Directory>

    WSGIDaemonProcess example.com processes=2 threads=15 display-name=%{{GROUP}}
    WSGIProcessGroup example.com

    WSGIScriptAlias / {d}/www/wsgi-scripts/myapp.wsgi

    <Directory {d}/www/wsgi-scripts>
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
    </Directory>

</VirtualHost>
""",
        [("/", {"Host": "example.com"}), ("/a/b?c=d", {"Host": "www.example.com"}),
         ("/robots.txt", {"Host": "example.com"}), ("/media/a.css", {"Host": "example.com"}),
         ("/favicon.ico", {"Host": "example.com"})],
    ),
    "django-docs-daemon": Entry(
        "Django 4.2 docs, How to use Django with Apache and mod_wsgi "
        "(docs/howto/deployment/wsgi/modwsgi.txt), Using mod_wsgi daemon mode",
        "paths (python-home is the test virtualenv)",
        {"mysite.com/mysite/wsgi.py": DUMP},
        """
WSGIDaemonProcess example.com python-home={venv} python-path={d}/mysite.com
WSGIProcessGroup example.com
WSGIScriptAlias / {d}/mysite.com/mysite/wsgi.py process-group=example.com

<Directory {d}/mysite.com/mysite>
<Files wsgi.py>
Require all granted
</Files>
</Directory>
""",
        [("/", {}), ("/admin/login/?next=/admin/", {}), ("/wsgi.py", {})],
    ),
    "flask-docs": Entry(
        "Flask 2.1 docs, docs/deploying/mod_wsgi.rst (github.com/pallets/flask, tag 2.1.2), "
        "Configuring Apache",
        "paths, accounts (user1/group1); env: the grant Debian's apache2.conf gives /var/www",
        {"yourapplication/yourapplication.wsgi": DUMP},
        """
<VirtualHost *>
    ServerName example.com

    WSGIDaemonProcess yourapplication user={user} group={group} threads=5
    WSGIScriptAlias / {d}/yourapplication/yourapplication.wsgi

    <Directory {d}/yourapplication>
        WSGIProcessGroup yourapplication
        WSGIApplicationGroup %{{GLOBAL}}
        Order deny,allow
        Allow from all
    </Directory>
</VirtualHost>
""",
        [("/", {"Host": "example.com"}), ("/hello/world?x=1", {"Host": "example.com"})],
        modules=("access_compat",),
        env="<Directory {d}/yourapplication>\n    Require all granted\n</Directory>\n",
    ),
    "keystone": Entry(
        "OpenStack Keystone 27.0.0, httpd/wsgi-keystone.conf (github.com/openstack/keystone, "
        "removed after 27.0.0 by 89a157427)",
        "paths, port (Listen 5000 dropped), accounts (keystone), log paths",
        {"bin/keystone-wsgi-public": DUMP},
        """
<VirtualHost *:{port}>
    WSGIDaemonProcess keystone-public processes=5 threads=1 user={user} group={group} display-name=%{{GROUP}}
    WSGIProcessGroup keystone-public
    WSGIScriptAlias / {d}/bin/keystone-wsgi-public
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
    LimitRequestBody 114688
    <IfVersion >= 2.4>
      ErrorLogFormat "%{{cu}}t %M"
    </IfVersion>
    ErrorLog {stage}/logs/keystone.log
    CustomLog {stage}/logs/keystone_access.log combined

    <Directory {d}/bin>
        <IfVersion >= 2.4>
            Require all granted
        </IfVersion>
        <IfVersion < 2.4>
            Order allow,deny
            Allow from all
        </IfVersion>
    </Directory>
</VirtualHost>

Alias /identity {d}/bin/keystone-wsgi-public
<Location /identity>
    SetHandler wsgi-script
    Options +ExecCGI

    WSGIProcessGroup keystone-public
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
</Location>
""",
        [("/v3", {}), ("/v3/auth/tokens", {"Authorization": "Basic eDp5"}), ("/identity/v3/users", {})],
    ),
    "devstack-nova-api": Entry(
        "OpenStack devstack, files/apache-nova-api.template (github.com/openstack/devstack, 493835a6)",
        "paths (%PUBLICWSGI%), port (%PUBLICPORT%), accounts (%USER%), log paths, "
        "%VIRTUALENV% and %SSL*% empty; env: the grant Debian's apache2.conf gives /usr",
        {"bin/nova-api-wsgi": DUMP},
        """
<VirtualHost *:{port}>
    WSGIDaemonProcess nova-api processes=2 threads=1 user={user} display-name=%{{GROUP}}
    WSGIProcessGroup nova-api
    WSGIScriptAlias / {d}/bin/nova-api-wsgi
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
    ErrorLogFormat "%M"
    ErrorLog {stage}/logs/nova-api.log
</VirtualHost>

Alias /compute {d}/bin/nova-api-wsgi
<Location /compute>
    SetHandler wsgi-script
    Options +ExecCGI
    WSGIProcessGroup nova-api
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
</Location>
""",
        [("/", {}), ("/v2.1/servers/detail?limit=1", {"Authorization": "Bearer t"}),
         ("/compute/v2.1/flavors", {})],
        env="<Directory {d}/bin>\n    Require all granted\n</Directory>\n",
    ),
    "devstack-cinder-api": Entry(
        "OpenStack devstack, files/apache-cinder-api.template (github.com/openstack/devstack, 493835a6)",
        "paths (%CINDER_BIN_DIR%), port, accounts, log paths, %VIRTUALENV% and %SSL*% empty",
        {"cinder-bin/cinder-wsgi": DUMP},
        """
<VirtualHost *:{port}>
    WSGIDaemonProcess osapi_volume processes=2 threads=1 user={user} display-name=%{{GROUP}}
    WSGIProcessGroup osapi_volume
    WSGIScriptAlias / {d}/cinder-bin/cinder-wsgi
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
    ErrorLogFormat "%{{cu}}t %M"
    ErrorLog {stage}/logs/c-api.log

    <Directory {d}/cinder-bin>
        Require all granted
    </Directory>
</VirtualHost>
""",
        [("/", {}), ("/v3/projects/volumes", {"Authorization": "Basic eDp5"})],
    ),
    "devstack-neutron": Entry(
        "OpenStack devstack, files/apache-neutron.template (github.com/openstack/devstack, 493835a6)",
        "paths (%NEUTRON_BIN%), port, accounts, log paths, %VIRTUALENV% empty, the %SSLLISTEN% "
        "TLS virtual host left out (mod_ssl)",
        {"neutron-bin/neutron-api": DUMP},
        """
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-agent}}i\\" %D(us)" neutron_combined

<Directory {d}/neutron-bin>
    Require all granted
</Directory>

<VirtualHost *:{port}>
    WSGIDaemonProcess neutron-server processes=2 threads=1 user={user} display-name=%{{GROUP}}
    WSGIProcessGroup neutron-server
    WSGIScriptAlias / {d}/neutron-bin/neutron-api
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
    ErrorLogFormat "%M"
    ErrorLog {stage}/logs/neutron.log
    CustomLog {stage}/logs/neutron_access.log neutron_combined
</VirtualHost>

Alias /networking {d}/neutron-bin/neutron-api
<Location /networking>
    SetHandler wsgi-script
    Options +ExecCGI
    WSGIProcessGroup neutron-server
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
</Location>
""",
        [("/v2.0/networks", {}), ("/networking/v2.0/ports?fields=id", {})],
    ),
    "devstack-horizon": Entry(
        "OpenStack devstack, files/apache-horizon.template (github.com/openstack/devstack, 493835a6)",
        "paths (%HORIZON_DIR%, %WEBROOT% = /dashboard), port, accounts, log paths, "
        "%WSGIPYTHONHOME% empty, WSGISocketPrefix into the stage",
        {"horizon/openstack_dashboard/wsgi.py": DUMP, "horizon/.blackhole/.keep": "",
         "horizon/static/dashboard.css": "body {}\n", "horizon/openstack_dashboard/static/m.css": "m {}\n"},
        """
<VirtualHost *:{port}>
    WSGIScriptAlias /dashboard {d}/horizon/openstack_dashboard/wsgi.py
    WSGIDaemonProcess horizon user={user} group={group} processes=3 threads=10 home={d}/horizon display-name=%{{GROUP}}
    WSGIApplicationGroup %{{GLOBAL}}

    SetEnv APACHE_RUN_USER {user}
    SetEnv APACHE_RUN_GROUP {group}
    WSGIProcessGroup horizon

    DocumentRoot {d}/horizon/.blackhole/
    Alias /dashboard/media {d}/horizon/openstack_dashboard/static
    Alias /dashboard/static {d}/horizon/static

    RedirectMatch "^/$" "/dashboard/"

    <Directory />
        Options FollowSymLinks
        AllowOverride None
    </Directory>

    <Directory {d}/horizon/>
        Options Indexes FollowSymLinks MultiViews
        AllowOverride None
        Require all granted
    </Directory>
    ErrorLogFormat "%{{cu}}t %M"
    ErrorLog {stage}/logs/horizon_error.log
    LogLevel warn
    CustomLog {stage}/logs/horizon_access.log combined
</VirtualHost>

WSGISocketPrefix {stage}/run/apache2
""",
        [("/", {}), ("/dashboard/", {}), ("/dashboard/auth/login/?next=/dashboard/", {}),
         ("/dashboard/static/dashboard.css", {}), ("/dashboard/media/m.css", {})],
    ),
    "freeipa": Entry(
        "FreeIPA 4.13 (rc_4-9-0-1-2344-gb16f3b80d), install/share/ipa.conf.template "
        "(github.com/freeipa/freeipa): the mod_wsgi part",
        "paths ($WSGI_PREFIX_DIR, /usr/share/ipa), accounts (ipaapi), $WSGI_PROCESSES = 2; left "
        "out: the Gssapi*/Session*/SSL*/LookupUserByCertificate* lines (modules not installed)",
        {"ipa/wsgi.py": DUMP, "ipa/html/unauthorized.html": "<p>unauthorized</p>\n"},
        """
WSGISocketPrefix {stage}/run/ipa-wsgi

# Configure mod_wsgi handler for /ipa
WSGIDaemonProcess ipa processes=2 threads=1 maximum-requests=500 \\
  user={user} group={group} display-name=%{{GROUP}} socket-timeout=2147483647 \\
  lang=C.UTF-8 locale=C.UTF-8
WSGIScriptAlias /ipa {d}/ipa/wsgi.py process-group=ipa \\
  application-group=%{{GLOBAL}}
WSGIScriptReloading Off

# Disallow sniffing server software versions
ServerSignature Off
ServerTokens Prod

# Turn off mod_msgi handler for errors, config, crl:
<Location "/ipa/errors">
  SetHandler None
</Location>
<Location "/ipa/config">
  SetHandler None
</Location>

<Location "/ipa">
  Header always append X-Frame-Options DENY
  Header always set X-Content-Type-Options "nosniff"
  Header unset ETag
  FileETag None
</Location>

# Turn off Apache authentication for i18n messages
<Location "/ipa/i18n_messages">
  Require all granted
</Location>

# Turn off Apache authentication for password/token based login pages
<Location "/ipa/session/login_password">
  Satisfy Any
  Require all granted
</Location>

<Location "/ipa/session/login_x509">
  AuthType none
  WSGIProcessGroup ipa
  WSGIApplicationGroup ipa
  Header unset Set-Cookie
</Location>

# This is where we redirect on failed auth
Alias /ipa/errors "{d}/ipa/html"

# For the MIT Windows config files
Alias /ipa/config "{d}/ipa/html"

# Do no authentication on the directory that contains error messages
<Directory "{d}/ipa/html">
  SetHandler None
  AllowOverride None
  Satisfy Any
  Require all granted
  ExpiresActive On
  ExpiresDefault "access plus 0 seconds"
</Directory>
""",
        [("/ipa/json", {}), ("/ipa/session/login_password", {}), ("/ipa/session/login_x509", {}),
         ("/ipa/i18n_messages", {}), ("/ipa/errors/unauthorized.html", {}), ("/ipa/config/none", {})],
        modules=("headers", "access_compat", "expires", "authn_core"),
        env="<Directory {d}/ipa>\n    Require all granted\n</Directory>\n",
    ),
    "freeipa-kdcproxy": Entry(
        "FreeIPA 4.13, install/share/ipa-kdc-proxy.conf.template (github.com/freeipa/freeipa)",
        "paths (/usr/share/ipa), accounts (kdcproxy); env: the grant of /usr/share",
        {"ipa/kdcproxy.wsgi": DUMP},
        """
WSGIDaemonProcess kdcproxy processes=2 threads=15 maximum-requests=5000 \\
  user={user} group={group} display-name=%{{GROUP}}
WSGIScriptAlias /KdcProxy {d}/ipa/kdcproxy.wsgi \\
  process-group=kdcproxy application-group=%{{GLOBAL}}
WSGIScriptReloading Off

<Location "/KdcProxy">
  Satisfy Any
  Require all granted
</Location>
""",
        [("/KdcProxy", {}), ("/KdcProxy/x", {})],
        modules=("access_compat",),
    ),
    "graphite-web": Entry(
        "graphite-web, examples/example-graphite-vhost.conf (github.com/graphite-project/"
        "graphite-web, b5d272be)",
        "paths (/opt/graphite, @DJANGO_ROOT@), port, log paths; its `<IfModule !wsgi_module.c> "
        "LoadModule ...` guard is the LoadModule line",
        {"conf/graphite.wsgi": DUMP, "webapp/.keep": "", "static/g.css": "g {}\n"},
        """
WSGISocketPrefix run/wsgi

<VirtualHost *:{port}>
        ServerName graphite
        DocumentRoot "{d}/webapp"
        ErrorLog {stage}/logs/graphite-error.log
        CustomLog {stage}/logs/graphite-access.log common

        WSGIDaemonProcess graphite processes=5 threads=5 display-name='%{{GROUP}}' inactivity-timeout=120
        WSGIProcessGroup graphite
        WSGIApplicationGroup %{{GLOBAL}}
        WSGIImportScript {d}/conf/graphite.wsgi process-group=graphite application-group=%{{GLOBAL}}

        WSGIScriptAlias / {d}/conf/graphite.wsgi

        Alias /static/ {d}/static/

        Alias /media/ "{d}/django/contrib/admin/media/"

        <Directory {d}/conf/>
                <IfVersion < 2.4>
                        Order deny,allow
                        Allow from all
                </IfVersion>
                <IfVersion >= 2.4>
                        Require all granted
                </IfVersion>
        </Directory>

</VirtualHost>
""",
        [("/", {}), ("/render?target=a.b&format=json", {}), ("/metrics/find?query=*", {}),
         ("/static/g.css", {})],
    ),
    "pagure": Entry(
        "Pagure 5.9.1, files/pagure-apache-httpd.conf (github.com/Pagure/pagure), uncommented "
        "as its comments tell the administrator to",
        "paths, port (*:443 and the *:80 redirect hosts onto one port: the redirect hosts left "
        "out), accounts (git); left out: the SSL* lines (mod_ssl)",
        {"pagure/pagure.wsgi": DUMP, "pagure/doc_pagure.wsgi": DUMP,
         "releases/pagure-5.9.1.tar.gz": "tarball\n"},
        """
WSGISocketPrefix run/wsgi
#WSGIRestrictStdout On
WSGIRestrictSignal Off
WSGIPythonOptimize 1
WSGIPassAuthorization On
WSGIDaemonProcess pagure user={user} group={group} maximum-requests=1000 display-name=pagure processes=4 threads=4 inactivity-timeout=300
# It is important that the doc server runs in a different apache process
WSGIDaemonProcess paguredocs user={user} group={group} maximum-requests=1000 display-name=pagure processes=4 threads=4 inactivity-timeout=300

<VirtualHost *:{port}>
  ServerName docs.localhost.localdomain

  WSGIScriptAlias / {d}/pagure/doc_pagure.wsgi

  # Use secure TLSv1.1 and TLSv1.2 ciphers
  Header always add Strict-Transport-Security "max-age=15768000; includeSubDomains; preload"

  <Location />
    WSGIProcessGroup paguredocs
    <IfModule mod_authz_core.c>
      # Apache 2.4
      Require all granted
    </IfModule>
    <IfModule !mod_authz_core.c>
      # Apache 2.2
      Order deny,allow
      Allow from all
    </IfModule>
   </Location>
</VirtualHost>

<VirtualHost *:{port}>
  ServerName localhost.localdomain

  WSGIScriptAlias / {d}/pagure/pagure.wsgi

  # Use secure TLSv1.1 and TLSv1.2 ciphers
  Header always add Strict-Transport-Security "max-age=15768000; includeSubDomains; preload"

  Alias /releases {d}/releases

  # Section used to support cloning git repo over http (https in this case)
  SetEnv GIT_PROJECT_ROOT {d}/repositories

  <Location />
   WSGIProcessGroup pagure
   <IfModule mod_authz_core.c>
      # Apache 2.4
      Require all granted
   </IfModule>
   <IfModule !mod_authz_core.c>
      # Apache 2.2
      Order deny,allow
      Allow from all
   </IfModule>
  </Location>

  # Folder where are stored the tarball of the releases
  <Location /releases>
   WSGIProcessGroup pagure
   <IfModule mod_authz_core.c>
      # Apache 2.4
      Require all granted
   </IfModule>
   <IfModule !mod_authz_core.c>
       # Apache 2.2
      Order deny,allow
      Allow from all
   </IfModule>
  </Location>

  <Directory {d}/releases>
    Options +Indexes
  </Directory>

</VirtualHost>
""",
        [("/", {"Host": "localhost.localdomain"}), ("/pagure/issues?status=Open", {"Host": "localhost.localdomain"}),
         ("/releases/pagure-5.9.1.tar.gz", {"Host": "localhost.localdomain"}),
         ("/", {"Host": "docs.localhost.localdomain"}), ("/pagure/usage", {"Host": "docs.localhost.localdomain"}),
         ("/api/0/projects", {"Host": "localhost.localdomain", "Authorization": "token abc"})],
        modules=("headers",),
    ),
    "koji-web": Entry(
        "Koji 1.35.3, www/conf/kojiweb.conf (github.com/koji-project/koji)",
        "paths",
        {"koji-web/scripts/wsgi_publisher.py": DUMP, "koji-web/static/koji.css": "k {}\n"},
        """
Alias /koji "{d}/koji-web/scripts/wsgi_publisher.py"

WSGIDaemonProcess koji lang=C.UTF-8

<Directory "{d}/koji-web/scripts/">
    Options ExecCGI
    SetHandler wsgi-script
    WSGIProcessGroup koji
    WSGIApplicationGroup %{{GLOBAL}}
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
</Directory>

Alias /koji-static/ "{d}/koji-web/static/"

<Directory "{d}/koji-web/static/">
    Options None
    AllowOverride None
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
</Directory>
""",
        [("/koji", {}), ("/koji/packageinfo?packageID=1", {}), ("/koji-static/koji.css", {})],
    ),
    "moinmoin": Entry(
        "MoinMoin 1.9.11, wiki/server/moin.wsgi (github.com/moinwiki/moin-1.9, 8fa67f1a): the "
        "statements its docstring says to add to the VirtualHost",
        "paths (/some/path), accounts (someuser/somegroup); the VirtualHost they go into is "
        "written around them (ServerName wiki.example.com, the test's port); env: the grant of the "
        "script's directory",
        {"moin/moin.wsgi": DUMP},
        """
<VirtualHost *:{port}>
    ServerName wiki.example.com

    # you will invoke your moin wiki at the root url, like http://servername/FrontPage:
    WSGIScriptAlias / {d}/moin/moin.wsgi

    # create some wsgi daemons - use someuser.somegroup same as your data_dir:
    WSGIDaemonProcess daemonname user={user} group={group} processes=5 threads=10 maximum-requests=1000 umask=0007

    # use the daemons we defined above to process requests!
    WSGIProcessGroup daemonname
</VirtualHost>
""",
        [("/FrontPage", {"Host": "wiki.example.com"}), ("/", {"Host": "wiki.example.com"}),
         ("/RecentChanges?action=rss_rc", {"Host": "wiki.example.com"})],
        env="<Directory {d}/moin>\n    Require all granted\n</Directory>\n",
    ),
    "roundup": Entry(
        "Roundup 2.6.0, doc/installation.txt (github.com/roundup-tracker/roundup, 3ed0c6de), "
        "mod_wsgi with a daemon process per tracker",
        "paths (/srv/roundup/foo, /home/roundup, /var/www, /var/log/apache2: the server's own "
        "error log), port, accounts (roundup-foo); env: the grants of /srv/roundup and the docs "
        "directory (Debian's apache2.conf leaves /srv commented out)",
        {"srv/roundup/foo/roundup.wsgi": DUMP, "srv/roundup/foo/html/style.css": "s {}\n",
         "home/roundup/install/share/doc/roundup/html/index.html": "<p>docs</p>\n", "www/.keep": ""},
        """
    ServerAdmin webmaster@example.com
    ErrorLog {stage}/logs/error.log

    LogLevel notice

    DocumentRoot {d}/www/

    <VirtualHost *:{port}>
            CustomLog {stage}/logs/access.log vhost_combined

            # allow access to roundup docs
            Alias /doc/ {d}/home/roundup/install/share/doc/roundup/html/

            # make apache serve static assets like css rather than
            # having roundup serve the files
            Alias /foo/@@file/ {d}/srv/roundup/foo/html/

            # make /foo into /foo/
            RedirectMatch permanent ^/(foo)$ /$1/

            # start a wsgi daemon process running as user roundup-foo
            # in group roundup-foo. This also changes directory to
            # ~roundup-foo before it starts roundup.wsgi.
            WSGIDaemonProcess roundup-foo display-name=roundup-foo user={user} group={group} threads=25

            # make tracker available at /foo and tie it into the
            # wsgi script below.
            WSGIScriptAlias /foo {d}/srv/roundup/foo/roundup.wsgi
            <Location /foo>
                    WSGIProcessGroup roundup-foo
            </Location>
    </VirtualHost>
""",
        [("/foo", {}), ("/foo/", {}), ("/foo/issue1?@template=item", {}), ("/foo/@@file/style.css", {}),
         ("/doc/index.html", {})],
        env="<Directory {d}/srv/roundup>\n    Require all granted\n</Directory>\n"
            "<Directory {d}/home/roundup/install/share/doc/roundup/html>\n    Require all granted\n</Directory>\n",
    ),
    "modwsgi-restrict-process": Entry(
        "mod_wsgi 4.9.4 docs/configuration-directives/WSGIRestrictProcess.rst: per-user groups "
        "chosen with %{ENV:PROCESS_GROUP} from .htaccess, limited by WSGIRestrictProcess",
        "paths (/home/bob/public_html, reached with an Alias and its Require instead of "
        "mod_userdir), port, accounts (bob, joe), threads=25 -> 5; the .htaccess is the one the "
        "page shows, plus a <Files> that tries joe's group",
        {"bob/public_html/blog.wsgi": DUMP, "bob/public_html/wiki.wsgi": DUMP,
         "bob/public_html/home.wsgi": DUMP, "bob/public_html/evil.wsgi": DUMP,
         "bob/public_html/.htaccess": "<Files blog.wsgi>\nSetEnv PROCESS_GROUP bob:2\n</Files>\n\n"
                                      "<Files wiki.wsgi>\nSetEnv PROCESS_GROUP bob:3\n</Files>\n\n"
                                      "<Files evil.wsgi>\nSetEnv PROCESS_GROUP joe:1\n</Files>\n"},
        """
WSGIDaemonProcess default processes=2 threads=5

<VirtualHost *:{port}>
ServerName www.site.com

WSGIDaemonProcess bob:1 user={user} group={group} threads=5
WSGIDaemonProcess bob:2 user={user} group={group} threads=5
WSGIDaemonProcess bob:3 user={user} group={group} threads=5

WSGIDaemonProcess joe:1 user={user} group={group} threads=5
WSGIDaemonProcess joe:2 user={user} group={group} threads=5
WSGIDaemonProcess joe:3 user={user} group={group} threads=5

SetEnv PROCESS_GROUP default
WSGIProcessGroup %{{ENV:PROCESS_GROUP}}

Alias /~bob {d}/bob/public_html
<Directory {d}/bob/public_html>
Options ExecCGI
AllowOverride FileInfo
AddHandler wsgi-script .wsgi
WSGIRestrictProcess bob:1 bob:2 bob:3
SetEnv PROCESS_GROUP bob:1
Require all granted
</Directory>
</VirtualHost>
""",
        [("/~bob/home.wsgi", {}), ("/~bob/blog.wsgi", {}), ("/~bob/wiki.wsgi/x", {}),
         ("/~bob/evil.wsgi", {})],
    ),
}


class CorpusServer(ApacheServer):
    def __init__(self, entry, wsgi):
        super().__init__(f"corpus-{entry}-{wsgi}", wsgi=wsgi, mpm="event")
        self.entry = entry

    def install_module(self):
        super().install_module()
        # The migration line: same symbol as mod_wsgi's, only the file changes.
        self.wsgi_load = self.wsgi_load.replace("LoadModule oxwsgi_module", "LoadModule wsgi_module")

    def config_text(self):
        e = CORPUS[self.entry]
        d = self.stage.root / "site"
        for rel, text in e.files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        values = dict(d=d, port=self.port, stage=self.stage.root, user=paths.RUN_USER,
                      group=paths.RUN_GROUP, venv=paths.VENV)
        modules = "".join(f"LoadModule {m}_module {paths.APACHE_MODULES}/mod_{m}.so\n" for m in e.modules)
        return (super().config_text() + "\n# --- corpus entry " + self.entry + "\n" + modules
                + e.env.format(**values) + e.conf.format(**values))

    def start(self):
        # configtest() staged the files, the module and the configuration already.
        try:
            self.launch()
            self.started = True
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout=40.0):
        # An entry's virtual host may own every URL of the port (WSGIScriptAlias /), so the
        # harness's health mount is not reachable: any HTTP answer means it is up.
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.url("/"), timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no HTTP answer after {timeout}s\n{self.log_tail()}")


def configtest(s):
    """`apache2 -t` (what `apachectl -t` runs) on the generated configuration."""
    s.stage.populate()
    s.install_module()
    s.write_config()
    s.stage.make_readable()
    return subprocess.run([paths.APACHE_BIN, "-t", "-f", str(s.conf)], env=s._env(),
                          capture_output=True, text=True, timeout=60)


def responses(entry, wsgi):
    s = CorpusServer(entry, wsgi)
    try:
        t = configtest(s)
        assert t.returncode == 0 and "Syntax OK" in t.stderr, f"{wsgi}: apache2 -t refused {entry}:\n{t.stderr}"
    except BaseException:
        s.cleanup()
        raise
    s.start()
    try:
        out = []
        for path, headers in CORPUS[entry].requests:
            r = requests.get(s.url(path), headers=headers, timeout=20, allow_redirects=False)
            # Error pages carry the server's signature; ports differ between the two runs.
            body = r.text.replace(str(s.port), "PORT") if r.status_code == 200 else ""
            out.append((path, headers.get("Authorization"), r.status_code, body))
        return out
    finally:
        s.stop()
        s.check_log()
        s.cleanup()


def test_corpus_size_and_citations():
    # Issue 11 asks for at least 20 configurations, each cited and with its adaptations named.
    assert len(CORPUS) >= 20
    for name, e in CORPUS.items():
        assert e.source and e.adapted, name


@pytest.mark.parametrize("entry", sorted(CORPUS))
def test_same_responses_as_mod_wsgi(entry):
    reference = responses(entry, "modwsgi")
    assert any(status == 200 for _, _, status, _ in reference), reference
    assert responses(entry, "oxwsgi") == reference

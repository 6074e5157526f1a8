"""The URL prefixes under which the test apps are mounted, identical for every
server: WSGIScriptAlias lines for Apache, `location` blocks for nginx.
Paths are relative to the stage directory."""

MOUNTS = [
    ("/health", "apps/health.wsgi"),
    ("/env", "apps/environ.wsgi"),
    # The same script under a two-segment prefix, for SCRIPT_NAME handling.
    ("/deep/mount", "apps/environ.wsgi"),
    ("/resp", "apps/responses.wsgi"),
    ("/file", "apps/filewrapper.wsgi"),
    ("/err", "apps/errors.wsgi"),
    ("/log", "apps/logs.wsgi"),
    ("/big", "apps/bigdata.wsgi"),
    ("/valid", "apps/validated.wsgi"),
    ("/nobody", "apps/nobody.wsgi"),
    ("/exit", "apps/exiting.wsgi"),
    ("/modwsgi-api", "apps/modwsgi_api.wsgi"),
    ("/flask", "frameworks/flask.wsgi"),
    ("/django", "frameworks/django.wsgi"),
    ("/bottle", "frameworks/bottle.wsgi"),
    ("/falcon", "frameworks/falcon.wsgi"),
    ("/werkzeug", "frameworks/werkzeug.wsgi"),
]

HEALTH_PATH = "/health/"

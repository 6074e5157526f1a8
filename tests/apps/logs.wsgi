# Writing to the server's error log. Mounted at /log.
import logging
import sys

sys.dont_write_bytecode = True
from apputil import dispatch, query, respond_json  # noqa: E402

log = logging.getLogger("oxwsgi.test")


def wsgi_errors(environ, start_response):
    token = query(environ)["token"]
    err = environ["wsgi.errors"]
    err.write(f"oxwsgi-test wsgi.errors write {token}\n")
    err.writelines([f"oxwsgi-test wsgi.errors writelines-1 {token}\n",
                    f"oxwsgi-test wsgi.errors writelines-2 {token}\n"])
    err.flush()
    return respond_json(start_response, {"ok": True})


def python_logging(environ, start_response):
    # No handler configured: Python's last-resort handler writes WARNING and
    # above to sys.stderr, which the server must route to its error log.
    token = query(environ)["token"]
    log.warning("oxwsgi-test logging warning %s", token)
    log.error("oxwsgi-test logging error %s", token)
    log.info("oxwsgi-test logging info-not-shown %s", token)
    return respond_json(start_response, {"ok": True})


def std_streams(environ, start_response):
    token = query(environ)["token"]
    print(f"oxwsgi-test stderr print {token}", file=sys.stderr, flush=True)
    print(f"oxwsgi-test stdout print {token}", flush=True)
    return respond_json(start_response, {"ok": True})


application = dispatch({
    "wsgi-errors": wsgi_errors,
    "logging": python_logging,
    "std": std_streams,
})

# Statuses that have no body (204 No Content, 304 Not Modified) returned together with a
# body by the application. Mounted at /nobody. The server must drop that body (it would
# otherwise be read as the start of the next response on a keep-alive connection) and
# still call the iterable's close(), recorded in the state dir under ?token=.
import sys

sys.dont_write_bytecode = True
from apputil import dispatch, query, read_state, respond_json, safe_token, write_state  # noqa: E402

STATUSES = {"204": "204 No Content", "304": "304 Not Modified"}


class Body:
    def __init__(self, token):
        self.token = token

    def __iter__(self):
        yield b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
        yield b"LEAKED"

    def close(self):
        if self.token:
            write_state(self.token, {"closed": True})


def status(environ, start_response):
    code = environ.get("PATH_INFO", "").rstrip("/").rsplit("/", 1)[-1]
    token = query(environ).get("token")
    start_response(STATUSES[code], [("Content-Type", "text/plain")])
    return Body(safe_token(token) if token else None)


def state(environ, start_response):
    return respond_json(start_response, {"state": read_state(safe_token(query(environ)["token"]))})


application = dispatch({"status": status, "state": state})

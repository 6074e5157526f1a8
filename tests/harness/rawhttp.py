"""A raw-socket HTTP/1.x client for the cases where requests/urllib would
normalise what goes on the wire.

It sends exactly the bytes it is given and parses exactly what comes back, so
tests can see things a high-level client hides: a body cut short before its
Content-Length, a chunked body that never got its terminating chunk, a body
sent in answer to HEAD, interim 100 responses, pipelined responses, trailers.
"""

import hashlib
import socket
import time
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 15.0


class ProtocolError(Exception):
    """The server sent something that is not valid HTTP/1.x framing."""


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list = field(default_factory=list)  # [(name, value)] in wire order
    body: bytes = b""
    # False when the connection ended before the framing said the body was
    # over (Content-Length not reached, or no terminating zero-size chunk).
    complete: bool = True
    # How the body was delimited: "none", "length", "chunked" or "close".
    framing: str = "none"
    trailers: list = field(default_factory=list)
    raw_head: bytes = b""

    def header(self, name, default=None):
        """First value of a header, case-insensitive."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_header(self, name):
        return bool(self.header_all(name))

    def __repr__(self):
        return (f"<Response {self.status} {self.reason!r} framing={self.framing} "
                f"complete={self.complete} body={len(self.body)}B>")


class RawConnection:
    """One TCP connection. Use send() for exact bytes and read_response() to
    parse one response; repeat for keep-alive or pipelining."""

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    # -- plumbing ----------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        """Read more bytes into the buffer; return False at EOF."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(262144)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _read_line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ProtocolError(f"connection closed inside a line: {self.buf[:200]!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        """Up to n bytes; fewer only if the peer closed first."""
        while len(self.buf) < n:
            if not self._fill():
                break
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until_close(self):
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def closed_by_peer(self, wait=2.0):
        """True if the server closes the connection (EOF) within `wait`
        seconds without sending anything more. Extra bytes raise."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            if self.buf:
                raise ProtocolError(f"unexpected extra bytes: {self.buf[:200]!r}")
            try:
                more = self._fill()
            except socket.timeout:
                return False
            if more:
                raise ProtocolError(f"unexpected extra bytes: {self.buf[:200]!r}")
            return True
        finally:
            self.sock.settimeout(old)

    # -- parsing -----------------------------------------------------------
    def read_head(self):
        """Status line and headers of the next response (interim or final)."""
        # Wait for the full head so raw_head is exact.
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if not self.buf:
                    raise ProtocolError("connection closed before any response")
                raise ProtocolError(f"connection closed inside the head: {self.buf[:300]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ProtocolError(f"bad status line {status_line!r}")
        try:
            status = int(parts[1])
        except ValueError:
            raise ProtocolError(f"bad status code in {status_line!r}") from None
        headers = []
        for raw in lines[1:]:
            if raw[:1] in (b" ", b"\t"):
                raise ProtocolError(f"obsolete line folding in {raw!r}")
            if b":" not in raw:
                raise ProtocolError(f"header line without colon {raw!r}")
            k, v = raw.split(b":", 1)
            headers.append((k.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return Response(version=parts[0], status=status,
                        reason=parts[2] if len(parts) > 2 else "",
                        headers=headers, raw_head=head + b"\r\n\r\n")

    def drain_hashed(self):
        """Read until the server closes the connection, without keeping the data (a
        large body): (bytes read, their sha256 hexdigest), counting what is buffered."""
        h = hashlib.sha256(self.buf)
        got = len(self.buf)
        self.buf = b""
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            h.update(data)
            got += len(data)
        return got, h.hexdigest()

    def read_response(self, method="GET", skip_interim=True):
        """Parse one response. With skip_interim, 1xx responses (100 Continue)
        are consumed and the final response returned."""
        while True:
            resp = self.read_head()
            if 100 <= resp.status < 200:
                if skip_interim and resp.status != 101:
                    continue
                return resp
            break
        self._read_body(resp, method)
        return resp

    def _read_body(self, resp, method):
        te = ",".join(resp.header_all("Transfer-Encoding")).lower()
        cl = resp.header_all("Content-Length")
        if method.upper() == "HEAD" or resp.status in (204, 304):
            resp.framing = "none"
            return
        if "chunked" in te:
            resp.framing = "chunked"
            self._read_chunked(resp)
        elif cl:
            if len(set(cl)) != 1:
                raise ProtocolError(f"conflicting Content-Length {cl}")
            n = int(cl[0])
            resp.framing = "length"
            resp.body = self._read_exact(n)
            resp.complete = len(resp.body) == n
        else:
            resp.framing = "close"
            resp.body = self.read_until_close()

    def _read_chunked(self, resp):
        body = []
        while True:
            try:
                size_line = self._read_line()
            except ProtocolError:
                resp.complete = False
                break
            size_txt = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {size_line!r}") from None
            if size == 0:
                # Trailers up to the empty line.
                try:
                    while True:
                        line = self._read_line()
                        if not line:
                            break
                        k, v = line.split(b":", 1)
                        resp.trailers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
                except ProtocolError:
                    resp.complete = False
                break
            data = self._read_exact(size)
            body.append(data)
            if len(data) < size:
                resp.complete = False
                break
            crlf = self._read_exact(2)
            if crlf != b"\r\n":
                if len(crlf) < 2:
                    resp.complete = False
                    break
                raise ProtocolError(f"chunk not followed by CRLF: {crlf!r}")
        resp.body = b"".join(body)


def build_request(method, target, host="127.0.0.1", headers=(), body=None,
                  version="HTTP/1.1", close=False):
    """Bytes of a simple request. `headers` is a list of (name, value) pairs
    sent verbatim; Content-Length is added for a bytes body unless given."""
    lines = [f"{method} {target} {version}", f"Host: {host}"]
    names = {k.lower() for k, _ in headers}
    for k, v in headers:
        lines.append(f"{k}: {v}")
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if close and "connection" not in names:
        lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body
    return data


def chunked_body(chunks, trailers=()):
    """Encode a request body with chunked transfer coding, with optional
    trailer fields after the last chunk."""
    out = b""
    for c in chunks:
        if c:
            out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += f"{k}: {v}\r\n".encode("latin-1")
    return out + b"\r\n"


def request(port, method, target, headers=(), body=None, host="127.0.0.1",
            timeout=DEFAULT_TIMEOUT, version="HTTP/1.1"):
    """One request on a fresh connection with `Connection: close`; returns the
    parsed response."""
    with RawConnection(host, port, timeout=timeout) as c:
        c.send(build_request(method, target, host=host, headers=headers,
                             body=body, version=version, close=True))
        return c.read_response(method)


def wait_for_port(port, host="127.0.0.1", timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False

"""mod_python.Cookie for oxwsgi: one cookie per object; Cookie, SignedCookie (HMAC-MD5,
as mod_python signed them on Python 2, so old cookies still verify), MarshalCookie;
add_cookie, get_cookies, get_cookie. Written for oxwsgi from mod_python 3.5's
documentation; mod_python 3.5's SignedCookie/MarshalCookie fail on Python >= 3.8
(hmac.new without a digest), these do not."""

import base64
import hashlib
import hmac
import marshal
import re
import time


class CookieError(Exception):
    pass


# Attributes in the order they are rendered (mod_python's names; rendered as named).
_ATTRIBUTES = ("version", "path", "domain", "secure", "comment", "expires", "max_age",
               "samesite", "commentURL", "discard", "port", "httponly")
_FLAGS = ("secure", "discard", "httponly")

# name=value pairs of a Cookie header: a value may be double-quoted.
_PAIR = re.compile(r'\s*(?P<key>[^=;,\s]+)\s*=\s*(?P<val>"(?:[^\\"]|\\.)*"|[^;,]*)\s*[;,]?')


class Cookie:
    """A cookie: name, value and the attributes of _ATTRIBUTES."""

    DOWNGRADE = 0
    IGNORE = 1
    EXCEPTION = 3

    def __init__(self, name, value, **kw):
        self.__dict__["_attrs"] = {}
        self.name = name
        self.value = value
        self.__data__ = {}
        for k, v in kw.items():
            setattr(self, k.lower() if k != "commentURL" else k, v)

    def __setattr__(self, name, value):
        if name in ("name", "value", "__data__"):
            self.__dict__[name] = value
        elif name in _ATTRIBUTES:
            if name == "expires" and isinstance(value, (int, float)):
                value = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(value))
            self._attrs[name] = value
        else:
            raise AttributeError("Cookie has no attribute %r (valid: %s)" % (name, ", ".join(_ATTRIBUTES)))

    def __getattr__(self, name):
        attrs = self.__dict__.get("_attrs", {})
        if name in attrs:
            return attrs[name]
        raise AttributeError(name)

    def _attributes(self):
        out = []
        for name in _ATTRIBUTES:
            if name in self._attrs:
                out.append(name if name in _FLAGS else "%s=%s" % (name, self._attrs[name]))
        return out

    def __str__(self):
        return "; ".join(["%s=%s" % (self.name, self.value)] + self._attributes())

    def __repr__(self):
        return "<%s: %s>" % (self.__class__.__name__, str(self))

    @classmethod
    def parse(cls, s, **kw):
        """The cookies of a Cookie header value, as {name: cookie}."""
        return _parse_cookie(s, cls, **kw)


def _mac(secret, name, data):
    if not secret:
        raise CookieError("Cannot sign without a secret")
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    m = hmac.new(secret, name.encode("utf-8"), hashlib.md5)
    m.update(data.encode("utf-8") if isinstance(data, str) else data)
    return m.hexdigest()


class SignedCookie(Cookie):
    """A cookie whose value carries an HMAC (32 hex digits in front) under `secret`."""

    def __init__(self, name, value, secret=None, **kw):
        Cookie.__init__(self, name, value, **kw)
        self.__data__["secret"] = secret

    def hexdigest(self, s):
        return _mac(self.__data__.get("secret"), self.name, s)

    def __str__(self):
        return "; ".join(["%s=%s%s" % (self.name, self.hexdigest(self.value), self.value)]
                         + self._attributes())

    def unsign(self, secret):
        sig, val = self.value[:32], self.value[32:]
        if not hmac.compare_digest(_mac(secret, self.name, val), sig):
            raise CookieError("Incorrectly Signed Cookie: %s=%s" % (self.name, self.value))
        self.value = val
        self.__data__["secret"] = secret

    # What parse() checks each cookie with (MarshalCookie also decodes its value).
    def _verify(self, secret):
        self.unsign(secret)

    @classmethod
    def parse(cls, s, secret, mismatch=Cookie.DOWNGRADE, **kw):
        cookies = _parse_cookie(s, cls, **kw)
        for k in list(cookies):
            c = cookies[k]
            try:
                c._verify(secret)
            except CookieError:
                if mismatch == Cookie.EXCEPTION:
                    raise
                if mismatch == Cookie.IGNORE:
                    del cookies[k]
                else:
                    cookies[k] = Cookie(c.name, c.value)
        return cookies


class MarshalCookie(SignedCookie):
    """A signed cookie whose value is any marshal-able object."""

    def __str__(self):
        m = base64.b64encode(marshal.dumps(self.value)).decode("ascii")
        return "; ".join(["%s=%s%s" % (self.name, self.hexdigest(m), m)] + self._attributes())

    def unmarshal(self, secret):
        self.unsign(secret)
        try:
            self.value = marshal.loads(base64.b64decode(self.value))
        except (ValueError, EOFError, TypeError) as e:
            raise CookieError("Invalid MarshalCookie %s: %s" % (self.name, e))

    _verify = unmarshal


def _parse_cookie(s, cls, names=None):
    out = {}
    for m in _PAIR.finditer(s):
        key, val = m.group("key"), m.group("val").strip()
        if key.startswith("$") or (names is not None and key not in names):
            continue  # RFC 2965 attributes ($Path...) are not cookies
        out[key] = cls(key, val)
    return out


def add_cookie(req, cookie, value="", **kw):
    """Add a Set-Cookie header (and, for the first, Cache-Control: no-cache="set-cookie")."""
    if not isinstance(cookie, Cookie):
        cookie = Cookie(cookie, value, **kw)
    if "Set-Cookie" not in req.headers_out:
        req.headers_out.add("Cache-Control", 'no-cache="set-cookie"')
    req.headers_out.add("Set-Cookie", str(cookie))


def get_cookies(req, Class=Cookie, **kw):
    """The request's cookies as {name: cookie} of Class (SignedCookie/MarshalCookie
    need secret=...)."""
    if "cookie" not in req.headers_in:
        return {}
    cookies = req.headers_in["cookie"]
    if isinstance(cookies, list):
        cookies = "; ".join(cookies)
    return Class.parse(cookies, **kw)


def get_cookie(req, name, Class=Cookie, **kw):
    """The cookie called name, or None."""
    return get_cookies(req, Class, names=[name], **kw).get(name)

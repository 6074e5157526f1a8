"""PEP 3333 "environ Variables": what the server puts in the environ."""

import json

import pytest
import requests

CGI_REQUIRED = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME", "SERVER_PORT",
                "SERVER_PROTOCOL"]
WSGI_REQUIRED = ["wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors",
                 "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"]


def dump(server, path="/env/dump", headers=None, method="GET", **kw):
    r = requests.request(method, server.url(path), headers=headers, timeout=15, **kw)
    assert r.status_code == 200, r.text[:500]
    return r.json()


def raw_dump(server, target, headers=(), method="GET"):
    r = server.raw_request(method, target, headers=headers)
    assert r.status == 200, r
    return json.loads(r.body)["environ"]


def test_required_keys_present(server):
    env = dump(server)["environ"]
    missing = [k for k in CGI_REQUIRED + WSGI_REQUIRED if k not in env]
    assert not missing, f"missing environ keys: {missing}"


def test_keys_and_cgi_values_are_native_strings(server):
    # PEP 3333: keys are native strings; "CGI" variables (the upper-case
    # names without a dot) hold native strings.
    d = dump(server, headers={"X-Sample": "v"})
    assert d["key_types"] == ["str"]
    wrong = {k: v["type"] for k, v in d["environ"].items() if "." not in k and v["type"] != "str"}
    assert not wrong, f"CGI variables that are not str: {wrong}"


def test_wsgi_variables_types_and_values(server):
    env = dump(server)["environ"]
    assert env["wsgi.version"] == {"type": "tuple", "value": [1, 0]}
    assert env["wsgi.url_scheme"] == {"type": "str", "value": "http"}
    for k in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert env[k]["type"] == "bool", (k, env[k])
    assert env["wsgi.run_once"]["value"] is False


def test_multithread_multiprocess_match_server_model(server):
    # Every configuration in the harness runs several worker processes; all
    # but Apache prefork run requests on several threads per process.
    env = dump(server)["environ"]
    threaded = not (server.kind == "apache" and getattr(server, "mpm", None) == "prefork")
    assert env["wsgi.multiprocess"]["value"] is True
    assert env["wsgi.multithread"]["value"] is threaded


def test_input_and_errors_have_the_pep_methods(server):
    d = dump(server)
    assert d["input_methods"] == ["read", "readline", "readlines", "__iter__"]
    assert d["errors_methods"] == ["write", "writelines", "flush"]


def test_server_port_name_protocol(server):
    env = dump(server)["environ"]
    assert env["SERVER_PORT"]["value"] == str(server.port)
    assert env["SERVER_NAME"]["value"] in ("127.0.0.1", "localhost")
    assert env["SERVER_PROTOCOL"]["value"] == "HTTP/1.1"
    assert env["REQUEST_METHOD"]["value"] == "GET"
    assert env["REMOTE_ADDR"]["value"] == "127.0.0.1"


def test_http_10_protocol(server):
    r = server.raw_request("GET", "/env/dump", version="HTTP/1.0")
    assert r.status == 200
    env = json.loads(r.body)["environ"]
    assert env["SERVER_PROTOCOL"]["value"] == "HTTP/1.0"


def test_script_name_and_path_info_split(server):
    env = dump(server, "/env/dump/extra/path")["environ"]
    assert env["SCRIPT_NAME"]["value"] == "/env"
    assert env["PATH_INFO"]["value"] == "/dump/extra/path"


def test_script_name_of_a_two_segment_mount(server):
    env = dump(server, "/deep/mount/dump/x")["environ"]
    assert env["SCRIPT_NAME"]["value"] == "/deep/mount"
    assert env["PATH_INFO"]["value"] == "/dump/x"


def test_mount_point_itself_gives_empty_path_info(server):
    # PEP 3333: PATH_INFO "may be empty if the request URL targets the
    # application root and does not have a trailing slash".
    r = requests.get(server.url("/deep/mount"), timeout=15)
    assert r.status_code == 404  # the app's own 404, which echoes PATH_INFO
    assert r.json()["PATH_INFO"] == ""


def test_path_info_is_percent_decoded(server):
    env = dump(server, "/env/dump/a%20b/c%2Bd")["environ"]
    assert env["PATH_INFO"]["value"] == "/dump/a b/c+d"


def test_path_info_non_ascii_is_latin1_decoded(server):
    # UTF-8 bytes of "é" (C3 A9) must arrive as two latin-1 code points:
    # PEP 3333 "native strings ... decoded as ISO-8859-1".
    env = dump(server, "/env/dump/caf%C3%A9")["environ"]
    assert env["PATH_INFO"]["value"] == "/dump/caf\u00c3\u00a9"
    assert env["PATH_INFO"]["value"].encode("latin-1").decode("utf-8") == "/dump/caf\u00e9"


def test_query_string_is_raw(server):
    env = dump(server, "/env/dump?a=1&b=%20x&c=caf%C3%A9&d")["environ"]
    assert env["QUERY_STRING"]["value"] == "a=1&b=%20x&c=caf%C3%A9&d"


def test_query_string_empty_or_absent(server):
    env = dump(server)["environ"]
    assert env.get("QUERY_STRING", {"value": ""})["value"] == ""


def test_http_headers_become_http_variables(server):
    env = dump(server, headers={"X-Custom-Header": "some value", "Accept-Language": "fr"})["environ"]
    assert env["HTTP_X_CUSTOM_HEADER"]["value"] == "some value"
    assert env["HTTP_ACCEPT_LANGUAGE"]["value"] == "fr"
    assert env["HTTP_HOST"]["value"] == f"127.0.0.1:{server.port}"


def test_header_value_bytes_are_latin1_decoded(server):
    # Raw byte E9 in a header value is "é" in latin-1.
    env = raw_dump(server, "/env/dump", headers=[("X-Latin", "\u00e9t\u00e9")])
    assert env["HTTP_X_LATIN"]["value"] == "\u00e9t\u00e9"


def test_whitespace_around_header_values_is_not_part_of_the_value(server):
    # RFC 9110 §5.5: spaces and tabs around a field value are not part of it. The value is
    # sent as "<SP><HTAB>padded  value<HTAB><SP><SP>" (rawhttp adds one SP after the colon).
    env = raw_dump(server, "/env/dump", headers=[("X-Pad", "\tpadded  value\t  "), ("X-Tabs", "\t\t")])
    assert env["HTTP_X_PAD"]["value"] == "padded  value"
    assert env["HTTP_X_TABS"]["value"] == ""


def test_content_type_and_length_are_not_http_prefixed(server):
    env = dump(server, method="POST", data=b"abc", headers={"Content-Type": "text/x-test"})["environ"]
    assert env["CONTENT_TYPE"]["value"] == "text/x-test"
    assert env["CONTENT_LENGTH"]["value"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_repeated_header_is_combined(server):
    env = raw_dump(server, "/env/dump", headers=[("X-Multi", "a"), ("X-Multi", "b")])
    assert env["HTTP_X_MULTI"]["value"].replace(" ", "") == "a,b"


def test_underscore_header_cannot_spoof_dash_header(server):
    # "X_Forwarded_For" and "X-Forwarded-For" map to the same CGI name; a
    # server must not let the underscore form set (or override) it. mod_wsgi
    # and nginx both drop header names containing underscores.
    env = raw_dump(server, "/env/dump", headers=[("X-Forwarded-For", "10.0.0.1"),
                                                 ("X_Forwarded_For", "6.6.6.6"),
                                                 ("X_Only_Underscore", "spoof")])
    assert env["HTTP_X_FORWARDED_FOR"]["value"] == "10.0.0.1"
    assert "HTTP_X_ONLY_UNDERSCORE" not in env


def test_authorization_not_passed_by_default(server):
    # As mod_wsgi without WSGIPassAuthorization: the app must not see credentials.
    env = dump(server, headers={"Authorization": "Basic dXNlcjpwYXNz"})["environ"]
    assert "HTTP_AUTHORIZATION" not in env


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_request_method(server, method):
    env = dump(server, method=method, data=b"")["environ"]
    assert env["REQUEST_METHOD"]["value"] == method


def test_environ_is_fresh_per_request(server):
    # A key one request's headers add must not leak into the next one.
    dump(server, headers={"X-Leak-Check": "1"})
    for _ in range(6):
        assert "HTTP_X_LEAK_CHECK" not in dump(server)["environ"]


# --- the request target as raw bytes ------------------------------------------
# The target is sent byte for byte (rawhttp encodes str as latin-1), so these cases see
# what a server does with bytes a browser would have percent-encoded.

def test_raw_utf8_bytes_in_path_are_latin1_decoded(server):
    # Raw UTF-8 "é" (C3 A9): PATH_INFO holds the two bytes as two latin-1 code points
    # (PEP 3333, "Unicode Issues").
    env = raw_dump(server, "/env/dump/caf\u00c3\u00a9")
    assert env["PATH_INFO"]["value"] == "/dump/caf\u00c3\u00a9"


def test_raw_latin1_byte_in_path(server):
    # A lone 0xE9 byte (latin-1 "é", invalid UTF-8) must survive as U+00E9.
    env = raw_dump(server, "/env/dump/caf\u00e9")
    assert env["PATH_INFO"]["value"] == "/dump/caf\u00e9"


def test_raw_bytes_in_query_string_are_kept(server):
    env = raw_dump(server, "/env/dump?q=caf\u00c3\u00a9&r=\u00e9")
    assert env["QUERY_STRING"]["value"] == "q=caf\u00c3\u00a9&r=\u00e9"


def test_encoded_slash_is_refused_or_decoded(server):
    # %2F in the path is the web server's policy, not the module's: Apache refuses it by
    # default (AllowEncodedSlashes Off -> 404), nginx decodes it. Either way the app must
    # never see a PATH_INFO that is neither.
    r = server.raw_request("GET", "/env/dump/a%2Fb")
    if r.status == 404:
        assert server.kind == "apache"
    else:
        assert r.status == 200
        assert json.loads(r.body)["environ"]["PATH_INFO"]["value"] == "/dump/a/b"


@pytest.mark.parametrize("target, path_info", [
    ("/env/dump/x/../y", "/dump/y"),
    ("/env/dump/./y", "/dump/y"),
    ("/env/./dump/z", "/dump/z"),
    ("/deep/mount/../../env/dump/w", "/dump/w"),
])
def test_dot_segments_are_resolved_before_the_app(server, target, path_info):
    env = raw_dump(server, target)
    assert env["PATH_INFO"]["value"] == path_info


def test_empty_header_value_is_an_empty_string(server):
    env = raw_dump(server, "/env/dump", headers=[("X-Empty", "")])
    assert env["HTTP_X_EMPTY"]["value"] == ""

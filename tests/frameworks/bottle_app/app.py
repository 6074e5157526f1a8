"""Bottle under the module."""

import hashlib

import bottle

app = bottle.Bottle()


@app.route("/hello/<name>", name="hello")
def hello(name):
    return {"hello": name, "script_name": bottle.request.script_name,
            "url": bottle.request.url, "route_url": app.get_url("hello", name="x")}


@app.post("/json")
def json_echo():
    return {"received": bottle.request.json}


@app.post("/form")
def form():
    return {"form": {k: bottle.request.forms.getunicode(k) for k in bottle.request.forms}}


@app.post("/upload")
def upload():
    up = bottle.request.files.get("file")
    data = up.file.read()
    return {"filename": up.raw_filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.route("/query")
def query():
    return {"query": dict(bottle.request.query.decode().allitems()),
            "raw": bottle.request.query_string}


@app.route("/redirect")
def redirect():
    bottle.redirect(app.get_url("hello", name="redirected"))


application = app

"""Flask under the module: forms, JSON, sessions, multipart upload, streaming,
and URL building under SCRIPT_NAME."""

import hashlib
import os

from flask import Flask, Response, jsonify, request, session, stream_with_context, url_for

app = Flask(__name__)
# Fixed key: several worker processes must all accept the same session cookie.
app.secret_key = "oxwsgi-test-flask-secret"


@app.route("/")
def index():
    return "flask index"


@app.route("/form", methods=["GET", "POST"])
def form():
    if request.method == "GET":
        return ('<form method="post"><input name="name"><input name="colour"></form>',
                200, {"Content-Type": "text/html"})
    return jsonify(form={k: request.form.getlist(k) for k in request.form},
                   method=request.method)


@app.route("/json", methods=["POST"])
def json_echo():
    data = request.get_json()
    return jsonify(received=data, content_type=request.content_type)


@app.route("/session/set")
def session_set():
    session["value"] = request.args["v"]
    return jsonify(set=session["value"])


@app.route("/session/get")
def session_get():
    return jsonify(value=session.get("value"), pid=os.getpid())


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                   field=request.form.get("field"))


@app.route("/stream")
def stream():
    n = int(request.args.get("n", "10"))

    def gen():
        for i in range(n):
            yield f"line {i}\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/urls")
def urls():
    return jsonify(external=url_for("upload", _external=True),
                   relative=url_for("stream", n=3),
                   script_root=request.script_root,
                   path=request.path,
                   url=request.url)


@app.route("/boom")
def boom():
    # Flask catches it and answers its own 500; the traceback goes to the log.
    raise RuntimeError("oxwsgi-test flask boom " + request.args.get("token", ""))

"""A plain Werkzeug app (routing Map, Request/Response) under the module."""

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

url_map = Map([
    Rule("/", endpoint="index"),
    Rule("/echo", endpoint="echo", methods=["POST"]),
    Rule("/urls", endpoint="urls"),
    Rule("/go", endpoint="go"),
])


def index(request, adapter):
    return Response("werkzeug index")


def echo(request, adapter):
    return _json({
        "form": request.form.to_dict(flat=False),
        "args": request.args.to_dict(flat=False),
        "data_len": len(request.get_data()),
    })


def urls(request, adapter):
    return _json({"external": adapter.build("index", force_external=True),
                  "relative": adapter.build("echo"),
                  "script_root": request.script_root,
                  "base_url": request.base_url})


def go(request, adapter):
    return redirect(adapter.build("index"))


def _json(obj):
    import json
    return Response(json.dumps(obj, sort_keys=True), mimetype="application/json")


HANDLERS = {"index": index, "echo": echo, "urls": urls, "go": go}


@Request.application
def application(request):
    adapter = url_map.bind_to_environ(request.environ)
    try:
        endpoint, _ = adapter.match()
        return HANDLERS[endpoint](request, adapter)
    except HTTPException as e:
        return e

"""Falcon (WSGI flavour) under the module."""

import hashlib

import falcon


class Things:
    def on_get(self, req, resp, thing_id):
        resp.media = {"id": thing_id, "relative_uri": req.relative_uri, "url": req.url,
                      "root_path": req.root_path, "params": req.params}

    def on_put(self, req, resp, thing_id):
        resp.media = {"id": thing_id, "body": req.get_media()}
        resp.status = falcon.HTTP_201


class Echo:
    def on_post(self, req, resp):
        data = req.bounded_stream.read()
        resp.media = {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "content_length": req.content_length}


class Stream:
    def on_get(self, req, resp):
        n = req.get_param_as_int("n", default=5)
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = (f"part {i}\n".encode() for i in range(n))


class Missing:
    def on_get(self, req, resp):
        raise falcon.HTTPNotFound(title="nope", description="oxwsgi test not found")


application = falcon.App()
application.add_route("/things/{thing_id}", Things())
application.add_route("/echo", Echo())
application.add_route("/stream", Stream())
application.add_route("/missing", Missing())

"""The Flask app of the flask workload: one view rendering templates/page.html (Jinja2)."""

import os

from flask import Flask, render_template

import pagedata

app = Flask(__name__, template_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "templates"))


@app.route("/flask/page")
def page():
    return render_template("page.html", **pagedata.context())


application = app.wsgi_app

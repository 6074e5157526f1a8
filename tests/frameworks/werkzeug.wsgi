# werkzeug, mounted at /werkzeug. Puts tests/frameworks (in the stage) on sys.path.
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from werkzeug_app.app import application  # noqa: E402

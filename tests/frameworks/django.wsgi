# django, mounted at /django. Puts tests/frameworks (in the stage) on sys.path.
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

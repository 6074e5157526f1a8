"""The Django app of the django workload: one view rendering templates/page.html with
Django's template engine (cached loader), settings in code, no database, and the
stateless middleware of Django's default project (security, common, clickjacking)."""

import os

import django
from django.conf import settings
from django.shortcuts import render
from django.urls import path

import pagedata

settings.configure(
    DEBUG=False,
    SECRET_KEY="oxwsgi-bench-not-secret",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ],
    TEMPLATES=[{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")],
    }],
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()


def page(request):
    return render(request, "page.html", pagedata.context())


urlpatterns = [path("django/page", page)]

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)

application = get_wsgi_application()

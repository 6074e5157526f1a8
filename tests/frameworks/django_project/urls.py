from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("form/", views.form, name="form"),
    path("upload/", views.upload, name="upload"),
    path("urls/", views.urls, name="urls"),
    path("whoami/", views.whoami, name="whoami"),
    path("admin/", admin.site.urls),
]

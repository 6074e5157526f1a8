import hashlib

from django import forms
from django.http import HttpResponse, JsonResponse
from django.template import engines
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

FORM_PAGE = engines["django"].from_string(
    '<form method="post" action="{{ action }}">{% csrf_token %}{{ form.as_p }}'
    '<input type="submit"></form>')


class PersonForm(forms.Form):
    name = forms.CharField(max_length=50)
    age = forms.IntegerField(min_value=0, max_value=150)


def index(request):
    return HttpResponse("django index")


def form(request):
    if request.method == "POST":
        f = PersonForm(request.POST)
        if f.is_valid():
            return JsonResponse({"valid": True, "data": f.cleaned_data})
        return JsonResponse({"valid": False, "errors": f.errors.get_json_data()}, status=400)
    return HttpResponse(FORM_PAGE.render({"form": PersonForm(), "action": reverse("form")}, request))


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"name": f.name, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest(),
                         "note": request.POST.get("note")})


def urls(request):
    return JsonResponse({
        "reverse_form": reverse("form"),
        "absolute_form": request.build_absolute_uri(reverse("form")),
        "absolute_here": request.build_absolute_uri(),
        "script_name": request.META.get("SCRIPT_NAME"),
        "path": request.path,
        "path_info": request.path_info,
    })


def whoami(request):
    return JsonResponse({"authenticated": request.user.is_authenticated,
                         "username": request.user.get_username() if request.user.is_authenticated else None,
                         "is_staff": request.user.is_staff})

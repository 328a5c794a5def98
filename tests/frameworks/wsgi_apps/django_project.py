"""A Django project made as a user makes one: `django-admin startproject`, then a small app
written into it, migrations run, a superuser created and the static files collected.

`make_project(root)` leaves in `root` a project serving the admin, WhiteNoise static
files and the `shop` app (its views below, as source text), on a SQLite file in `root`.
"""

import os
import subprocess
import sys
from pathlib import Path

PROJECT = "mysite"
SETTINGS = f"{PROJECT}.settings"
ADMIN_USER, ADMIN_PASSWORD = "admin", "pounce-admin-pw-1"

_SETTINGS_TAIL = """
# -- added by tests/frameworks (what a deployment changes) --------------------------
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS += ["shop"]
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
STATIC_ROOT = BASE_DIR / "staticfiles"
LOGGING = {  # tracebacks of failed requests to stderr, as with DEBUG on
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}
"""

_URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls), path("shop/", include("shop.urls"))]
"""

_SHOP_URLS = """
from django.urls import path

from . import views

urlpatterns = [
    path("form/", views.form),
    path("stream/", views.stream),
    path("astream/", views.astream),
    path("users/", views.users),
    path("boom/", views.boom),
]
"""

_SHOP_VIEWS = '''
"""The test app: a form, a stream for WSGI and one for ASGI, the database, a failure."""

import asyncio
import hashlib
import os
import sys
import threading
import time

from django.contrib.auth.models import User
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def form(request):
    files = {
        name: {"name": f.name, "sha256": hashlib.sha256(f.read()).hexdigest()}
        for name, f in request.FILES.items()
    }
    return JsonResponse({"post": dict(request.POST.lists()), "files": files})


def _gate_open(request):
    gate = request.GET.get("gate")
    return not gate or os.path.exists(gate)


def stream(request):
    def blocks():
        yield b"first\\n"
        deadline = time.monotonic() + 20
        while not _gate_open(request) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"second\\n"

    return StreamingHttpResponse(blocks(), content_type="text/plain")


def astream(request):
    async def blocks():
        yield b"first\\n"
        deadline = time.monotonic() + 20
        while not _gate_open(request) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        yield b"second\\n"

    return StreamingHttpResponse(blocks(), content_type="text/plain")


def users(request):
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return JsonResponse(
        {
            "users": User.objects.count(),
            "thread": threading.current_thread().name,
            "connection": id(connection.connection),
            "gil": gil,
        }
    )


def boom(request):
    raise RuntimeError("django view failed on purpose")
'''


def _run(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    full = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, **(env or {})}
    subprocess.run([sys.executable, *args], cwd=root, env=full, check=True, capture_output=True)


def make_project(root: Path) -> Path:
    """Create, configure and migrate the project in `root`; return `root`."""
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", PROJECT, str(root)],
        check=True,
        capture_output=True,
    )
    settings = root / PROJECT / "settings.py"
    settings.write_text(settings.read_text() + _SETTINGS_TAIL)
    (root / PROJECT / "urls.py").write_text(_URLS)
    shop = root / "shop"
    shop.mkdir()
    (shop / "__init__.py").write_text("")
    (shop / "urls.py").write_text(_SHOP_URLS)
    (shop / "views.py").write_text(_SHOP_VIEWS)
    _run(root, "manage.py", "migrate", "--noinput")
    admin = {"DJANGO_SUPERUSER_USERNAME": ADMIN_USER, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}
    admin["DJANGO_SUPERUSER_EMAIL"] = "admin@example.com"
    _run(root, "manage.py", "createsuperuser", "--noinput", env=admin)
    _run(root, "manage.py", "collectstatic", "--noinput")
    return root

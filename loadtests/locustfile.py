"""Locust profiles of real traffic against loadtests/demo_app.py.

wrk measures how fast one request can be repeated; these profiles check that a mix of
clients behaves: people reading pages with pauses, API clients writing and reading back,
large uploads and SSE subscribers holding a stream, all at once.

    .venv/bin/pip install -e '.[loadtest]'     # locust, into a GIL venv
    pounce-sync --app-dir loadtests demo_app:app
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 50 -r 10 -t 30s \\
        -H http://127.0.0.1:8000

Locust needs gevent, which does not build on free-threaded CPython 3.13t: run the load
generator from a GIL interpreter; the server under test can be either.
"""

import os
import random
import time

from locust import HttpUser, between, task
from locust.clients import ResponseContextManager
from requests import RequestException

UPLOAD_BYTES = 1024 * 1024
SSE_EVENTS = 5


class Browser(HttpUser):
    """A person reading the site: small GETs, seconds apart."""

    weight = 5
    wait_time = between(1, 3)

    @task(3)
    def page(self) -> None:
        self.client.get("/")
        self.client.get("/static/app.css")

    @task(1)
    def listing(self) -> None:
        self.client.get("/api/items")


class ApiClient(HttpUser):
    """A program using the JSON API: create an item, read it back, list."""

    weight = 3
    wait_time = between(0.2, 1.0)

    @task(2)
    def create_and_read(self) -> None:
        item = {"name": f"widget {random.randrange(10_000)}", "price": random.randrange(1, 100)}
        with self.client.post("/api/items", json=item, catch_response=True) as response:
            if response.status_code != 201 or response.json().get("name") != item["name"]:
                response.failure(f"create answered {response.status_code}: {response.text[:80]}")
                return
            item_id = response.json()["id"]
        # Items are per process; a keep-alive connection usually returns to the same one,
        # so a 404 here is not the server's fault: it is reported under its own name.
        with self.client.get(
            f"/api/items/{item_id}", name="/api/items/<id>", catch_response=True
        ) as read:
            if read.status_code == 404:
                read.success()

    @task(1)
    def listing(self) -> None:
        self.client.get("/api/items")


class Uploader(HttpUser):
    """Someone uploading a 1 MiB file now and then; the server must read all of it."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.payload = os.urandom(UPLOAD_BYTES)

    @task
    def upload(self) -> None:
        headers = {"content-type": "application/octet-stream"}
        with self.client.post(
            "/upload", data=self.payload, headers=headers, catch_response=True
        ) as response:
            if response.status_code != 200 or response.json().get("bytes") != UPLOAD_BYTES:
                response.failure(f"upload answered {response.status_code}: {response.text[:80]}")


class SseSubscriber(HttpUser):
    """A browser tab following a progress feed: a stream of events that ends by itself.

    Its response time is to the end of the stream, not to the response head (which is
    what locust times for `stream=True`).
    """

    weight = 1
    wait_time = between(1, 3)

    @task
    def follow(self) -> None:
        headers = {"accept": "text/event-stream"}
        with self.client.get(
            f"/events?n={SSE_EVENTS}",
            name="/events",
            headers=headers,
            stream=True,
            catch_response=True,
        ) as response:
            try:
                lines = list(response.iter_lines())
            except RequestException as exc:
                response.failure(f"stream broke: {exc}")
                return
            meta = response.request_meta
            meta["response_time"] = (time.time() - meta["start_time"]) * 1000
            meta["response_length"] = sum(len(line) + 1 for line in lines)
            _check_events(response, [line for line in lines if line.startswith(b"event:")])


def _check_events(response: ResponseContextManager, events: list[bytes]) -> None:
    if response.status_code != 200 or events.count(b"event: tick") != SSE_EVENTS:
        response.failure(f"status {response.status_code}, events {events[:8]}")
    elif events[-1] != b"event: end":
        response.failure("stream ended without its end event")

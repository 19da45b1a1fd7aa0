"""A tiny WSGI app for the Rollbridge gunicorn example.

/ping answers "pong" (Rollbridge's health check); every other path answers JSON naming the
release that served it, so you can watch traffic move during a deploy. Standard library only.
Graceful shutdown is gunicorn's job: on SIGTERM it stops accepting, lets workers finish their
current request (up to --graceful-timeout), then exits.
"""
import json
import os

RELEASE = os.environ.get("ROLLBRIDGE_RELEASE_ID", "dev")
REVISION = os.environ.get("ROLLBRIDGE_REVISION", "")


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        return respond(start_response, "text/plain", b"pong")
    body = json.dumps({"release": RELEASE, "revision": REVISION, "pid": os.getpid(), "path": path})
    return respond(start_response, "application/json", body.encode("utf-8"))


def respond(start_response, content_type, body):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]

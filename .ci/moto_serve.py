"""moto_server with one request handled at a time.

moto's backends are not thread-safe: under concurrent requests (the reconciler sends up to 32)
the standalone server sometimes fails with `RuntimeError: dictionary changed size during
iteration` (an HTTP 500). Real AWS has no such failure, so the tests would only measure moto's.
This launcher is `moto_server` (same app, same request handler) with the WSGI app behind a lock:
connections are still accepted concurrently, requests are served one after another, which is
what moto does at heart anyway (~7 ms each).

Usage: python moto_serve.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

# moto 5.2.5 copies a launch template's tags when the template is made (`LaunchTemplate.tags`),
# so DescribeLaunchTemplates never shows the tags CreateTags adds later (AWS does: an adopted
# template's `infra:stack` would stay invisible to the owned read). Read them from moto's tag
# store on every answer instead; setting them (the constructor does) is ignored.
from moto.ec2.models.launch_templates import LaunchTemplate

LaunchTemplate.tags = property(lambda self: self.get_tags(), lambda self, value: None)

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
app.debug = True
lock = threading.Lock()


def serialized(environ, start_response):
    with lock:
        # Produce the whole body inside the lock: moto builds responses lazily at times.
        return [b"".join(app(environ, start_response))]


run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)

"""A stand-in single-user server for the bench pods: answers HTTP on JUPYTERHUB_SERVICE_URL.

The hub considers a server up when its URL answers anything but a 5xx, so this is enough for
the hub's side of a spawn. A real jupyterhub-singleuser needs about a second of CPU to start; a
hundred of them on two cores would measure the machine, not the hub.
"""

import http.server
import os
import sys
from importlib.metadata import version
from urllib.parse import urlparse

_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8888/")
_hub_version = version("jupyterhub")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"bench single-user stand-in\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-JupyterHub-Version", _hub_version)
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer((_url.hostname or "127.0.0.1", _url.port or 8888), Handler)
    print(f"listening on {_url.hostname}:{_url.port}", file=sys.stderr, flush=True)
    server.serve_forever()

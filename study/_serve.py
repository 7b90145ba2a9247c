"""Serving optuna-dashboard, read-only unless asked otherwise.

optuna-dashboard has no authentication and no read-only mode of its own (0.21): any
process that can reach its port can delete a study, its artifacts, or tell trials. So
``snn-study dashboard`` answers only requests that read (GET, HEAD, OPTIONS) and
refuses every other with 403, unless started with ``--writable``.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

#: the HTTP methods that only read
READING = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSAL = "snn-study dashboard is read-only; restart it with --writable to change studies"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_only(app: WSGIApp) -> WSGIApp:
    """``app`` answering only the requests that read; any other gets 403 and a JSON reason, as the dashboard's
    own errors have."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in READING:
            return app(environ, start_response)
        body = json.dumps({"reason": REFUSAL}).encode()
        start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return guarded


class _Handler(WSGIRequestHandler):
    """Request lines on stderr, as optuna-dashboard's own server prints them, without reverse DNS lookups."""

    def address_string(self) -> str:
        return str(self.client_address[0])


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


def serve(storage: Any, host: str, port: int, artifact_store: Any, writable: bool) -> None:
    """Run optuna-dashboard on ``host:port`` over ``storage`` until Ctrl-C; read-only unless ``writable``."""
    import optuna_dashboard

    app: WSGIApp = optuna_dashboard.wsgi(storage, artifact_store=artifact_store)
    if not writable:
        app = read_only(app)
    server_class = _Server6 if ":" in host else WSGIServer
    with make_server(host, port, app, server_class=server_class, handler_class=_Handler) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("snn-study dashboard: stopped", file=sys.stderr)

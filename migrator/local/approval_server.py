"""The approval API on 127.0.0.1: each HTTP request becomes the API Gateway event the
deployed API would send, handled by the same Lambda handler."""

from __future__ import annotations

import base64
import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from migrator.config import LAMBDAS_DIR
from migrator.local.fidelity import LambdaContext

_handler = None


def approvals_api_handler():
    global _handler
    if _handler is None:
        spec = importlib.util.spec_from_file_location("lambdas.approvals_api.handler",
                                                      LAMBDAS_DIR / "approvals_api" / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _handler = module.handler
    return _handler


def api_gateway_event(method: str, raw_path: str, headers: dict, body: bytes, source_ip: str) -> dict:
    url = urlparse(raw_path)
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    parts = url.path.strip("/").split("/")
    return {
        "resource": "/approvals/{approval_id}", "path": url.path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: v for k, v in parse_qs(url.query).items()} or None,
        "pathParameters": {"approval_id": parts[-1]} if len(parts) == 2 else None,
        "body": base64.b64encode(body).decode() if body else None, "isBase64Encoded": bool(body),
        "requestContext": {"resourcePath": "/approvals/{approval_id}", "httpMethod": method, "path": url.path,
                           "stage": "local", "requestId": "local",
                           "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent", "")}},
    }


class ApprovalServer:
    def __init__(self, clock):
        handler = approvals_api_handler()
        self.clock = clock
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                event = api_gateway_event(method, self.path, dict(self.headers), self.rfile.read(length) if length else b"",
                                          self.client_address[0])
                with server.clock.busy():
                    response = handler(event, LambdaContext("al2023-approvals-api"))
                body = response.get("body") or ""
                data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
                self.send_response(response["statusCode"])
                for key, value in (response.get("headers") or {}).items():
                    self.send_header(key, value)
                for key, values in (response.get("multiValueHeaders") or {}).items():
                    for value in values:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="approval-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

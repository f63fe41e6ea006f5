"""The approval API on 127.0.0.1: each HTTP request becomes the API Gateway event the
deployed API would send, handled by the same Lambda handler."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from migrator.workstation.local.fidelity import LambdaContext
from migrator.workflows import APPROVALS_API


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
        handler = APPROVALS_API.load()
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
                    response = handler(event, LambdaContext(APPROVALS_API.local_function_name))
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

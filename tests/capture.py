"""A capture server on 127.0.0.1: records every request that reaches it (method, path, headers,
body) and answers like a tiny OpenAI-compatible server (a model list, a two-token stream)."""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def raw(self) -> bytes:
        """Everything the request carried, for searching."""
        head = "".join(f"{k}: {v}\n" for k, v in self.headers.items())
        return f"{self.method} {self.path}\n{head}".encode() + self.body


@dataclass
class CaptureServer:
    url: str
    requests: list[Captured] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    def chats(self) -> list[Captured]:
        return [r for r in list(self.requests) if r.path.endswith("/chat/completions")]

    def everything(self) -> bytes:
        return b"\n".join(r.raw for r in list(self.requests))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


_CHUNK = 'data: {"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n'
_END = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def start_capture_server() -> CaptureServer:
    capture = CaptureServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _record(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            capture.requests.append(Captured(self.command, self.path, headers, body))

        def do_GET(self) -> None:
            self._record()
            payload = json.dumps({"object": "list", "data": [{"id": "cap", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            self._record()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (_CHUNK % " hello", _CHUNK % " world", _END):
                data = piece.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    capture.url = f"http://127.0.0.1:{server.server_address[1]}"
    capture._server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return capture

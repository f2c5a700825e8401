"""An OTLP/HTTP trace receiver on loopback: accepts `/v1/traces` protobuf posts and
decodes them with `opentelemetry-proto` (the package the exporter itself depends on).

`hold` makes it take a request and not answer until released (a stuck collector).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    name: str
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    kind: int
    attributes: dict[str, Any]
    events: list[str]
    service: str


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Receiver:
    def __init__(self, hold: bool = False) -> None:
        self.spans: list[ReceivedSpan] = []
        self.paths: list[str] = []
        self.hold = hold
        self.got_request = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.paths.append(self.path)
                receiver.got_request.set()
                if receiver.hold:
                    receiver.release.wait(30)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver._keep(request)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        ReceivedSpan(
                            s.name,
                            s.trace_id,
                            s.span_id,
                            s.parent_span_id,
                            s.kind,
                            {a.key: _value(a.value) for a in s.attributes},
                            [e.name for e in s.events],
                            str(resource.get("service.name")),
                        )
                    )


@contextmanager
def receiving(hold: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(hold)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.httpd.shutdown()
        receiver.httpd.server_close()


def refused_base() -> str:
    """A loopback base URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"

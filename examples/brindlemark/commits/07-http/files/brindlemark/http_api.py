"""The ledger's HTTP interface: bay controllers post readings, the shed's monitoring asks for health."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .batching import BatchWindow
from .readings import BayReading, ReadingError, parse_reading

MAX_BODY = 256 * 1024  # bytes; a larger POST /v1/readings is refused with 413 and BRM-140


class LedgerState:
    """What the handlers share: the known bays, the open batch window and each bay's newest reading."""

    def __init__(self, bays: set[str], window: BatchWindow):
        self.bays = bays
        self.window = window
        self.latest: dict[str, BayReading] = {}
        self.lock = threading.Lock()

    def accept(self, lines: list[str]) -> tuple[int, list[dict]]:
        """Parse JSON lines into the batch window; return the count accepted and one error per rejected line."""
        accepted, errors = 0, []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                reading = parse_reading(json.loads(line), self.bays)
            except ReadingError as err:
                errors.append({"line": number, "code": err.code, "error": str(err)})
                continue
            except (ValueError, KeyError, TypeError):
                errors.append({"line": number, "code": "BRM-141", "error": "BRM-141 not a reading object"})
                continue
            with self.lock:
                self.window.add(reading)
                newest = self.latest.get(reading.bay)
                if newest is None or reading.time > newest.time:
                    self.latest[reading.bay] = reading
            accepted += 1
        return accepted, errors


def make_handler(state: LedgerState) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `state`; it answers POST /v1/readings, GET /v1/bays/<bay>/latest and GET /healthz."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "brindlemark"

        def do_POST(self) -> None:
            if self.path != "/v1/readings":
                return self._send(404, {"error": "no such endpoint"})
            length = int(self.headers.get("Content-Length", 0))
            if length > MAX_BODY:
                return self._send(413, {"code": "BRM-140", "error": f"BRM-140 body over {MAX_BODY} bytes"})
            body = self.rfile.read(length).decode("utf-8", "replace")
            accepted, errors = state.accept(body.splitlines())
            self._send(202, {"accepted": accepted, "rejected": errors})

        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self._send(200, "ok")
            parts = self.path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["v1", "bays"] and parts[3] == "latest":
                reading = state.latest.get(parts[2])
                if reading is None:
                    return self._send(404, {"error": f"no reading from bay {parts[2]} yet"})
                return self._send(200, {"bay": reading.bay, "time": reading.time.isoformat(),
                                        "temp_c": reading.temp_c, "humidity_pct": reading.humidity_pct,
                                        "vent_pct": reading.vent_pct})
            self._send(404, {"error": "no such endpoint"})

        def _send(self, status: int, body: dict | str) -> None:
            data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass  # controllers post every 20 seconds; an access log line each time would fill the SD card

    return Handler


def serve(state: LedgerState, address: str, port: int) -> ThreadingHTTPServer:
    """Start the HTTP server on `address`:`port` in a background thread and return it (port 7341 unless set)."""
    server = ThreadingHTTPServer((address, port), make_handler(state))
    threading.Thread(target=server.serve_forever, name="brindlemark-http", daemon=True).start()
    return server

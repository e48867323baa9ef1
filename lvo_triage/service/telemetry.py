"""``serve``'s metrics (Prometheus text format) and health check, over HTTP on 127.0.0.1.

    GET /metrics   counters and histograms of :class:`Metrics` (text format 0.0.4)
    GET /health    200 {"status": "ok", ...} while the service works, else 503

Hand-written with the standard library (``http.server`` in a thread): no client library, no
new dependency. The endpoint listens on the loopback interface only; a Prometheus agent or a
health probe on the same machine reads it. It shows counts and times, never patient data.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lvo_triage.result import Status, TriageResult

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
DELIVERY_KINDS = ("dicom", "webhook")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count (not thread-safe alone:
    :class:`Metrics` holds the lock)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            msg = f"histogram buckets {list(buckets)} must be increasing and not empty"
            raise ValueError(msg)
        self.buckets = tuple(float(b) for b in buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = [
            f'{name}_bucket{{le="{_number(bound)}"}} {n}'
            for bound, n in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {_number(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(float(value))


class Metrics:
    """What ``serve`` has done since it started; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.studies = dict.fromkeys((s.value for s in Status), 0)
        self.lvo_suspected = 0
        self.arrival_to_result = Histogram(LATENCY_BUCKETS_S)
        self.triage = Histogram(LATENCY_BUCKETS_S)
        self.deliveries = dict.fromkeys(DELIVERY_KINDS, 0)
        self.deliveries_failed = dict.fromkeys(DELIVERY_KINDS, 0)

    def result(self, result: TriageResult, *, arrival_to_result_s: float | None) -> None:
        """Count one triage result; ``arrival_to_result_s``: from its last file's arrival."""
        with self._lock:
            self.studies[result.status.value] += 1
            if result.status is Status.OK and result.lvo_suspected:
                self.lvo_suspected += 1
            total_ms = result.timings_ms.get("total")
            if total_ms is not None:
                self.triage.observe(total_ms / 1000.0)
            if arrival_to_result_s is not None:
                self.arrival_to_result.observe(max(0.0, arrival_to_result_s))

    def delivery(self, kind: str, *, ok: bool) -> None:
        """Count one delivery (all its attempts) to a destination of ``kind``."""
        with self._lock:
            (self.deliveries if ok else self.deliveries_failed)[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        """Counts for the health document."""
        with self._lock:
            return {
                "studies": dict(self.studies),
                "lvo_suspected": self.lvo_suspected,
                "deliveries_failed": sum(self.deliveries_failed.values()),
            }

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            lines = [
                "# HELP lvo_triage_studies_total Studies triaged, by result status.",
                "# TYPE lvo_triage_studies_total counter",
                *(f'lvo_triage_studies_total{{status="{s}"}} {n}' for s, n in self.studies.items()),
                "# HELP lvo_triage_lvo_suspected_total Studies with an LVO suspected.",
                "# TYPE lvo_triage_lvo_suspected_total counter",
                f"lvo_triage_lvo_suspected_total {self.lvo_suspected}",
                "# HELP lvo_triage_arrival_to_result_seconds From a study's last file arriving "
                "to its result written.",
                "# TYPE lvo_triage_arrival_to_result_seconds histogram",
                *self.arrival_to_result.lines("lvo_triage_arrival_to_result_seconds"),
                "# HELP lvo_triage_triage_seconds Triage time of a study (timings_ms total).",
                "# TYPE lvo_triage_triage_seconds histogram",
                *self.triage.lines("lvo_triage_triage_seconds"),
                "# HELP lvo_triage_deliveries_total Results delivered (SR and key image to a "
                "DICOM node, or a webhook call), by kind.",
                "# TYPE lvo_triage_deliveries_total counter",
                *(
                    f'lvo_triage_deliveries_total{{kind="{k}"}} {n}'
                    for k, n in self.deliveries.items()
                ),
                "# HELP lvo_triage_deliveries_failed_total Deliveries given up after every "
                "retry, by kind (the files stay in OUTBOX).",
                "# TYPE lvo_triage_deliveries_failed_total counter",
                *(
                    f'lvo_triage_deliveries_failed_total{{kind="{k}"}} {n}'
                    for k, n in self.deliveries_failed.items()
                ),
            ]
        return "\n".join(lines) + "\n"


class TelemetryServer:
    """``/metrics`` and ``/health`` on ``127.0.0.1:port`` in a background thread.

    ``health()`` returns ``(healthy, document)``; the document is sent as JSON with status 200
    when healthy, else 503. With ``port`` 0 the system picks a free port (:attr:`port`).
    """

    def __init__(
        self,
        *,
        port: int,
        metrics: Metrics,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        host: str = "127.0.0.1",
    ) -> None:
        self.metrics = metrics
        self.health = health
        self._server = ThreadingHTTPServer((host, port), self._handler())  # OSError: port taken
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="lvo-telemetry", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info(
            "metrics on http://127.0.0.1:%d/metrics, health on http://127.0.0.1:%d/health",
            self.port,
            self.port,
        )

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        telemetry = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "lvo-triage"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE, telemetry.metrics.render().encode())
                elif path == "/health":
                    healthy, document = telemetry.health()
                    body = json.dumps(document).encode()
                    self._send(200 if healthy else 503, "application/json", body)
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /health\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("telemetry: " + format, *args)

        return Handler

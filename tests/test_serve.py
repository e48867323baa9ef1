"""``lvo-triage serve`` as a process: a study sent by dcmtk's storescu is triaged, its SR and key
image land in a real PACS (Orthanc, started here on free loopback ports), the webhook gets a
signed POST, a PACS that is down costs an error line and nothing else, ``/health`` and
``/metrics`` tell, and SIGTERM exits 0. Plus the parts in-process: destinations, settings, the
metrics text, the delivery queue and the health rule.

dcmtk and Orthanc are called by absolute path (pynetdicom installs commands named like dcmtk's);
without them these tests skip, unless ``LVO_REQUIRE_DCMTK=1`` / ``LVO_REQUIRE_ORTHANC=1`` make
them fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pydicom
import pytest

from lvo_triage.cli import main
from lvo_triage.config import (
    Destination,
    ListenSettings,
    ServeSettings,
    Settings,
    load_settings,
    parse_destination,
)
from lvo_triage.errors import ConfigError
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import ModelInfo, Status, TriageResult
from lvo_triage.service.delivery import (
    SIGNATURE_HEADER,
    Delivery,
    DeliveryError,
    DeliveryQueue,
    post_json,
)
from lvo_triage.service.serve import Service
from lvo_triage.service.telemetry import Metrics
from tests.fuzz_dicom import Template, with_value, write_study

DCMTK_BIN = Path("/usr/bin")  # Debian's dcmtk; never the pynetdicom commands on PATH
ORTHANC = Path("/usr/sbin/Orthanc")  # Debian's orthanc package
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR Storage
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
LATENCY_TARGET_MS = 2000.0
SECRET = "a shared secret for the test"
T = TypeVar("T")


def _required(exe: Path, what: str, variable: str) -> Path:
    if os.access(exe, os.X_OK):
        return exe
    msg = f"{exe} not found: install {what} (apt-get install {what}) to test lvo-triage serve"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{msg}; {variable}=1 says it must be there")
    pytest.skip(msg)


def _dcmtk(tool: str) -> Path:
    """The dcmtk command ``tool``; skips the test without it (fails it if CI requires dcmtk)."""
    return _required(DCMTK_BIN / tool, "dcmtk", "LVO_REQUIRE_DCMTK")


def _orthanc() -> Path:
    """Orthanc; skips the test without it (fails it if CI requires Orthanc)."""
    return _required(ORTHANC, "orthanc", "LVO_REQUIRE_ORTHANC")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, log: Path | None) -> T:
    """``probe()``'s first true value, polled until ``timeout_s``; fails with the log's tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    pytest.fail(f"no {what} after {timeout_s:.0f} s\n{tail}")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


# A real PACS


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    log: Path

    def rest(self, path: str) -> Any:
        status, body = _get(f"http://127.0.0.1:{self.http_port}{path}")
        assert status == 200, f"Orthanc {path}: HTTP {status}"
        return json.loads(body)


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    exe = _orthanc()
    folder = tmp_path / "orthanc"
    folder.mkdir()
    pacs = Orthanc(_free_port(), _free_port(), folder / "orthanc.log")
    config = {
        "Name": "lvo-triage-test",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAet": "ORTHANC",
        "DicomPort": pacs.dicom_port,
        "HttpPort": pacs.http_port,
        "DicomCheckCalledAet": False,
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    with pacs.log.open("w") as log:
        proc = subprocess.Popen([exe, folder / "orthanc.json"], stdout=log, stderr=log)
    try:
        _wait_for(
            "answer from Orthanc's REST API",
            lambda: proc.poll() is None and _get(f"http://127.0.0.1:{pacs.http_port}/system")[0],
            60,
            pacs.log,
        )
        yield pacs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# lvo-triage serve as a process


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    inbox: Path
    out: Path
    log: Path
    returncode: int | None = None

    def get(self, path: str) -> tuple[int, bytes]:
        return _get(f"http://127.0.0.1:{self.metrics_port}{path}")

    def log_text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        if self.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"serve did not stop within 60 s of SIGTERM\n{self.log_text()[-4000:]}")
        return self.returncode


@contextlib.contextmanager
def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "listen:\n  allowed_addresses: [127.0.0.1/32]\n"
        "serve:\n  retry_delays_s: [0.1, 0.2]\n  timeout_s: 5.0\n"
    )
    port, metrics_port = _free_port(), _free_port()
    inbox, out, log_path = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "lvo_triage.cli", "serve", "--inbox", str(inbox), "--out",
           str(out), "--port", str(port), "--metrics-port", str(metrics_port), "--config",
           str(config), *args]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k != "LVO_WEBHOOK_SECRET"}
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stderr=log, env={**environment, **(env or {})})
    served = Served(proc, port, metrics_port, inbox, out, log_path)
    try:
        _wait_for(
            "healthy serve (GET /health 200)",
            lambda: served.proc.poll() is None and served.get("/health")[0] == 200,
            120,
            served.log,
        )
        yield served
    finally:
        if served.proc.poll() is None:
            served.stop()


def _send(port: int, folder: Path) -> float:
    """Store every file of ``folder`` with dcmtk's storescu; returns when it ended (epoch s)."""
    command = [str(_dcmtk("storescu")), "-aet", "TESTSCU", "-aec", "LVO_TRIAGE", "127.0.0.1"]
    done = subprocess.run([*command, str(port), "+sd", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return time.time()


def _study_uid(folder: Path) -> str:
    return str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).StudyInstanceUID)


def _timing_line(out: Path, uid: str) -> dict[str, Any] | None:
    path = out / "timing.jsonl"
    if not path.exists():
        return None
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return next((x for x in lines if x["study_instance_uid"] == uid), None)


def _metric(text: str, name: str) -> float:
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name} not once in /metrics:\n{text}"
    return float(values[0])


def test_serve_triages_a_study_and_stores_its_sr_and_key_image_in_the_pacs(
    fast_study: Path, tmp_path: Path, orthanc: Orthanc, bundled_model: Path
) -> None:
    _dcmtk("storescu")
    uid = _study_uid(fast_study)
    with _serve(tmp_path, "--send-to", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}") as served:
        sent = _send(served.port, fast_study)
        result_json = served.out / uid / "result.json"
        _wait_for("result.json", result_json.exists, 60, served.log)
        line = _wait_for("timing line", lambda: _timing_line(served.out, uid), 10, served.log)
        result = json.loads(result_json.read_text())
        assert result["status"] == "ok" and result["priority"] == "high"
        for name in ("sr.dcm", "key_image.dcm"):  # written just after result.json
            _wait_for(name, (served.out / uid / name).exists, 10, served.log)

        def stored() -> list[dict[str, Any]] | None:
            found = [
                orthanc.rest(f"/instances/{i}/simplified-tags") for i in orthanc.rest("/instances")
            ]
            return found if len(found) >= 2 else None

        in_pacs = _wait_for("SR and key image in Orthanc", stored, 30, served.log)
        assert {t["SOPClassUID"] for t in in_pacs} == {SR_CLASS, SC_CLASS}
        assert {t["StudyInstanceUID"] for t in in_pacs} == {uid}

        status, body = served.get("/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok", health
        assert health["studies"]["ok"] == 1
        delivered = 'lvo_triage_deliveries_total{kind="dicom"} 1'  # counted after the release
        _wait_for(
            "delivery counted",
            lambda: delivered in served.get("/metrics")[1].decode(),
            10,
            served.log,
        )
        status, body = served.get("/metrics")
        metrics = body.decode()
        assert status == 200
        assert _metric(metrics, 'lvo_triage_studies_total{status="ok"}') == 1
        assert _metric(metrics, "lvo_triage_lvo_suspected_total") == 1
        assert _metric(metrics, "lvo_triage_arrival_to_result_seconds_count") == 1
        assert _metric(metrics, "lvo_triage_triage_seconds_count") == 1
        assert _metric(metrics, 'lvo_triage_deliveries_total{kind="dicom"}') == 1
        assert _metric(metrics, 'lvo_triage_deliveries_failed_total{kind="dicom"}') == 0
        assert served.stop() == 0, served.log_text()[-4000:]
    latency = float(line["arrival_to_result_ms"])
    sent_to_result = (result_json.stat().st_mtime - sent) * 1000.0
    print(
        f"\nserve: last file -> result {latency:.0f} ms (wait {line['wait_ms']:.0f} ms + triage "
        f"{line['total_ms']:.0f} ms); storescu done -> result.json {sent_to_result:.0f} ms; "
        f"target {LATENCY_TARGET_MS:.0f} ms (measured by scripts/bench_serve.py, not asserted here)"
    )
    log = served.log_text()
    assert "stopped" in log
    assert "delivered to ORTHANC" in log
    patient = pydicom.dcmread(next(fast_study.iterdir()), stop_before_pixels=True)
    assert str(patient.PatientName) not in log and str(patient.PatientID) not in log


def test_serve_refuses_a_damaged_file_and_triages_the_next_study(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    """A file whose header lies (Rows 65535) is refused with a failure status; an image whose
    file is unreadable in INBOX is quarantined; the node still answers C-ECHO and the next
    study is triaged."""
    template = Template.from_folder(fast_study)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    lying = with_value(template.copy(1)[5], 0x00280010, struct.pack("<H", 65535))
    (damaged / "lying.dcm").write_bytes(lying)
    clean = tmp_path / "clean"
    write_study(clean, template.copy(2))
    uid = template.uid(template.study_uid, 2)
    command = [str(_dcmtk("storescu")), "-aet", "TESTSCU", "-aec", "LVO_TRIAGE", "127.0.0.1"]
    with _serve(tmp_path) as served:
        refused = subprocess.run([*command, str(served.port), str(damaged / "lying.dcm")])
        assert refused.returncode != 0  # storescu heard the failure status
        (served.inbox / "byhand.dcm").write_bytes(template.copy(3)[7][:3000])
        echo = subprocess.run([str(_dcmtk("echoscu")), "-aec", "LVO_TRIAGE", "127.0.0.1",
                               str(served.port)])  # fmt: skip
        assert echo.returncode == 0
        _send(served.port, clean)
        result_json = served.out / uid / "result.json"
        _wait_for("result.json", result_json.exists, 60, served.log)
        assert json.loads(result_json.read_text())["status"] == "ok"
        reason = served.inbox / ".quarantine" / "byhand.dcm.reason.txt"
        _wait_for("the unreadable file quarantined", reason.exists, 30, served.log)
        assert served.get("/health")[0] == 200
        assert served.stop() == 0
    log = served.log_text()
    assert "refused an instance" in log and "its header claims" in log
    assert "Traceback" not in log
    assert not list(served.inbox.rglob("lying*"))


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver: answers 503 to the first POST (to test the retry), then 200."""

    calls: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(503 if len(self.calls) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    calls: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lvo", calls
    finally:
        server.shutdown()
        server.server_close()


def test_serve_posts_a_signed_webhook_and_survives_a_pacs_that_is_down(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    _dcmtk("storescu")
    uid = _study_uid(fast_study)
    down = f"DOWN@127.0.0.1:{_free_port()}"  # nothing listens there
    env = {"LVO_WEBHOOK_SECRET": SECRET}
    with (
        _receiver() as (url, calls),
        _serve(tmp_path, "--send-to", down, "--webhook", url, env=env) as served,
    ):
        _send(served.port, fast_study)
        _wait_for("result.json", (served.out / uid / "result.json").exists, 60, served.log)
        _wait_for("two webhook calls", lambda: len(calls) >= 2, 30, served.log)
        _wait_for(
            "given-up delivery",
            lambda: "could not be delivered" in served.log_text(),
            30,
            served.log,
        )
        assert pydicom.dcmread(served.out / uid / "sr.dcm").SOPClassUID == SR_CLASS
        status, body = served.get("/metrics")
        assert _metric(body.decode(), 'lvo_triage_deliveries_failed_total{kind="dicom"}') == 1
        assert _metric(body.decode(), 'lvo_triage_deliveries_total{kind="webhook"}') == 1
        status, _ = served.get("/health")
        assert status == 200  # a PACS that is down does not make the service unhealthy
        assert served.stop() == 0, served.log_text()[-4000:]
    for headers, body in calls:  # the refused call, then its retry: the same signed document
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER.lower()] == expected
        assert headers["content-type"] == "application/json"
        document = json.loads(body)
        assert document["study_instance_uid"] == uid and document["status"] == "ok"
    assert calls[0][1] == calls[1][1]
    log = served.log_text()
    assert f"could not be delivered to {down} after 3 attempt(s): cannot connect" in log
    assert "They stay in" in log and "storescu" in log  # what to do
    assert "not signed" not in log


# In-process parts


@pytest.mark.parametrize(
    "text",
    [
        "ORTHANC",
        "ORTHANC@host",
        "@host:104",
        "A@host:0",
        "A@host:70000",
        "A@h:1:2",
        "A" * 17 + "@h:1",
    ],
)
def test_a_send_to_that_is_not_aet_at_host_port_is_a_usage_error(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "serve",
                "--inbox",
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "o"),
                "--send-to",
                text,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--send-to" in err and repr(text) in err


def test_destinations_are_parsed_strictly() -> None:
    assert parse_destination("ORTHANC@10.1.2.3:4242") == Destination("ORTHANC", "10.1.2.3", 4242)
    assert parse_destination("PACS@[::1]:104") == Destination("PACS", "::1", 104)
    assert str(parse_destination("PACS@[::1]:104")) == "PACS@[::1]:104"
    with pytest.raises(ValueError, match="AET@HOST:PORT"):
        parse_destination("PACS@pacs.example.org")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("serve:\n  send_to: [nope]\n", r"serve\.send_to entry 'nope' is not AET@HOST:PORT"),
        ("serve:\n  webhook_url: ftp://x/y\n", "must be an http:// or https:// URL"),
        ("serve:\n  metrics_port: 70000\n", r"serve\.metrics_port=70000"),
        ("serve:\n  retry_delays_s: [0]\n", r"retry_delays_s entry 0 must be in \(0, 600\]"),
        ("serve:\n  send_to: ORTHANC@h:1\n", r"serve\.send_to must be a list"),
    ],
)
def test_bad_serve_settings_say_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(cfg)


def test_serve_settings_from_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve:\n  send_to: [A@h:1, 'B@[::1]:2']\n  webhook_url: https://x.org/h\n")
    serve = load_settings(cfg).serve
    assert serve.destinations == (Destination("A", "h", 1), Destination("B", "::1", 2))
    assert serve.webhook_url == "https://x.org/h"


def _result(status: Status = Status.OK, lvo: bool | None = True) -> TriageResult:
    model = ModelInfo(name="m", version="1", sha256="0" * 64, provider="CPUExecutionProvider")
    result = TriageResult(status=status, reason=None, model=model, threshold=0.5, started_at="t")
    result.lvo_suspected, result.timings_ms = lvo, {"total": 1500.0}
    return result


def test_metrics_text_counts_and_cumulative_buckets() -> None:
    metrics = Metrics()
    metrics.result(_result(), arrival_to_result_s=1.5)
    metrics.result(_result(lvo=False), arrival_to_result_s=7.0)
    metrics.result(_result(Status.NOT_ANALYZABLE, None), arrival_to_result_s=None)
    metrics.delivery("dicom", ok=False)
    text = metrics.render()
    assert _metric(text, 'lvo_triage_studies_total{status="ok"}') == 2
    assert _metric(text, 'lvo_triage_studies_total{status="not_analyzable"}') == 1
    assert _metric(text, 'lvo_triage_studies_total{status="error"}') == 0
    assert _metric(text, "lvo_triage_lvo_suspected_total") == 1
    name = "lvo_triage_arrival_to_result_seconds"
    assert _metric(text, f'{name}_bucket{{le="1.0"}}') == 0
    assert _metric(text, f'{name}_bucket{{le="2.0"}}') == 1
    assert _metric(text, f'{name}_bucket{{le="10.0"}}') == 2
    assert _metric(text, f'{name}_bucket{{le="+Inf"}}') == 2
    assert _metric(text, f"{name}_sum") == 8.5
    assert _metric(text, "lvo_triage_triage_seconds_count") == 3
    assert _metric(text, 'lvo_triage_deliveries_failed_total{kind="dicom"}') == 1
    assert "# TYPE lvo_triage_arrival_to_result_seconds histogram" in text


def test_a_failing_delivery_is_retried_then_given_up_with_what_to_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[tuple[str, bool]] = []
    attempts: list[float] = []

    def fail() -> None:
        attempts.append(time.monotonic())
        raise DeliveryError("no connection")

    def refuse() -> None:
        attempts.append(time.monotonic())
        raise DeliveryError("HTTP 400 Bad Request", permanent=True)

    q = DeliveryQueue(
        name="X@h:1",
        kind="dicom",
        delays=(0.05, 0.1),
        on_done=lambda k, ok: outcomes.append((k, ok)),
    )
    q.start()
    with caplog.at_level(logging.INFO, logger="lvo_triage"):
        q.put(Delivery("the SR", fail, "It stays in OUTBOX."))
        q.put(Delivery("the result", refuse, "It is in result.json."))
        q.put(Delivery("the key image", lambda: None, ""))
        deadline = time.monotonic() + 10
        while len(outcomes) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        q.close(timeout_s=10)
    assert outcomes == [("dicom", False), ("dicom", False), ("dicom", True)]
    assert len(attempts) == 3 + 1  # three tries, then one for the permanent failure
    assert attempts[2] - attempts[0] >= 0.15  # waited 0.05 s, then 0.1 s
    assert (
        "the SR could not be delivered to X@h:1 after 3 attempt(s): no connection. It stays"
        in caplog.text
    )
    assert "the result could not be delivered to X@h:1 after 1 attempt(s)" in caplog.text
    assert "the key image delivered to X@h:1" in caplog.text


def test_webhook_post_is_signed_only_with_a_secret() -> None:
    with _receiver() as (url, calls):
        with pytest.raises(DeliveryError, match="HTTP 503"):  # the receiver's first answer
            post_json(url, b'{"a":1}', secret=b"s", timeout_s=5)
        post_json(url, b'{"a":1}', secret=None, timeout_s=5)
    signed, unsigned = calls
    assert (
        signed[0][SIGNATURE_HEADER.lower()]
        == "sha256=" + hmac.new(b"s", b'{"a":1}', hashlib.sha256).hexdigest()
    )
    assert SIGNATURE_HEADER.lower() not in unsigned[0]
    with pytest.raises(DeliveryError, match="no answer"):
        post_json(f"http://127.0.0.1:{_free_port()}/", b"{}", secret=None, timeout_s=5)


@pytest.fixture(scope="module")
def engine(bundled_model: Path) -> Runtime:
    """A warm engine whose node and metrics take free ports (0), without destinations."""
    started = Runtime.create(Settings())
    settings = Settings(listen=ListenSettings(port=0), serve=ServeSettings(metrics_port=0))
    return Runtime(settings, started.detector, started.preprocessor)


def _service(tmp_path: Path, engine: Runtime) -> Service:
    return Service(inbox=tmp_path / "in", outbox=tmp_path / "out", engine=engine, host="127.0.0.1")


def test_health_needs_the_node_and_a_recent_poll(tmp_path: Path, engine: Runtime) -> None:
    service = _service(tmp_path, engine)
    assert service.health()[0] is False  # not started
    service.start()
    try:
        assert service.health()[0] is False  # the watcher loop has not polled yet
        service._poll(lambda: None)
        healthy, document = service.health()
        assert healthy and document["dicom_node"] and document["watcher"], document
        service._last_poll = time.monotonic() - 10  # the loop hangs
        healthy, document = service.health()
        assert not healthy and document["dicom_node"] and not document["watcher"]
    finally:
        service.stop()
    time.sleep(0.2)
    healthy, document = service.health()
    assert not healthy and not document["dicom_node"], document


def test_a_taken_port_is_a_config_error_that_names_the_flag(
    tmp_path: Path, engine: Runtime
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        listen = ListenSettings(port=port)
        settings = Settings(listen=listen, serve=ServeSettings(metrics_port=0))
        busy = Runtime(settings, engine.detector, engine.preprocessor)
        with pytest.raises(ConfigError, match="choose another --port"):
            _service(tmp_path, busy).start()
        settings = Settings(listen=ListenSettings(port=0), serve=ServeSettings(metrics_port=port))
        busy = Runtime(settings, engine.detector, engine.preprocessor)
        service = _service(tmp_path, busy)
        with pytest.raises(ConfigError, match="choose another --metrics-port"):
            service.start()
        assert not service.health()[1]["dicom_node"]  # the node started first is stopped again


def test_an_sr_for_a_study_not_judged_and_none_for_an_internal_error(
    tmp_path: Path, engine: Runtime, plain_study: Path
) -> None:
    service = _service(tmp_path, engine)
    # the runtime of serve writes the SR beside result.json (outputs.dicom); on_results sends it
    (result,) = triage_path(service.watcher.engine, plain_study, out=service.outbox)
    assert result.status is Status.NOT_ANALYZABLE and result.series_instance_uid is None
    service.on_results(plain_study, [result])
    folder = service.outbox / str(result.study_instance_uid)
    sr = pydicom.dcmread(folder / "sr.dcm")
    assert sr.StudyInstanceUID == result.study_instance_uid and sr.Modality == "SR"
    assert not (folder / "key_image.dcm").exists()  # no key image without a judgement
    failed = _result(Status.ERROR, None)
    failed.study_instance_uid = "1.2.3.4"
    service.on_results(plain_study, [failed])
    assert not (service.outbox / "1.2.3.4").exists()  # nothing for PACS about an internal error
    assert _metric(service.metrics.render(), 'lvo_triage_studies_total{status="error"}') == 1

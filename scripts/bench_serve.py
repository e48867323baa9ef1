"""Last file → result latency of `lvo-triage serve`, studies sent by DICOM one after another.

    python scripts/bench_serve.py [--n 3] [--fast] [--keep DIR]

Writes --n synthetic CTA studies (--fast: 128x128 low-resolution phantoms; else full resolution,
512x512, ~300 slices), starts `lvo-triage serve` as a process on free loopback ports (default
settings, peers limited to this machine; no PACS, no webhook), sends each study with dcmtk's
storescu (/usr/bin/storescu) and waits for its line in OUTBOX/timing.jsonl before sending the
next. Prints per study the latency from its last file's arrival to its result
(`arrival_to_result_ms`, the watcher's clock: when the last file was accepted), split into the
wait for the study to be complete (`wait_ms`) and the triage (`total_ms`), plus the time from
storescu's end to result.json, then median and max against the 2 s target. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lvo_triage.synth import sample_spec, write_study

STORESCU = Path("/usr/bin/storescu")  # Debian's dcmtk, not pynetdicom's command of that name
TARGET_MS = 2000.0
SEED = 9_600_000  # evaluation-range phantoms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def timing_line(out: Path, uid: str) -> dict[str, Any] | None:
    path = out / "timing.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("study_instance_uid") == uid:
            return dict(record)
    return None


def study_uid(folder: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).StudyInstanceUID)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3, help="studies to send (default 3)")
    parser.add_argument("--fast", action="store_true", help="small low-resolution phantoms")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--timeout", type=float, default=120.0, help="per study, seconds")
    args = parser.parse_args()
    if not os.access(STORESCU, os.X_OK):
        raise SystemExit(f"{STORESCU} not found: apt-get install dcmtk")
    if args.n < 1:
        raise SystemExit(f"--n {args.n} must be at least 1")
    with tempfile.TemporaryDirectory(prefix="lvo-bench-serve-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = run(work, n=args.n, fast=args.fast, timeout_s=args.timeout)
    report(rows, fast=args.fast)


def run(work: Path, *, n: int, fast: bool, timeout_s: float) -> list[dict[str, float]]:
    studies = []
    for i in range(n):
        spec = sample_spec(SEED + i, case_id=f"bench{i}", lvo=i % 2 == 0)
        folder = write_study(spec, work / "studies" / spec.case_id, fast=fast)
        studies.append(folder)
        print(f"wrote {folder.name}: {len(list(folder.iterdir()))} files", file=sys.stderr)
    config = work / "serve.yaml"
    config.write_text("listen:\n  allowed_addresses: [127.0.0.1/32]\n")
    port, metrics_port = free_port(), free_port()
    out = work / "outbox"
    cmd = [sys.executable, "-m", "lvo_triage.cli", "serve", "--inbox", str(work / "inbox"),
           "--out", str(out), "--port", str(port), "--metrics-port", str(metrics_port),
           "--config", str(config)]  # fmt: skip
    log = work / "serve.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, stderr=stderr)
    rows: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 120
        while not healthy(metrics_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        for folder in studies:
            uid = study_uid(folder)
            started = time.time()
            storescu = [str(STORESCU), "-aet", "BENCH", "-aec", "LVO_TRIAGE", "127.0.0.1"]
            sent = subprocess.run(
                [*storescu, str(port), "+sd", str(folder)], capture_output=True, text=True
            )
            if sent.returncode != 0:
                raise SystemExit(f"storescu failed: {sent.stderr}")
            sent_at = time.time()
            deadline = time.monotonic() + timeout_s
            while (line := timing_line(out, uid)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no result for {uid}:\n{log.read_text()[-3000:]}")
                time.sleep(0.02)
            result_json = out / uid / "result.json"
            rows.append(
                {
                    "files": float(len(list(folder.iterdir()))),
                    "send_ms": (sent_at - started) * 1000.0,
                    "arrival_to_result_ms": float(line["arrival_to_result_ms"]),
                    "wait_ms": float(line["wait_ms"]),
                    "total_ms": float(line["total_ms"]),
                    "sent_to_result_ms": (result_json.stat().st_mtime - sent_at) * 1000.0,
                }
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        if code != 0:
            print(f"serve exited {code}:\n{log.read_text()[-3000:]}", file=sys.stderr)
    return rows


def report(rows: list[dict[str, float]], *, fast: bool) -> None:
    kind = "fast 128x128" if fast else "full-resolution 512x512"
    print(f"lvo-triage serve, {len(rows)} {kind} phantom studies sent one after another")
    header = (
        f"{'study':>5} {'files':>5} {'send':>8} {'last file->result':>18} {'= wait':>8} "
        f"{'+ triage':>9} {'storescu end->result.json':>26}"
    )
    print(header)
    for i, row in enumerate(rows):
        print(
            f"{i:>5} {row['files']:>5.0f} {row['send_ms']:>6.0f}ms "
            f"{row['arrival_to_result_ms']:>16.0f}ms {row['wait_ms']:>6.0f}ms "
            f"{row['total_ms']:>7.0f}ms {row['sent_to_result_ms']:>24.0f}ms"
        )
    for name in ("arrival_to_result_ms", "sent_to_result_ms"):
        values = [row[name] for row in rows]
        median, worst = statistics.median(values), max(values)
        verdict = "meets" if worst <= TARGET_MS else "MISSES"
        print(
            f"{name}: median {median:.0f} ms, max {worst:.0f} ms: {verdict} the "
            f"{TARGET_MS:.0f} ms target"
        )


if __name__ == "__main__":
    main()

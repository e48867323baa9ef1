"""The DICOM node: real peers (dcmtk's echoscu and storescu, pynetdicom's SCU) against a node
started in-process on 127.0.0.1 and a free port. Echo, a whole series stored unchanged, compressed
encodings stored as received, the allow-lists, hostile UIDs, a full disk, and ``lvo-triage listen``
as a process that stops on SIGTERM. dcmtk is called by absolute path (pynetdicom installs commands
of the same names); without it those tests skip, unless ``LVO_REQUIRE_DCMTK=1`` makes them fail.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.uid import UID, JPEG2000Lossless, JPEGLSLossless, RLELossless
from pynetdicom import AE
from pynetdicom.association import Association

from lvo_triage.config import ListenSettings, load_settings
from lvo_triage.errors import ConfigError
from lvo_triage.service.inbox import Inbox, safe_name
from lvo_triage.service.scp import (
    CANNOT_DECODE,
    DOES_NOT_MATCH,
    MISSING_UID,
    OUT_OF_RESOURCES,
    StorageNode,
)
from tests.fuzz_dicom import Template, with_value

DCMTK_BIN = Path("/usr/bin")  # Debian's dcmtk; never the pynetdicom commands on PATH
CALLING = "TESTSCU"


def _dcmtk(tool: str) -> Path:
    """The dcmtk command ``tool``; skips the test without it (fails it if CI requires dcmtk)."""
    exe = DCMTK_BIN / tool
    if os.access(exe, os.X_OK):
        return exe
    msg = f"{exe} not found: install dcmtk (apt-get install dcmtk) to test the DICOM node with it"
    if os.environ.get("LVO_REQUIRE_DCMTK") == "1":
        pytest.fail(f"{msg}; LVO_REQUIRE_DCMTK=1 says it must be there")
    pytest.skip(msg)


def _call(
    tool: str, port: int, *args: str, calling: str = CALLING
) -> subprocess.CompletedProcess[str]:
    command = [str(_dcmtk(tool)), "-aet", calling, "-aec", "LVO_TRIAGE", "127.0.0.1", str(port)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def _node(inbox: Path, **settings: object) -> StorageNode:
    return StorageNode(inbox, ListenSettings(port=0, **settings), host="127.0.0.1")  # type: ignore[arg-type]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[StorageNode]:
    with _node(tmp_path / "inbox") as started:
        yield started


def _stored(inbox: Path) -> list[Path]:
    return sorted(inbox.rglob("*.dcm"))


def _associate(port: int, *datasets: pydicom.Dataset) -> Association:
    ae = AE(ae_title=CALLING)
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="LVO_TRIAGE")
    assert assoc.is_established
    return assoc


def _store(port: int, ds: pydicom.Dataset) -> int:
    assoc = _associate(port, ds)
    try:
        return int(assoc.send_c_store(ds).Status)
    finally:
        assoc.release()


def test_echo_is_answered(node: StorageNode) -> None:
    done = _call("echoscu", node.port)
    assert done.returncode == 0, done.stderr


def test_a_series_arrives_whole_and_unchanged(
    node: StorageNode, fast_study: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sent = sorted(fast_study.iterdir())
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="lvo_triage"):
        done = _call("storescu", node.port, "+sd", str(fast_study))
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    first = pydicom.dcmread(sent[0], stop_before_pixels=True)
    folder = node.inbox / safe_name(str(first.StudyInstanceUID))
    stored = _stored(node.inbox)
    assert {p.parent for p in stored} == {folder}
    assert len(stored) == len(sent)
    assert not list(node.inbox.rglob(".lvo-*"))  # no temporary file left behind
    assert Inbox(node.inbox).arrivals() == stored  # what the watched folder will read
    for original in sent[:: max(1, len(sent) // 5)]:
        a = pydicom.dcmread(original)
        b = pydicom.dcmread(folder / f"{a.SOPInstanceUID}.dcm")
        assert b.SOPInstanceUID == a.SOPInstanceUID
        assert b.PixelData == a.PixelData
        assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
    assert f"{len(sent)} instance(s)" in caplog.text  # one line per association...
    assert str(first.PatientName) not in caplog.text  # ...without patient data
    print(f"\n{len(sent)} instances stored in {took:.1f} s")  # a figure, not a test


# storescu proposes uncompressed encodings unless told: --propose-rle, -jls-lossless, -j2k-lossless
PROPOSE = {RLELossless: "-xr", JPEGLSLossless: "-xt", JPEG2000Lossless: "-xv"}


@pytest.mark.parametrize("syntax", list(PROPOSE), ids=str)
def test_compressed_instances_are_stored_as_received(
    node: StorageNode, fast_study: Path, tmp_path: Path, syntax: UID
) -> None:
    ds = pydicom.dcmread(sorted(fast_study.iterdir())[len(list(fast_study.iterdir())) // 2])
    ds.compress(syntax)
    sent = tmp_path / "compressed.dcm"
    ds.save_as(sent, enforce_file_format=True)
    done = _call("storescu", node.port, PROPOSE[syntax], str(sent))
    assert done.returncode == 0, done.stderr
    (stored,) = _stored(node.inbox)
    back = pydicom.dcmread(stored)
    assert back.file_meta.TransferSyntaxUID == syntax
    assert back.PixelData == ds.PixelData  # the encoded bytes, not re-encoded


def test_a_calling_ae_title_off_the_allow_list_is_refused(fast_study: Path, tmp_path: Path) -> None:
    one = str(sorted(fast_study.iterdir())[0])
    with _node(tmp_path / "inbox", allowed_ae_titles=("PACS",)) as node:
        assert _call("echoscu", node.port).returncode != 0
        refused = _call("storescu", node.port, one)
        assert refused.returncode != 0
        assert "Calling AE Title Not Recognized" in refused.stderr
        assert _stored(node.inbox) == []
        assert _call("storescu", node.port, one, calling="PACS").returncode == 0
        assert len(_stored(node.inbox)) == 1


def test_an_address_off_the_allow_list_is_refused(tmp_path: Path) -> None:
    with _node(tmp_path / "inbox", allowed_addresses=("10.0.0.0/8",)) as node:
        refused = _call("echoscu", node.port)
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stderr


def test_a_called_ae_title_not_ours_is_refused(node: StorageNode) -> None:
    command = [str(_dcmtk("echoscu")), "-aet", CALLING, "-aec", "OTHER", "127.0.0.1"]
    refused = subprocess.run([*command, str(node.port)], capture_output=True, text=True)
    assert refused.returncode != 0
    assert "Called AE Title Not Recognized" in refused.stderr


def test_associations_beyond_the_maximum_are_refused(tmp_path: Path) -> None:
    with _node(tmp_path / "inbox", max_associations=1) as node:
        ae = AE(ae_title=CALLING)
        ae.add_requested_context("1.2.840.10008.1.1")
        held = ae.associate("127.0.0.1", node.port, ae_title="LVO_TRIAGE")
        assert held.is_established
        try:
            refused = _call("echoscu", node.port)
        finally:
            held.release()
        assert refused.returncode != 0
        assert "Local Limit Exceeded" in refused.stderr
        assert _call("echoscu", node.port).returncode == 0  # free again


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_received_uids_never_name_paths(node: StorageNode, fast_study: Path) -> None:
    ds = pydicom.dcmread(sorted(fast_study.iterdir())[0])
    ds.SOPInstanceUID = "../../evil"
    ds.StudyInstanceUID = ".processing"  # would land in the watched folder's work area
    assert _store(node.port, ds) == 0x0000
    (stored,) = _stored(node.inbox)
    assert stored.parent.parent == node.inbox
    assert stored.parent.name.startswith("x") and stored.name.startswith("x")
    assert not (node.inbox / ".processing").exists()
    assert sorted(p.name for p in node.inbox.parent.iterdir()) == ["inbox"]  # nothing outside


def test_an_instance_without_uids_is_not_understood(node: StorageNode, fast_study: Path) -> None:
    ds = pydicom.dcmread(sorted(fast_study.iterdir())[0])
    del ds.SOPInstanceUID  # pynetdicom's SCU refuses to send this: call the handler directly
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    event = SimpleNamespace(encoded_dataset=buffer.getvalue, assoc=object())
    assert node._on_store(event) == MISSING_UID  # type: ignore[arg-type]
    garbage = SimpleNamespace(encoded_dataset=lambda: b"not a DICOM data set")
    assert node._on_store(garbage) == CANNOT_DECODE  # type: ignore[arg-type]
    assert _stored(node.inbox) == []


def test_a_damaged_instance_is_refused_and_the_node_goes_on(
    node: StorageNode, fast_study: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = Template.from_folder(fast_study).copy(1)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    lies = {"rows.dcm": (0x00280010, struct.pack("<H", 65535)), "nan.dcm": (0x00200032, b"nan")}
    for n, (name, (tag, value)) in enumerate(lies.items()):
        (damaged / name).write_bytes(with_value(files[n], tag, value))
    with caplog.at_level(logging.INFO, logger="lvo_triage"):
        for path in sorted(damaged.iterdir()):
            done = _call("storescu", node.port, str(path))
            assert done.returncode != 0  # storescu heard the failure status
    assert _stored(node.inbox) == []
    refusals = [r.getMessage() for r in caplog.records if "refused an instance" in r.getMessage()]
    assert len(refusals) == 2 and all(f"0x{DOES_NOT_MATCH:04X}" in m for m in refusals)
    assert all("its header claims" in m for m in refusals)
    assert _call("echoscu", node.port).returncode == 0
    (good := tmp_path / "good").mkdir()
    for n, data in enumerate(files[10:14]):
        (good / f"{n}.dcm").write_bytes(data)
    assert _call("storescu", node.port, "+sd", str(good)).returncode == 0
    assert len(_stored(node.inbox)) == 4


def test_a_failed_write_answers_out_of_resources(
    node: StorageNode, fast_study: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = pydicom.dcmread(sorted(fast_study.iterdir())[0])
    (node.inbox / safe_name(str(ds.StudyInstanceUID))).write_text("in the way")  # not a folder
    with caplog.at_level(logging.ERROR, logger="lvo_triage"):
        assert _store(node.port, ds) == OUT_OF_RESOURCES
    assert "free disk space or fix permissions" in caplog.text
    assert _stored(node.inbox) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_listen_command_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    _dcmtk("echoscu")
    port = _free_port()
    inbox = tmp_path / "inbox"
    cmd = [sys.executable, "-m", "lvo_triage.cli", "listen", "--inbox", str(inbox)]
    proc = subprocess.Popen([*cmd, "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (done := _call("echoscu", port)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in err and "accepted" in err
    assert inbox.is_dir()


def test_listen_command_says_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "lvo_triage.cli", "listen", "--inbox", str(tmp_path)]
        done = subprocess.run([*cmd, "--port", str(port)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "choose another --port" in done.stderr


def test_listen_settings_from_yaml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen:\n  allowed_ae_titles: [PACS, CT1]\n  allowed_addresses: []\n")
    listen = load_settings(cfg).listen
    assert listen.allowed_ae_titles == ("PACS", "CT1")
    assert listen.allowed_addresses == ()  # any address


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("listen:\n  allowed_addresses: [10.1.2.3/8]\n", "has host bits set"),
        ("listen:\n  allowed_addresses: 10.0.0.0/8\n", "must be a list"),
        ("listen:\n  allowed_addresses: [10]\n", "not an IP address"),
        ("listen:\n  ae_title: A_TITLE_TOO_LONG_X\n", "1 to 16 characters"),
        ("listen:\n  allowed_ae_titles: ['BAD\\\\AE']\n", "without backslash"),
        ("listen:\n  port: 70000\n", "65535"),
        ("listen:\n  max_associations: 0\n", "max_associations"),
        ("listen:\n  network_timeout_s: 0\n", "network_timeout_s"),
    ],
)
def test_bad_listen_settings_say_what_to_do(tmp_path: Path, text: str, says: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_settings(cfg)


def test_stop_ends_associations_in_progress(tmp_path: Path) -> None:
    node = _node(tmp_path / "inbox")
    node.start()
    ae = AE(ae_title=CALLING)
    ae.add_requested_context("1.2.840.10008.1.1")
    held = ae.associate("127.0.0.1", node.port, ae_title="LVO_TRIAGE")
    assert held.is_established
    node.stop()  # returns (a hang would stop the test run)
    deadline = time.monotonic() + 10
    while held.is_established and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not held.is_established

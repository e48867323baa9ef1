"""Results back to PACS: the TID 1500 SR and the key image as Secondary Capture."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from lvo_triage.outputs import sr as sr_module
from lvo_triage.outputs.files import write_dicom
from lvo_triage.outputs.secondary_capture import SERIES_DESCRIPTION, key_image_sc
from lvo_triage.outputs.sr import triage_sr, write_sr
from lvo_triage.result import ModelInfo, Side, Status, TriageResult

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
MODEL = ModelInfo(
    name="lvo-detector",
    version="0.3.0",
    sha256="0123456789abcdef" * 4,
    provider="CPUExecutionProvider",
)
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "OtherPatientIDs",
    "OtherPatientNames",
    "ReferringPhysicianName",
)


@pytest.fixture(scope="module")
def source(fast_study: Path) -> pydicom.Dataset:
    """One header of the analysed CT series, as the pipeline reads it."""
    first = min(p for p in fast_study.rglob("*") if p.is_file())
    return pydicom.dcmread(first, stop_before_pixels=True)


def _result(source: pydicom.Dataset, **fields: object) -> TriageResult:
    result = TriageResult(
        status=Status.OK,
        reason=None,
        model=MODEL,
        threshold=0.5,
        started_at="2024-01-01T00:00:00.000Z",
        study_instance_uid=source.StudyInstanceUID,
        series_instance_uid=source.SeriesInstanceUID,
        accession_number=source.get("AccessionNumber"),
    )
    for name, value in fields.items():
        setattr(result, name, value)
    return result


def _suspected(source: pydicom.Dataset) -> TriageResult:
    return _result(source, lvo_suspected=True, probability=0.93, side=Side.LEFT, site="M1")


def _not_analyzable(source: pydicom.Dataset) -> TriageResult:
    return _result(
        source,
        status=Status.NOT_ANALYZABLE,
        reason="no contrast-enhanced series: peak arterial HU 48",
        series_instance_uid=None,
    )


def _items(dataset: pydicom.Dataset) -> Iterator[pydicom.Dataset]:
    """Every content item below ``dataset``, depth first."""
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from _items(item)


def _texts(dataset: pydicom.Dataset) -> list[str]:
    return [str(i.TextValue) for i in _items(dataset) if i.ValueType == "TEXT"]


def _codes(dataset: pydicom.Dataset) -> list[tuple[str, str]]:
    """(concept name meaning, coded value meaning) of every CODE item."""
    return [
        (i.ConceptNameCodeSequence[0].CodeMeaning, i.ConceptCodeSequence[0].CodeMeaning)
        for i in _items(dataset)
        if i.ValueType == "CODE"
    ]


def _round_trip(ds: pydicom.Dataset, path: Path) -> hd.sr.Comprehensive3DSR:
    write_sr(path, ds)
    parsed = hd.sr.srread(path)
    assert isinstance(parsed, hd.sr.Comprehensive3DSR)
    return parsed


def _group(parsed: hd.sr.Comprehensive3DSR) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    report = parsed.content
    assert isinstance(report, hd.sr.MeasurementReport)
    groups = report.get_image_measurement_groups()
    assert len(groups) == 1
    return groups[0]


def _evaluation(
    group: hd.sr.MeasurementsAndQualitativeEvaluations, name: hd.sr.CodedConcept
) -> object:
    found = group.get_qualitative_evaluations(name=name)
    assert len(found) == 1, f"expected one {name} evaluation, found {len(found)}"
    return found[0].value


def _dcmtk_ok(tool: str, path: Path) -> None:
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    problems = [ln for ln in proc.stderr.splitlines() if ln.startswith(("E:", "F:", "W:"))]
    assert not problems, problems


# --- the SR -------------------------------------------------------------------------------------


def test_sr_suspected_round_trips(source: pydicom.Dataset, tmp_path: Path) -> None:
    path = tmp_path / "out" / "sr.dcm"
    parsed = _round_trip(triage_sr(_suspected(source), source), path)
    raw = pydicom.dcmread(path)

    assert raw.SOPClassUID == COMPREHENSIVE_3D_SR
    assert raw.Modality == "SR"
    assert raw.StudyInstanceUID == source.StudyInstanceUID
    assert raw.PatientID == source.PatientID
    assert raw.PatientName == source.PatientName
    assert raw.AccessionNumber == source.AccessionNumber
    assert raw.SeriesInstanceUID not in (source.SeriesInstanceUID, "")
    assert raw.SOPInstanceUID != source.SOPInstanceUID
    assert raw.SeriesNumber == 9901
    assert "NOT FOR CLINICAL USE" in raw.SeriesDescription
    assert raw.VerificationFlag == "UNVERIFIED"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    # the analysed series is the evidence
    evidence = parsed.get_evidence()
    assert (
        source.StudyInstanceUID,
        source.SeriesInstanceUID,
        source.SOPInstanceUID,
        source.SOPClassUID,
    ) in evidence

    group = _group(parsed)
    assert group.finding_type == sr_module.OCCLUSION_OF_ARTERY
    assert _evaluation(group, sr_module.LVO) == sr_module.YES
    assert _evaluation(group, sr_module.LATERALITY) == sr_module.SIDES[Side.LEFT]
    (site,) = group.finding_sites
    assert site.value == sr_module.SITES["M1"]
    assert site.laterality == sr_module.SIDES[Side.LEFT]
    (probability,) = group.get_measurements(name=sr_module.PROBABILITY)
    assert probability.value == pytest.approx(0.93)
    assert probability.unit == sr_module.NO_UNITS
    (threshold,) = group.get_measurements(name=sr_module.THRESHOLD)
    assert threshold.value == pytest.approx(0.5)
    assert any("NOT FOR CLINICAL USE" in text for text in _texts(raw))


def test_sr_names_the_device_and_model(source: pydicom.Dataset, tmp_path: Path) -> None:
    parsed = _round_trip(triage_sr(_suspected(source), source), tmp_path / "sr.dcm")
    report = parsed.content
    assert isinstance(report, hd.sr.MeasurementReport)
    (observer,) = report.get_observer_contexts(observer_type=sr_module.DEVICE)
    texts = {
        item.name.meaning: item.value
        for item in observer
        if item.value_type == hd.sr.ValueTypeValues.TEXT
    }
    assert texts["Device Observer Name"] == "lvo-triage"
    assert texts["Device Observer Manufacturer"] == "lvo-triage project"
    assert texts["Device Observer Model Name"] == MODEL.name
    assert texts["Device Observer Serial Number"] == MODEL.sha256
    assert parsed.SoftwareVersions == MODEL.version
    named = {
        str(i.ConceptNameCodeSequence[0].CodeMeaning): str(i.TextValue)
        for i in _items(parsed)
        if i.ValueType == "TEXT"
    }
    assert named["Algorithm Name"] == MODEL.name
    assert named["Algorithm Version"] == MODEL.version
    assert named["Algorithm Parameters"] == "threshold=0.5"


def test_sr_same_model_same_device_uid(source: pydicom.Dataset) -> None:
    def device_uid(ds: pydicom.Dataset) -> str:
        (uid,) = [
            str(i.UID)
            for i in _items(ds)
            if i.ValueType == "UIDREF" and "Device" in str(i.ConceptNameCodeSequence[0].CodeMeaning)
        ]
        return uid

    first = triage_sr(_suspected(source), source)
    second = triage_sr(_suspected(source), source)
    assert device_uid(first) == device_uid(second)
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_sr_not_suspected_says_no(source: pydicom.Dataset, tmp_path: Path) -> None:
    result = _result(source, lvo_suspected=False, probability=0.12, side=Side.RIGHT, site="M2")
    parsed = _round_trip(triage_sr(result, source), tmp_path / "sr.dcm")
    group = _group(parsed)
    assert _evaluation(group, sr_module.LVO) == sr_module.NO
    # the side and site heads of a negative model output are not findings
    assert group.get_qualitative_evaluations(name=sr_module.LATERALITY) == []
    assert group.finding_sites == []
    (probability,) = group.get_measurements(name=sr_module.PROBABILITY)
    assert probability.value == pytest.approx(0.12)


def test_sr_not_analyzable_is_undetermined(source: pydicom.Dataset, tmp_path: Path) -> None:
    result = _not_analyzable(source)
    parsed = _round_trip(triage_sr(result, source), tmp_path / "sr.dcm")
    group = _group(parsed)
    assert _evaluation(group, sr_module.LVO) == sr_module.UNDETERMINED
    values = [value for _, value in _codes(parsed)]
    assert "Yes" not in values
    assert "No" not in values
    assert group.get_measurements(name=sr_module.PROBABILITY) == []
    texts = _texts(parsed)
    assert result.reason in texts
    assert any("NOT FOR CLINICAL USE" in text for text in texts)
    assert parsed.StudyInstanceUID == source.StudyInstanceUID


def test_sr_internal_error_does_not_leak_the_exception(source: pydicom.Dataset) -> None:
    result = _result(
        source, status=Status.ERROR, reason="internal error (KeyError): '/data/SMITH^JOHN/1.dcm'"
    )
    ds = triage_sr(result, source)
    texts = _texts(ds)
    assert sr_module.INTERNAL_ERROR_TEXT in texts
    assert not any("SMITH" in text for text in texts)


def test_sr_site_without_code_is_text(source: pydicom.Dataset) -> None:
    result = _result(source, lvo_suspected=True, probability=0.8, side=Side.RIGHT, site="A1")
    ds = triage_sr(result, source)
    assert "A1" in _texts(ds)
    assert ("Laterality", "Right") in _codes(ds)


def test_sr_and_sc_invent_no_patient_data(source: pydicom.Dataset) -> None:
    bare = pydicom.Dataset()
    bare.update(source)
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "ReferringPhysicianName"):
        if keyword in bare:
            delattr(bare, keyword)
    outputs = (triage_sr(_suspected(source), bare), key_image_sc(_png(20, 30), bare))
    for ds in outputs:
        for keyword in PATIENT_KEYWORDS:
            if keyword in bare:
                assert ds.get(keyword) == bare.get(keyword), keyword
            else:
                assert not ds.get(keyword), f"{keyword} = {ds.get(keyword)!r} not in the source"
        people = [e for e in ds.iterall() if e.VR == "PN" and e.value]
        assert [str(e.value) for e in people] == [], "a person name that the source lacks"
    assert "PatientName" in source  # the caller's header is left alone


def test_sr_rejects_a_header_from_another_study(source: pydicom.Dataset) -> None:
    result = _suspected(source)
    result.study_instance_uid = "1.2.3.4"
    with pytest.raises(ValueError, match="result is about study"):
        triage_sr(result, source)


def test_sr_rejects_a_header_without_uids(source: pydicom.Dataset) -> None:
    bare = pydicom.Dataset()
    bare.update(source)
    del bare.SOPInstanceUID
    with pytest.raises(ValueError, match="SOPInstanceUID"):
        triage_sr(_suspected(source), bare)


def test_write_sr_refuses_other_objects(source: pydicom.Dataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 'SR'"):
        write_sr(tmp_path / "x.dcm", key_image_sc(_png(8, 8), source))


# --- the secondary capture ----------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    rgb = np.random.default_rng(width * 1000 + height).integers(
        0, 256, (height, width, 3), dtype=np.uint8
    )
    out = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(out, format="PNG")
    return out.getvalue()


def test_sc_round_trips_the_pixels(source: pydicom.Dataset, tmp_path: Path) -> None:
    png = _png(53, 37)  # width != height: rows and columns must not swap
    path = tmp_path / "sc.dcm"
    write_dicom(path, key_image_sc(png, source))
    ds = pydicom.dcmread(path)

    assert ds.SOPClassUID == SECONDARY_CAPTURE
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.PatientID == source.PatientID
    assert ds.PatientName == source.PatientName
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.SeriesNumber == 9902
    assert ds.SeriesDescription == SERIES_DESCRIPTION
    assert "NOT FOR CLINICAL USE" in ds.SeriesDescription
    assert ds.BurnedInAnnotation == "YES"
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.SamplesPerPixel == 3
    assert (ds.Rows, ds.Columns) == (37, 53)
    expected = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    np.testing.assert_array_equal(ds.pixel_array, expected)


def test_sc_rejects_bytes_that_are_not_an_image(source: pydicom.Dataset) -> None:
    with pytest.raises(ValueError, match="not a readable PNG"):
        key_image_sc(b"not a png", source)


# --- third-party readers ------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk (dcmdump) is not installed")
def test_dcmtk_reads_both(source: pydicom.Dataset, tmp_path: Path) -> None:
    suspected, not_analyzable = tmp_path / "sr.dcm", tmp_path / "sr_na.dcm"
    write_sr(suspected, triage_sr(_suspected(source), source))
    write_sr(not_analyzable, triage_sr(_not_analyzable(source), source))
    key = tmp_path / "sc.dcm"
    write_dicom(key, key_image_sc(_png(64, 48), source))
    for path in (suspected, not_analyzable, key):
        _dcmtk_ok("dcmdump", path)
    if shutil.which("dsrdump") is not None:  # dcmtk's SR reader checks the content tree
        for path in (suspected, not_analyzable):
            _dcmtk_ok("dsrdump", path)


def _content(ds: pydicom.Dataset) -> list[tuple[str, str]]:
    """The SR's content items (type, concept) in order, nested ones flattened."""
    items: list[tuple[str, str]] = []
    for item in ds.get("ContentSequence", []):
        items.append((item.ValueType, item.ConceptNameCodeSequence[0].CodeMeaning))
        items += _content(item)
    return items


def test_run_writes_the_sr_and_key_image_that_serve_sends(
    fast_study: Path, tmp_path: Path, bundled_model: Path
) -> None:
    """``outputs.dicom`` in a copied partial config (or ``--sr``): ``run --out`` writes sr.dcm and
    key_image.dcm beside result.json; serve's runtime writes the same documents for the same
    study (serve only moves those files)."""
    import dataclasses

    from lvo_triage.cli import main
    from lvo_triage.config import Settings
    from lvo_triage.pipeline import Runtime, triage_path
    from lvo_triage.service.serve import Service

    config = tmp_path / "config.yaml"
    config.write_text("outputs:\n  dicom: true\n")
    args = ["run", str(fast_study), "--out", str(tmp_path / "run"), "--config", str(config)]
    assert main(args) == 0
    (folder,) = [p for p in (tmp_path / "run").iterdir() if p.is_dir()]
    sr, sc = pydicom.dcmread(folder / "sr.dcm"), pydicom.dcmread(folder / "key_image.dcm")
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR and sc.SOPClassUID == SECONDARY_CAPTURE
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == folder.name

    base = Settings()
    runtime = Runtime.create(base)
    quiet = dataclasses.replace(base, serve=dataclasses.replace(base.serve, metrics_port=0))
    service = Service(
        inbox=tmp_path / "in",
        outbox=tmp_path / "serve",
        engine=dataclasses.replace(runtime, settings=quiet),
    )
    (result,) = triage_path(service.watcher.engine, fast_study, out=service.outbox)
    served = pydicom.dcmread(service.outbox / folder.name / "sr.dcm")
    assert _content(served) == _content(sr) and len(_content(sr)) > 5
    assert served.StudyInstanceUID == sr.StudyInstanceUID
    assert served.PatientID == sr.PatientID

    assert main(["run", str(fast_study), "--out", str(tmp_path / "flag"), "--sr"]) == 0
    flagged = pydicom.dcmread(tmp_path / "flag" / folder.name / "sr.dcm")
    assert _content(flagged) == _content(sr)
    assert main(["run", str(fast_study), "--sr"]) == 2  # nowhere to write them

    plain = triage_path(runtime, fast_study, out=tmp_path / "plain")[0]
    assert plain.status is result.status
    assert not list((tmp_path / "plain").glob("*/*.dcm"))  # off by default

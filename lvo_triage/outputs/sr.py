"""The result as a DICOM Structured Report for PACS: a TID 1500 measurement report.

A Comprehensive 3D SR in the analysed study (same StudyInstanceUID, patient and study attributes
copied from a header of the analysed series, nothing invented), in a new series. The device that
observed is lvo-triage with its model (TID 1004). One measurement group (TID 1501) holds:

- Finding (DCM 121071): SCT 1386000 "Occlusion of artery";
- the question "Large vessel occlusion" (99LVOTRIAGE LVO) answered SCT Yes or No, or
  SCT Undetermined (CID 230 "Yes-No-Undetermined") when the study could not be judged, then with
  the reason as text (a generic sentence for an internal error: exception text stays out of PACS);
- when an LVO is suspected: Laterality (SCT 272741003) Left or Right, and the suspected site as
  a finding site with that laterality (ICA terminus, M1, M2 in SNOMED CT; text for a site label
  without a code);
- Probability (DCM 122157) and Threshold Value (DCM 122411), unit UCUM ``1`` (no units);
- the model as algorithm identification (TID 4019), the threshold among its parameters;
- the intended-use notice "NOT FOR CLINICAL USE ..." as text.

Codes come from DICOM PS3.16 as pydicom's code dictionary lists them; the few concepts without a
standard code use the private coding scheme ``99LVOTRIAGE`` (declared in the SR's Coding Scheme
Identification Sequence).
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.uid import generate_uid

from lvo_triage.outputs.files import write_dicom
from lvo_triage.result import Side, Status, TriageResult

CODING_SCHEME = "99LVOTRIAGE"
MANUFACTURER = "lvo-triage project"
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE - research software trained on synthetic phantoms"
SERIES_DESCRIPTION = "LVO triage SR - NOT FOR CLINICAL USE"
TRACKING_ID = "LVO triage"
INTERNAL_ERROR_TEXT = "internal error in lvo-triage: the study was not judged, look yourself"

# private concepts (coding scheme 99LVOTRIAGE)
LVO = hd.sr.CodedConcept("LVO", CODING_SCHEME, "Large vessel occlusion")
SUSPECTED_SITE = hd.sr.CodedConcept("SITE", CODING_SCHEME, "Suspected occlusion site")
NOT_JUDGED_REASON = hd.sr.CodedConcept("REASON", CODING_SCHEME, "Reason the study was not judged")
INTENDED_USE = hd.sr.CodedConcept("INTENDED-USE", CODING_SCHEME, "Intended use")

# standard concepts (DICOM PS3.16: SNOMED CT, DCM, LOINC, UCUM)
OCCLUSION_OF_ARTERY = hd.sr.CodedConcept("1386000", "SCT", "Occlusion of artery")
YES = hd.sr.CodedConcept("373066001", "SCT", "Yes")
NO = hd.sr.CodedConcept("373067005", "SCT", "No")
UNDETERMINED = hd.sr.CodedConcept("373068000", "SCT", "Undetermined")
LATERALITY = hd.sr.CodedConcept("272741003", "SCT", "Laterality")
SIDES = {
    Side.LEFT: hd.sr.CodedConcept("7771000", "SCT", "Left"),
    Side.RIGHT: hd.sr.CodedConcept("24028007", "SCT", "Right"),
}
SITES = {
    "ICA-T": hd.sr.CodedConcept("415646005", "SCT", "Terminal internal carotid artery"),
    "M1": hd.sr.CodedConcept("414722000", "SCT", "Middle Cerebral Artery M1 Segment"),
    "M2": hd.sr.CodedConcept("414723005", "SCT", "Middle Cerebral Artery M2 Segment"),
}
PROBABILITY = hd.sr.CodedConcept("122157", "DCM", "Probability")
THRESHOLD = hd.sr.CodedConcept("122411", "DCM", "Threshold Value")
NO_UNITS = hd.sr.CodedConcept("1", "UCUM", "no units")
PROCEDURES = (
    hd.sr.CodedConcept("77343006", "SCT", "Angiography"),
    hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
)
DEVICE = hd.sr.CodedConcept("121007", "DCM", "Device")

REQUIRED_SOURCE = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
# read by highdicom from the evidence; type 2 (may be empty) in the source's Patient/Study modules
TYPE2_SOURCE = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


def triage_sr(
    result: TriageResult,
    source: pydicom.Dataset,
    *,
    series_number: int = 9901,
    instance_number: int = 1,
    device_name: str = "lvo-triage",
) -> pydicom.Dataset:
    """The SR of one triage result, in the study of ``source`` (a header of the analysed series,
    read with ``stop_before_pixels``); a new series with new UIDs.

    A result that is not ``ok`` gives an SR whose finding is Undetermined, with the reason.
    """
    evidence = evidence_header(source)
    _check_same_study(result, evidence)
    model = result.model
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=_device_uid(result, device_name),
        name=device_name,
        manufacturer_name=MANUFACTURER,
        model_name=model.name,
        serial_number=model.sha256 or None,
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=DEVICE, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=list(PROCEDURES),
        imaging_measurements=[_measurement_group(result)],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name=model.name,
        software_versions=model.version,
        device_serial_number=model.sha256[:64] or None,
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=CODING_SCHEME,
                name="lvo-triage private codes",
                responsible_organization=MANUFACTURER,
            )
        ],
    )
    return sr


def write_sr(path: Path, ds: pydicom.Dataset) -> None:
    """Write an SR from :func:`triage_sr` as a DICOM file, atomically (temporary file in the same
    folder, then renamed over ``path``)."""
    if ds.get("Modality") != "SR":
        msg = f"dataset has Modality {ds.get('Modality')!r}, not 'SR'; build it with triage_sr()"
        raise ValueError(msg)
    write_dicom(path, ds)


def evidence_header(source: pydicom.Dataset) -> pydicom.Dataset:
    """``source`` as the evidence highdicom reads patient and study from: the UIDs it must have
    are checked; type 2 attributes it lacks are added empty (never invented)."""
    missing = [k for k in REQUIRED_SOURCE if not source.get(k)]
    if missing:
        msg = f"source header lacks {', '.join(missing)}: pass a header of the analysed CT series"
        raise ValueError(msg)
    absent = [k for k in TYPE2_SOURCE if k not in source]
    if not absent:
        return source
    evidence = pydicom.Dataset()
    evidence.update(source)
    for keyword in absent:
        setattr(evidence, keyword, None)
    return evidence


def _check_same_study(result: TriageResult, source: pydicom.Dataset) -> None:
    pairs = (
        ("study", result.study_instance_uid, source.StudyInstanceUID),
        ("series", result.series_instance_uid, source.SeriesInstanceUID),
    )
    for what, ours, theirs in pairs:
        if ours is not None and ours != theirs:
            msg = (
                f"source header is from {what} {theirs}, but the result is about {what} {ours}: "
                f"pass a header of the analysed series"
            )
            raise ValueError(msg)


def _device_uid(result: TriageResult, device_name: str) -> str:
    """A stable UID for lvo-triage with this model (the same model gives the same device UID)."""
    model = result.model
    uid: str = generate_uid(entropy_srcs=[device_name, model.name, model.version, model.sha256])
    return uid


def _measurement_group(result: TriageResult) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    model = result.model
    algorithm = hd.sr.AlgorithmIdentification(
        name=model.name,
        version=model.version,
        parameters=[f"threshold={result.threshold:g}"],
        manufacturer=MANUFACTURER,
    )
    measurements = [
        hd.sr.Measurement(name=THRESHOLD, value=result.threshold, unit=NO_UNITS),
    ]
    evaluations: list[hd.sr.QualitativeEvaluation] = []
    finding_sites: list[hd.sr.FindingSite] = []
    texts: list[hd.sr.TextContentItem] = []
    if result.status is Status.OK:
        if result.probability is None or result.lvo_suspected is None:
            msg = "an ok result must have probability and lvo_suspected set"
            raise ValueError(msg)
        measurements.insert(
            0, hd.sr.Measurement(name=PROBABILITY, value=result.probability, unit=NO_UNITS)
        )
        evaluations.append(hd.sr.QualitativeEvaluation(LVO, YES if result.lvo_suspected else NO))
        if result.lvo_suspected and result.side is not None:
            side = SIDES[result.side]
            evaluations.append(hd.sr.QualitativeEvaluation(LATERALITY, side))
        if result.lvo_suspected and result.site:
            site = SITES.get(result.site)
            if site is not None:
                laterality = SIDES[result.side] if result.side is not None else None
                finding_sites.append(hd.sr.FindingSite(site, laterality=laterality))
            else:
                texts.append(_text(SUSPECTED_SITE, result.site))
    else:
        evaluations.append(hd.sr.QualitativeEvaluation(LVO, UNDETERMINED))
        reason = result.reason if result.status is Status.NOT_ANALYZABLE else None
        texts.append(_text(NOT_JUDGED_REASON, reason or INTERNAL_ERROR_TEXT))
    texts.append(_text(INTENDED_USE, NOT_FOR_CLINICAL_USE))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=TRACKING_ID),
        finding_type=OCCLUSION_OF_ARTERY,
        finding_sites=finding_sites or None,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )
    # TID 1501 row 12: qualitative evaluations as text (highdicom builds the coded ones only)
    group[0].ContentSequence.extend(texts)
    return group


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )

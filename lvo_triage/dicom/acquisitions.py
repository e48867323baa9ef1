"""Split a series that holds several acquisitions (e.g. a multiphase CTA saved as one series).

A series is split only when it is not one clean slice stack as it stands: two images at one
position, or several image orientations. It is split by AcquisitionNumber, else by orientation;
each part is then judged like a series of its own.
"""

from __future__ import annotations

from dataclasses import replace

from lvo_triage.dicom.discover import Instance, Series

POSITION_MM = 0.01
ORIENTATION_DECIMALS = 3


def _orientation_key(inst: Instance) -> tuple[float, ...] | None:
    if inst.orientation is None:
        return None
    return tuple(round(v, ORIENTATION_DECIMALS) + 0.0 for v in inst.orientation)


def _is_one_stack(instances: list[Instance]) -> bool:
    orientations = {_orientation_key(i) for i in instances}
    positions = [
        tuple(round(v / POSITION_MM) for v in i.position)
        for i in instances
        if i.position is not None
    ]
    return len(orientations) == 1 and len(set(positions)) == len(positions)


def split_acquisitions(series: Series) -> list[Series]:
    """``[series]`` when it is one stack (or cannot be split); else one part per acquisition,
    each with ``part`` set and its description saying which acquisition it is."""
    if _is_one_stack(series.instances):
        return [series]
    by_acquisition: dict[int | None, list[Instance]] = {}
    for inst in series.instances:
        by_acquisition.setdefault(inst.acquisition_number, []).append(inst)
    if len(by_acquisition) > 1:
        ordered = sorted(by_acquisition.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        return [
            replace(
                series,
                instances=insts,
                part=f"acquisition {number}" if number is not None else "no acquisition number",
            )
            for number, insts in ordered
        ]
    by_orientation: dict[tuple[float, ...] | None, list[Instance]] = {}
    for inst in series.instances:
        by_orientation.setdefault(_orientation_key(inst), []).append(inst)
    if len(by_orientation) > 1:
        return [
            replace(series, instances=insts, part=f"orientation {n + 1}")
            for n, insts in enumerate(by_orientation.values())
        ]
    return [series]

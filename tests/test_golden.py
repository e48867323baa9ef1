"""Golden end-to-end test: the bundled model, through the whole pipeline, on held-out phantoms.

The phantoms use a seed from the evaluation range (never used in training or validation), and the
same seed with and without an occlusion, so only the occlusion differs between the studies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lvo_triage.config import Settings
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Priority, Side, Status, TriageResult
from lvo_triage.synth import sample_spec, write_study
from lvo_triage.train.seeds import split_of

SEED = 9_400_000
CASES = {
    "none": (False, None, None),
    "left M1": (True, "left", "M1"),
    "right ICA-T": (True, "right", "ICA-T"),
}


@pytest.fixture(scope="module")
def results(
    bundled_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TriageResult]:
    assert split_of(SEED) == "test"
    engine = Runtime.create(Settings())
    out = {}
    for name, (lvo, side, site) in CASES.items():
        spec = sample_spec(SEED, case_id="golden", lvo=lvo, side=side, site=site)
        folder = write_study(spec, tmp_path_factory.mktemp(name.replace(" ", "_")), fast=True)
        (out[name],) = triage_path(engine, folder)
    return out


@pytest.mark.parametrize(("name", "side"), [("left M1", Side.LEFT), ("right ICA-T", Side.RIGHT)])
def test_occlusion_is_flagged_high_on_its_side(
    results: dict[str, TriageResult], name: str, side: Side
) -> None:
    result = results[name]
    assert result.status is Status.OK
    assert result.priority is Priority.HIGH, result.probability
    assert result.side is side


def test_the_same_head_without_occlusion_scores_lower(results: dict[str, TriageResult]) -> None:
    normal = results["none"]
    assert normal.status is Status.OK
    assert normal.probability is not None
    assert all(normal.probability < r.probability for n, r in results.items() if n != "none")  # type: ignore[operator]

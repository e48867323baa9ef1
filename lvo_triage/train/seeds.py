"""Disjoint phantom seed ranges: training, validation, and held-out evaluation."""

TRAIN_BASE = 1_000_000
VAL_BASE = 2_000_000
TEST_BASE = 9_000_000  # held-out phantoms (scripts/evaluate.py)
SITE_BASE = 9_100_000  # held-out, every LVO at one site (evaluate.py --site)
OUT_OF_RANGE_BASE = 9_300_000  # held-out, two factors beyond the training ranges
RANGE = 1_000_000


def split_of(seed: int) -> str:
    """Which split a phantom seed belongs to (``test`` for anything outside train/val)."""
    if TRAIN_BASE <= seed < TRAIN_BASE + RANGE:
        return "train"
    if VAL_BASE <= seed < VAL_BASE + RANGE:
        return "val"
    return "test"

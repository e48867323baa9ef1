"""The small family of errors lvo-triage raises. Each message says what to do next."""

from __future__ import annotations


class LvoTriageError(Exception):
    """Base class of every error lvo-triage raises on purpose."""


class NotAnalyzable(LvoTriageError):
    """The input cannot be judged; ``reason`` is a sentence a radiographer understands.

    The pipeline turns it into a result with ``status: not_analyzable`` and ``priority: unknown``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnreadableFile(LvoTriageError, ValueError):
    """One file cannot be used (not DICOM, damaged, or a header that lies); ``reason`` says why.

    Discovery and the watched folder skip the file and report the reason; nothing else stops.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(LvoTriageError):
    """A configuration file or command-line value is wrong (exit status 2)."""


class ModelError(LvoTriageError):
    """The ONNX model or its model card is missing, corrupt or inconsistent."""


class DatasetError(LvoTriageError):
    """A labelled dataset (``labels.csv`` and its images, docs/contract.md) is malformed."""

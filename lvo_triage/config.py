"""Typed settings. The defaults here are exactly ``configs/default.yaml`` (a test checks it)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import yaml

from lvo_triage.assets import bundled_model, default_config
from lvo_triage.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout (meaningless in an installed wheel)
DEFAULT_MODEL = bundled_model()  # package data: found in a checkout and in an installed wheel
DEFAULT_CONFIG = default_config()  # the defaults below as YAML; load_settings(None) needs no file
PROVIDERS = ("cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class SelectionSettings:
    """Rules that choose the CTA series in a study."""

    max_slice_spacing_mm: float = 1.5
    min_instances: int = 20
    min_arterial_hu: float = 75.0
    max_gap_mm: float = 3.0
    min_coverage_mm: float = 100.0

    def __post_init__(self) -> None:
        if not 0 < self.max_slice_spacing_mm <= 10:
            msg = f"selection.max_slice_spacing_mm={self.max_slice_spacing_mm} must be in (0, 10]"
            raise ConfigError(msg)
        if not 0 <= self.min_coverage_mm <= 400:
            msg = f"selection.min_coverage_mm={self.min_coverage_mm} must be in [0, 400]"
            raise ConfigError(msg)
        if self.min_instances < 2:
            msg = f"selection.min_instances={self.min_instances} must be at least 2"
            raise ConfigError(msg)


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """Which ONNX model runs, where, and at which operating point."""

    path: Path = DEFAULT_MODEL
    provider: str = "cpu"
    threshold: float | None = None
    intra_op_threads: int = 0

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            msg = f"model.provider={self.provider!r} must be one of {', '.join(PROVIDERS)}"
            raise ConfigError(msg)
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            msg = (
                f"model.threshold={self.threshold} must be in [0, 1] (or null for the model card's)"
            )
            raise ConfigError(msg)
        if self.intra_op_threads < 0:
            msg = f"model.intra_op_threads={self.intra_op_threads} must be >= 0 (0 = automatic)"
            raise ConfigError(msg)


@dataclass(frozen=True, kw_only=True)
class LimitsSettings:
    """Ceilings on what input may claim, checked before any pixel is decoded or allocated."""

    max_image_mb: float = 2000.0
    max_volume_mb: float = 4000.0

    def __post_init__(self) -> None:
        for name in ("max_image_mb", "max_volume_mb"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 < value <= 1_000_000:
                msg = f"limits.{name}={value!r} must be in (0, 1000000] MB"
                raise ConfigError(msg)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1e6)

    @property
    def max_volume_bytes(self) -> int:
        return int(self.max_volume_mb * 1e6)


KEEP_INPUT = ("archive", "delete")


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    """The watched folder (``watch`` and ``serve``)."""

    quiet_period_s: float = 5.0
    stable_s: float = 1.0
    poll_interval_s: float = 0.2
    unreadable_after_s: float = 10.0
    keep_input: str = "archive"
    events: bool = True
    claim_lease_s: float = 30.0

    def __post_init__(self) -> None:
        if self.keep_input not in KEEP_INPUT:
            msg = f"watch.keep_input={self.keep_input!r} must be one of {', '.join(KEEP_INPUT)}"
            raise ConfigError(msg)
        for name in ("quiet_period_s", "stable_s", "poll_interval_s", "unreadable_after_s"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                msg = f"watch.{name}={value} must be in (0, 3600] seconds"
                raise ConfigError(msg)
        if self.stable_s > self.quiet_period_s:
            msg = (
                f"watch.stable_s={self.stable_s} must not exceed "
                f"watch.quiet_period_s={self.quiet_period_s}"
            )
            raise ConfigError(msg)
        if not 2 <= self.claim_lease_s <= 3600:
            msg = (
                f"watch.claim_lease_s={self.claim_lease_s} must be in [2, 3600] seconds: a worker "
                "whose claim is not renewed for this long is taken for dead"
            )
            raise ConfigError(msg)


LOOPBACK = ("127.0.0.1/32", "::1/128")


def _ae_title_problem(title: object) -> str | None:
    """Why ``title`` is not a DICOM AE title (1-16 characters of printable ASCII, no backslash,
    not blank), or None when it is one."""
    if not isinstance(title, str):
        return "must be a string"
    if not 1 <= len(title) <= 16 or not title.strip():
        return "must have 1 to 16 characters, not all spaces"
    if any(not (" " <= c <= "~") or c == "\\" for c in title):
        return "may hold printable ASCII only, without backslash"
    return None


@dataclass(frozen=True, kw_only=True)
class ListenSettings:
    """The DICOM storage node (``listen`` and ``serve``). Empty allow-lists allow every peer."""

    ae_title: str = "LVO_TRIAGE"
    port: int = 11112
    allowed_ae_titles: tuple[str, ...] = ()
    allowed_addresses: tuple[str, ...] = LOOPBACK
    require_called_ae_title: bool = True
    max_associations: int = 10
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 30.0
    network_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        problem = _ae_title_problem(self.ae_title)
        if problem:
            msg = f"listen.ae_title={self.ae_title!r} {problem}"
            raise ConfigError(msg)
        if not 0 <= self.port <= 65535:
            msg = f"listen.port={self.port} must be in [0, 65535] (0: any free port)"
            raise ConfigError(msg)
        for title in self.allowed_ae_titles:
            problem = _ae_title_problem(title)
            if problem:
                msg = f"listen.allowed_ae_titles entry {title!r} {problem}"
                raise ConfigError(msg)
        for address in self.allowed_addresses:
            try:
                if not isinstance(address, str):
                    raise TypeError("not a string")  # ip_network would take an int too
                ipaddress.ip_network(address)
            except (TypeError, ValueError) as exc:
                msg = (
                    f"listen.allowed_addresses entry {address!r} is not an IP address or network "
                    f"({exc}); write e.g. 10.1.2.3 or 10.1.2.0/24"
                )
                raise ConfigError(msg) from exc
        if not 1 <= self.max_associations <= 1000:
            msg = f"listen.max_associations={self.max_associations} must be in [1, 1000]"
            raise ConfigError(msg)
        for name in ("acse_timeout_s", "dimse_timeout_s", "network_timeout_s"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                msg = f"listen.{name}={value} must be in (0, 3600] seconds"
                raise ConfigError(msg)


DESTINATION = re.compile(
    r"^(?P<ae_title>[^@]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^@:\[\]\s]+):(?P<port>[0-9]{1,5})$"
)


@dataclass(frozen=True)
class Destination:
    """A DICOM node results are stored to: ``AET@HOST:PORT`` (an IPv6 host in brackets)."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


def parse_destination(text: str) -> Destination:
    """``AET@HOST:PORT`` as a :class:`Destination`; ValueError with what to write otherwise."""
    match = DESTINATION.match(text) if isinstance(text, str) else None
    if match is None:
        msg = (
            f"{text!r} is not AET@HOST:PORT: write the PACS's AE title, host and DICOM port, "
            "e.g. ORTHANC@10.1.2.3:4242"
        )
        raise ValueError(msg)
    title, host, port = match["ae_title"], match["host"].strip("[]"), int(match["port"])
    problem = _ae_title_problem(title)
    if problem:
        msg = f"{text!r}: AE title {title!r} {problem}"
        raise ValueError(msg)
    if not 1 <= port <= 65535:
        msg = f"{text!r}: port {port} must be in [1, 65535]"
        raise ValueError(msg)
    return Destination(title, host, port)


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """``serve``: where results go besides OUTBOX, and the metrics and health endpoint."""

    metrics_port: int = 9464
    send_to: tuple[str, ...] = ()
    webhook_url: str | None = None
    retry_delays_s: tuple[float, ...] = (0.5, 2.0, 8.0)
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.metrics_port, int) or not 0 <= self.metrics_port <= 65535:
            msg = f"serve.metrics_port={self.metrics_port!r} must be in [0, 65535] (0: no metrics)"
            raise ConfigError(msg)
        for entry in self.send_to:
            try:
                parse_destination(entry)
            except ValueError as exc:
                raise ConfigError(f"serve.send_to entry {exc}") from exc
        if self.webhook_url is not None:
            url = urlsplit(str(self.webhook_url))
            if url.scheme not in ("http", "https") or not url.hostname:
                msg = (
                    f"serve.webhook_url={self.webhook_url!r} must be an http:// or https:// URL "
                    "with a host, e.g. https://alerts.example.org/lvo (or null for none)"
                )
                raise ConfigError(msg)
        if len(self.retry_delays_s) > 10:
            msg = f"serve.retry_delays_s has {len(self.retry_delays_s)} entries; at most 10"
            raise ConfigError(msg)
        for delay in self.retry_delays_s:
            number = isinstance(delay, int | float) and not isinstance(delay, bool)
            if not number or not 0 < delay <= 600:
                msg = f"serve.retry_delays_s entry {delay!r} must be in (0, 600] seconds"
                raise ConfigError(msg)
        if not 0 < self.timeout_s <= 600:
            msg = f"serve.timeout_s={self.timeout_s} must be in (0, 600] seconds"
            raise ConfigError(msg)

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return tuple(parse_destination(entry) for entry in self.send_to)


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    """What each study leaves in OUT besides ``result.json``, ``key_image.png`` and the timing
    line. ``dicom``: also the DICOM SR (``sr.dcm``) and the key image as a DICOM Secondary
    Capture (``key_image.dcm``), the files ``serve`` sends to PACS (``serve`` always writes
    them)."""

    dicom: bool = False


@dataclass(frozen=True, kw_only=True)
class Settings:
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    watch: WatchSettings = field(default_factory=WatchSettings)
    listen: ListenSettings = field(default_factory=ListenSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)


T = TypeVar("T")

_EXPECTED = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
    Path: "a file path (a string)",
}


class _Mismatch(ValueError):
    """A value of the wrong type; the caller names the key."""


def _shown(value: Any) -> str:
    """``value`` as it reads in YAML-ish text: strings in double quotes, null, true/false."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _got(value: Any) -> str:
    """``value`` and what it is (a string, a list, ...), as an error message quotes it."""
    if value is None or isinstance(value, bool):
        return _shown(value)
    return f"{_shown(value)} ({_kind(value)})"


def _kind(value: Any) -> str:
    """What a YAML value other than null or true/false is, in a config author's words."""
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _expected(hint: Any) -> str:
    """What a field of type ``hint`` takes, in a config author's words."""
    args = get_args(hint)
    if get_origin(hint) in (Union, UnionType):
        inner = [_expected(a) for a in args if a is not type(None)]
        return " or ".join(inner + (["null"] if type(None) in args else []))
    if get_origin(hint) is tuple:
        return f"a list (of {_EXPECTED.get(args[0], 'values').removeprefix('a ')}s)"
    return _EXPECTED.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any, base_dir: Path) -> Any:
    """``value`` read from YAML as the field type ``hint`` takes it; :class:`_Mismatch` when
    its type is wrong. Entries of lists are checked by the settings themselves."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _coerce(value, inner, base_dir)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Mismatch
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Mismatch
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Mismatch
        return value
    if hint is Path:
        if not isinstance(value, str) or not value.strip():
            raise _Mismatch
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base_dir / path).resolve()
    return value


def _build(cls: type[T], values: Any, where: str, base_dir: Path) -> T:
    """``cls`` from the YAML mapping ``values`` (a part is enough: the rest keeps its defaults);
    every value is checked against its field's type first, and a wrong one is named with its
    key, the value and what the key takes."""
    section = where.rstrip(".") or "the config file"
    if values is None and where:  # a section whose keys are all commented out: its defaults
        values = {}
    if not isinstance(values, dict):
        msg = f"{section} must be a mapping of settings (key: value lines), got {_got(values)}"
        raise ConfigError(msg)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known), key=str)
    if unknown:
        msg = (
            f"unknown setting(s) {', '.join(where + str(k) for k in unknown)}; "
            f"known in {section}: {', '.join(known)}"
        )
        raise ConfigError(msg)
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}{name}.", base_dir)  # type: ignore[arg-type]
            continue
        try:
            kwargs[name] = _coerce(value, hint, base_dir)
        except _Mismatch:
            msg = f"{where}{name} must be {_expected(hint)}, got {_got(value)}"
            raise ConfigError(msg) from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # not expected after the type checks above
        msg = f"bad value in {section}: {exc}"
        raise ConfigError(msg) from exc


def load_settings(path: Path | None = None) -> Settings:
    """Settings from a YAML file (its relative paths are relative to the file), or the defaults."""
    if path is None:
        return Settings()
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        msg = f"config file {str(path)!r} not found; pass an existing YAML file to --config"
        raise ConfigError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"config file {str(path)!r} is not valid YAML: {exc}"
        raise ConfigError(msg) from exc
    return _build(Settings, values, "", path.resolve().parent)

"""Command line: the only place that parses arguments and reads configs/."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from lvo_triage import __version__
from lvo_triage.errors import ConfigError, LvoTriageError, ModelError

if TYPE_CHECKING:
    from lvo_triage.config import Settings
    from lvo_triage.engines import EngineOptions
    from lvo_triage.result import TriageResult

log = logging.getLogger("lvo_triage")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Libraries whose warnings and log notes a user of lvo-triage cannot act on (deprecations aimed
# at their callers, optional accelerators that are absent, Ray's cluster notices).
THIRD_PARTY = ("monai", "torch", "onnxruntime", "ray", "highdicom", "pynetdicom", "numpy", "scipy")
QUIET_LOGGERS = {
    "monai": logging.ERROR,  # e.g. "nvImageCodec is not available; skipping pydicom decoder ..."
    "monai.data.nvimgcodec_pydicom_plugin": logging.ERROR,
    "ray._private.authentication": logging.ERROR,  # "Token authentication is enabled ..."
}


class UsageError(Exception):
    pass


def silence_third_party() -> None:
    """Keep third-party warnings a user cannot act on off stderr (``--verbose`` keeps them).

    Deprecation and future warnings are aimed at developers, and a library raises them with the
    caller's module as their origin, so they are ignored whatever module they name; other
    warnings only when a third-party library raised them. Worker processes started from here
    (the Ray engine on this machine) inherit the same through ``PYTHONWARNINGS``.
    """
    import os

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    pattern = "|".join(THIRD_PARTY)
    warnings.filterwarnings("ignore", module=rf"({pattern})(\.|$)")
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    quiet = "ignore::DeprecationWarning,ignore::FutureWarning"
    inherited = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in inherited:
        os.environ["PYTHONWARNINGS"] = f"{inherited},{quiet}" if inherited else quiet


def writable_folder(path: Path, flag: str, what: str) -> None:
    """Make sure ``path`` is a folder this process can write into (creating it when missing)
    by writing and deleting a file there, which holds for root as for anyone; a
    :class:`UsageError` naming ``flag`` otherwise, before any work is done."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a file: give a folder for {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = (
            f"{flag} {str(path)!r} cannot be created ({exc.strerror or exc}): give a folder "
            f"you can write to for {what}"
        )
        raise UsageError(msg) from exc
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".lvo-triage-write-test-"):
            pass
    except OSError as exc:
        msg = (
            f"{flag} {str(path)!r} is not writable ({exc.strerror or exc}): give a folder you "
            f"can write to for {what}, or change its permissions"
        )
        raise UsageError(msg) from exc


def readable_model(settings: Settings) -> None:
    """A :class:`UsageError` naming the model file when it is missing or unreadable, before
    anything is loaded (the Ray engine loads it in its workers)."""
    path = Path(settings.model.path)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        problem = "not found" if missing else f"cannot be read ({exc.strerror or exc})"
        msg = (
            f"model file {str(path)!r} {problem}: set model.path in the "
            "--config file to an ONNX model with its model card (.json) beside it, or reinstall "
            "lvo-triage for the bundled model"
        )
        raise UsageError(msg) from exc


class StopRequest:
    """Ctrl-C (SIGINT) during ``run``: the first asks to stop after the study in hand
    (:attr:`requested`), a second stops at once (KeyboardInterrupt). :attr:`found`: how many
    studies the run found, once it knows (for the message that says how far it got)."""

    def __init__(self) -> None:
        self.requested = False
        self.found: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write(  # on a line of its own, below the progress bar
            "\nlvo-triage run: stopping after the study in hand (Ctrl-C again to stop at once)\n"
        )
        sys.stderr.flush()

    def planned(self, studies: int) -> None:
        """The run found ``studies`` studies."""
        self.found = studies


@contextmanager
def stop_on_interrupt() -> Iterator[StopRequest]:
    """Install :class:`StopRequest` as the SIGINT handler for the block, then restore the
    previous handler (signal handlers belong to the main thread: elsewhere nothing changes)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.signal(signal.SIGINT, request)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


def _destination(text: str) -> str:
    """``--send-to``: checked here so that a typo is a usage error before anything starts."""
    from lvo_triage.config import parse_destination

    try:
        parse_destination(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine``, ``--address``, ``--workers`` (``run`` and ``bench``)."""
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one model in this process (default); ray: one model per Ray worker, on "
        "this machine or a cluster (needs the ray extra)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: join the Ray cluster at ADDR (HOST:PORT, as `ray start --head` "
        "prints it; default: Ray on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --engine ray: N worker actors (default: one per CPU Ray sees)",
    )


def _engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine options of ``args``; a usage error when they do not fit together or when the
    ray engine is asked for without Ray installed."""
    from lvo_triage.engines import EngineKind, EngineOptions, EngineUnavailable, require_ray

    try:
        options = EngineOptions(
            kind=EngineKind(args.engine), address=args.address, workers=args.workers
        )
    except ValueError as exc:
        raise UsageError(f"--{exc}") from exc
    if options.is_ray:
        try:
            require_ray()
        except EngineUnavailable as exc:
            raise UsageError(str(exc)) from exc
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lvo-triage",
        description="Large vessel occlusion triage of head CTAs. NOT FOR CLINICAL USE.",
    )
    parser.add_argument("--version", action="version", version=f"lvo-triage {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="triage every study found under PATH")
    run.add_argument("path", type=Path, metavar="PATH", help="folder (any nesting) or file")
    run.add_argument("--out", type=Path, help="write OUT/<StudyInstanceUID>/result.json and timing")
    run.add_argument("--config", type=Path, help="YAML settings (default: configs/default.yaml)")
    run.add_argument("--json", action="store_true", help="print JSON Lines results on stdout")
    run.add_argument(
        "--sr",
        action="store_true",
        help="with --out: also write each study's DICOM SR and key image (sr.dcm, key_image.dcm), "
        "the files serve sends to PACS (setting outputs.dicom)",
    )
    _add_engine_options(run)

    watch = sub.add_parser("watch", help="triage studies as they arrive in a folder")
    watch.add_argument("inbox", type=Path, metavar="INBOX", help="folder files arrive in")
    watch.add_argument("--out", type=Path, required=True, metavar="OUTBOX", help="results")
    watch.add_argument("--config", type=Path, help="YAML settings (default: configs/default.yaml)")

    listen = sub.add_parser(
        "listen", help="DICOM node (C-ECHO, C-STORE) storing what it receives into INBOX"
    )
    listen.add_argument(
        "--inbox",
        type=Path,
        required=True,
        metavar="INBOX",
        help="received files go here (for watch)",
    )
    listen.add_argument("--port", type=int, help="TCP port (default: listen.port, 11112)")
    listen.add_argument("--ae-title", help="our AE title (default: listen.ae_title, LVO_TRIAGE)")
    listen.add_argument("--config", type=Path, help="YAML settings (default: configs/default.yaml)")

    serve = sub.add_parser(
        "serve",
        help="listen and watch in one process; SR and key image to PACS, webhook, metrics",
    )
    serve.add_argument(
        "--inbox", type=Path, required=True, metavar="INBOX", help="received files go here"
    )
    serve.add_argument("--out", type=Path, required=True, metavar="OUTBOX", help="results")
    serve.add_argument("--port", type=int, help="DICOM TCP port (default: listen.port, 11112)")
    serve.add_argument("--ae-title", help="our AE title (default: listen.ae_title, LVO_TRIAGE)")
    serve.add_argument(
        "--send-to",
        action="append",
        type=_destination,
        metavar="AET@HOST:PORT",
        help="store the SR and key image of each study there (repeatable; replaces serve.send_to)",
    )
    serve.add_argument(
        "--webhook",
        metavar="URL",
        help="POST each result there, signed with $LVO_WEBHOOK_SECRET (default: serve.webhook_url)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="/metrics and /health on 127.0.0.1:N, 0: off (default: serve.metrics_port, 9464)",
    )
    serve.add_argument("--config", type=Path, help="YAML settings (default: configs/default.yaml)")

    bench = sub.add_parser(
        "bench", help="validators' suite: accuracy and latency over a labelled dataset, a report"
    )
    bench.add_argument(
        "dataset",
        type=Path,
        metavar="DATASET",
        help="folder with labels.csv and one DICOM folder per case (docs/contract.md)",
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("bench-report"),
        metavar="DIR",
        help="metrics.json, cases.csv, plots, report.md and report.html (default bench-report)",
    )
    bench.add_argument("--config", type=Path, help="YAML settings (default: configs/default.yaml)")
    bench.add_argument(
        "--json", action="store_true", help="print metrics.json on stdout (one line)"
    )
    bench.add_argument(
        "--limit", type=int, metavar="N", help="only the first N cases of labels.csv"
    )
    _add_engine_options(bench)

    synth = sub.add_parser(
        "synth", help="write synthetic CTA studies (DICOM or NIfTI) and labels.csv"
    )
    synth.add_argument("out", type=Path, metavar="OUT")
    synth.add_argument("--n", type=int, default=2, help="number of studies (default 2)")
    synth.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    synth.add_argument("--fast", action="store_true", help="small low-resolution studies")
    synth.add_argument(
        "--format",
        choices=("dicom", "nifti"),
        default="dicom",
        help="a DICOM folder per case, or one OUT/<case_id>.nii.gz per case (default dicom)",
    )
    synth.add_argument(
        "--family",
        choices=("a", "b"),
        default="a",
        help="phantom family: a (lvo_triage/synth, what the bundled model was trained on) or b "
        "(lvo_triage/synth_b, built independently, to test how a model generalises)",
    )
    return parser


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from lvo_triage.config import load_settings
    from lvo_triage.result import Status

    if not args.path.exists():
        raise UsageError(f"PATH {str(args.path)!r} does not exist")
    options = _engine_options(args)
    settings = load_settings(args.config)
    if args.sr:
        if args.out is None:
            raise UsageError("--sr writes sr.dcm and key_image.dcm under --out: add --out DIR")
        outputs = dataclasses.replace(settings.outputs, dicom=True)
        settings = dataclasses.replace(settings, outputs=outputs)
    if args.out is not None:  # before the model loads or any study is found
        writable_folder(args.out, "--out", "the results")
    readable_model(settings)
    results: list[TriageResult] = []  # in the order the studies finished

    def show(result: TriageResult) -> None:  # as each study finishes, above the progress bar
        results.append(result)
        tqdm.write(result.to_json() if args.json else result.headline(), file=sys.stdout)
        sys.stdout.flush()

    with stop_on_interrupt() as stop:
        try:
            if options.is_ray:
                from lvo_triage.engines.ray_run import triage_path_ray

                triage_path_ray(
                    args.path,
                    settings,
                    options,
                    out=args.out,
                    on_result=show,
                    should_stop=lambda: stop.requested,
                    on_planned=stop.planned,
                )
            else:
                _run_local(args.path, settings, args.out, show, stop)
        except KeyboardInterrupt:  # a second Ctrl-C, or one before the handler was in place
            stop.requested = True
    if stop.requested:
        of = f" of {stop.found}" if stop.found is not None else ""
        kept = f"; their results are under {str(args.out)!r}" if args.out is not None else ""
        print(
            f"lvo-triage run: interrupted after {len(results)}{of} studies{kept}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED
    failed = [r for r in results if r.status is Status.ERROR]
    if failed:
        log.error(
            "%d of %d studies failed internally: %s", len(failed), len(results), failed[0].reason
        )
        return EXIT_INTERNAL
    return EXIT_OK


def _run_local(
    path: Path,
    settings: Settings,
    out: Path | None,
    show: Callable[[TriageResult], None],
    stop: StopRequest,
) -> None:
    """``run`` with the local engine: the studies under ``path`` one by one, each shown as it
    finishes; stops between studies once ``stop`` is requested."""
    from tqdm import tqdm

    from lvo_triage.pipeline import Runtime, plan, triage_job

    runtime = Runtime.create(settings)  # a model that cannot load: before a long discovery
    log.info("model %s on %s", runtime.detector.card.name, runtime.detector.provider)
    jobs = plan(path, settings, out=out)
    stop.planned(len(jobs))
    with tqdm(total=len(jobs), desc="run", unit="study") as bar:
        for job in jobs:
            if stop.requested:
                break
            show(triage_job(runtime, job))
            bar.update()


def _watch(args: argparse.Namespace) -> int:
    from lvo_triage.config import load_settings
    from lvo_triage.pipeline import Runtime
    from lvo_triage.service.watch import Watcher

    if args.inbox.resolve() == args.out.resolve():
        raise UsageError("INBOX and --out must be different folders")
    watcher = Watcher(args.inbox, args.out, Runtime.create(load_settings(args.config)))
    watcher.run_forever()
    return EXIT_OK


def _listen(args: argparse.Namespace) -> int:
    import dataclasses

    from lvo_triage.config import load_settings
    from lvo_triage.service.scp import StorageNode

    loaded = load_settings(args.config)
    overrides = {"port": args.port, "ae_title": args.ae_title}
    chosen = {name: value for name, value in overrides.items() if value is not None}
    settings = dataclasses.replace(loaded.listen, **chosen)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one line per association is ours
    node = StorageNode(args.inbox, settings, limits=loaded.limits)
    try:
        node.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on port {settings.port} ({exc}): choose another --port, or stop the "
            "program that uses it"
        ) from exc
    node.run_forever()
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from lvo_triage.config import load_settings
    from lvo_triage.pipeline import Runtime
    from lvo_triage.service.serve import SECRET_VARIABLE, Service

    if args.inbox.resolve() == args.out.resolve():
        raise UsageError("--inbox and --out must be different folders")
    settings = load_settings(args.config)
    listen = {"port": args.port, "ae_title": args.ae_title}
    serve = {
        "send_to": tuple(args.send_to) if args.send_to else None,
        "webhook_url": args.webhook,
        "metrics_port": args.metrics_port,
    }
    settings = dataclasses.replace(
        settings,
        listen=dataclasses.replace(
            settings.listen, **{k: v for k, v in listen.items() if v is not None}
        ),
        serve=dataclasses.replace(
            settings.serve, **{k: v for k, v in serve.items() if v is not None}
        ),
    )
    secret = os.environ.get(SECRET_VARIABLE)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one line per association is ours
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # a line per attribute module copied
    engine = Runtime.create(settings)
    log.info("model %s on %s", engine.detector.card.name, engine.detector.provider)
    service = Service(
        inbox=args.inbox,
        outbox=args.out,
        engine=engine,
        webhook_secret=secret.encode("utf-8") if secret else None,
    )
    service.run_forever()
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    import json

    from lvo_triage.bench import read_dataset, run_bench
    from lvo_triage.config import load_settings
    from lvo_triage.errors import DatasetError

    if not args.dataset.is_dir():
        raise UsageError(
            f"DATASET {str(args.dataset)!r} is not a folder: give the folder that holds "
            "labels.csv and one DICOM folder per case"
        )
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit} must be at least 1")
    try:
        read_dataset(args.dataset, limit=args.limit)  # malformed labels: a usage error, at once
    except DatasetError as exc:
        raise UsageError(str(exc)) from exc
    options = _engine_options(args)
    settings = load_settings(args.config)
    writable_folder(args.out, "--out", "the report")  # before the model loads
    readable_model(settings)
    if not args.verbose:  # a line per case would break the progress bar
        logging.getLogger("lvo_triage.pipeline").setLevel(logging.WARNING)
    metrics = run_bench(args.dataset, args.out, settings, limit=args.limit, engine=options)
    acc, failed = metrics["accuracy"], metrics["not_analysable"]
    if args.json:
        print(json.dumps(metrics, separators=(",", ":")), flush=True)
    else:
        auc, sens, spec = acc["auc"], acc["sensitivity"], acc["specificity"]
        total = metrics["latency_ms"]["stages"].get("total", {})
        through = metrics["throughput"]
        print(
            f"{metrics['cases']['n']} studies, {metrics['cases']['n_analysable']} analysable; "
            f"AUC {auc['value']} {auc['ci95']}; sensitivity {sens['value']} {sens['ci95']}, "
            f"specificity {spec['value']} {spec['ci95']}; latency p50 {total.get('p50')} ms; "
            f"{through['studies_per_s']} studies/s ({through['engine']} engine, workers: "
            f"{through['workers']}); "
            f"report {args.out / 'report.html'} [NOT FOR CLINICAL USE]",
            flush=True,
        )
    errors = failed["by_status"].get("error", 0)
    if errors:
        log.error(
            "%d of %d studies failed internally (see cases.csv): %s",
            errors,
            metrics["cases"]["n"],
            next(iter(failed["by_reason"]), ""),
        )
        return EXIT_INTERNAL
    return EXIT_OK


def _synth(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise UsageError(f"--n {args.n} must be at least 1")
    nifti = args.format == "nifti"
    if args.family == "b":
        from lvo_triage.synth_b import write_dataset_b

        try:
            out = write_dataset_b(
                args.out, n=args.n, seed=args.seed, fast=args.fast, fmt=args.format
            )
        except (FileExistsError, ValueError) as exc:
            raise UsageError(str(exc)) from exc
    else:
        from lvo_triage.synth import write_dataset

        out = write_dataset(args.out, n=args.n, seed=args.seed, fast=args.fast, nifti=nifti)
    kind = "NIfTI" if nifti else "DICOM"
    log.info("wrote %d %s studies of family %s and labels.csv to %s", args.n, kind,
             args.family.upper(), out)  # fmt: skip
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="lvo-triage: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # pydicom's own notes on a damaged file: lvo-triage reports what it skipped and why
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    if not args.verbose:
        silence_third_party()  # before the commands import MONAI, torch, ONNX Runtime or Ray
    handlers = {
        "run": _run,
        "watch": _watch,
        "listen": _listen,
        "serve": _serve,
        "bench": _bench,
        "synth": _synth,
    }
    try:
        return handlers[args.command](args)
    except (UsageError, ConfigError, ModelError) as exc:  # a model that cannot load: a setting
        print(f"lvo-triage {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except LvoTriageError as exc:
        print(f"lvo-triage {args.command}: failed: {one_line(exc)}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print(f"lvo-triage {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (a library's message may span several)."""
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())

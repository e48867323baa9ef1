"""The started workers, and calls streamed over them as they finish.

A worker is *starting* (its ``ready()`` call is out: a new actor loading its model, or one
being restarted after its process died), *idle* or *busy* with one item. :meth:`WorkerPool.stream`
gives each idle worker the next item and yields every item's answer as soon as it is back. An
item whose call raised, or whose worker was lost, is yielded with ``lost`` set to the reason and
never stops the stream; a lost worker is asked ``ready()`` again and rejoins once Ray has
restarted it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayError, RayTaskError

from lvo_triage.engines.options import EngineUnavailable
from lvo_triage.engines.ray_worker import WorkerInfo

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0  # a worker that has not loaded its model by then is not waited for
RETRY_S = 0.5  # between two ready() calls to a worker that Ray is restarting
Item = TypeVar("Item")


@dataclass(frozen=True)
class Finished:
    """One item's answer: ``value`` (what the call returned), or ``lost``: why there is none."""

    index: int
    value: Any = None
    lost: str | None = None


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of a Ray error (its cause; the traceback above is in the log)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def task_failure(exc: RayTaskError) -> str:
    """The reason for a call that raised inside the worker, worded as the local engine words an
    internal failure."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, RayError):
        return f"internal error ({type(cause).__name__}): {cause}"
    return f"internal error (in a Ray worker): {_last_line(exc)}"


def worker_lost(exc: RayError) -> str:
    return (
        f"internal error (Ray worker lost, {type(exc).__name__}): the worker process died or "
        "became unreachable while on this study; run it again, and if it fails again the study "
        "itself crashes the worker"
    )


class WorkerPool:
    """The worker actors of one job (use :func:`lvo_triage.engines.ray_cluster.start_pool`)."""

    def __init__(self, actors: Sequence[Any], *, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        if not actors:
            msg = "a worker pool needs at least one actor"
            raise ValueError(msg)
        self._actors = list(actors)
        self._ready_timeout_s = ready_timeout_s
        self._starting: dict[Any, tuple[Any, float]] = {}  # ready() call -> worker, deadline
        for actor in actors:
            self._ask_ready(actor)
        self._idle: list[Any] = []
        self._problems: list[str] = []
        self.info: WorkerInfo | None = None
        self.lost_workers = 0

    @property
    def live_workers(self) -> int:
        """Workers ready or still starting, outside :meth:`stream` (not the ones dropped)."""
        return len(self._idle) + len(self._starting)

    def wait_ready(self) -> WorkerInfo:
        """Wait until every worker has loaded its model (or ``ready_timeout_s`` passed with at
        least one ready: the others join when they are); the first worker's report.
        ``EngineUnavailable`` when none starts."""
        deadline = time.monotonic() + self._ready_timeout_s
        while self._starting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, _ = ray.wait(list(self._starting), num_returns=1, timeout=remaining)
            for ref in done:
                self._settle(ref)
        if self.info is None or not self._idle:
            problem = (
                self._problems[0]
                if self._problems
                else f"none loaded its model within {self._ready_timeout_s:.0f} s; `ray status` "
                "shows whether the cluster has room for them (ask fewer --workers)"
            )
            msg = f"no Ray worker could start: {problem}"
            raise EngineUnavailable(msg)
        if self._starting:
            log.warning(
                "%d of %d Ray workers are not ready after %.0f s; going on with %d",
                len(self._starting),
                len(self._actors),
                self._ready_timeout_s,
                len(self._idle),
            )
        return self.info

    def _ask_ready(self, actor: Any, deadline: float | None = None) -> None:
        if deadline is None:
            deadline = time.monotonic() + self._ready_timeout_s
        self._starting[actor.ready.remote()] = (actor, deadline)

    def _settle(self, ref: Any) -> None:
        """A ``ready()`` call came back: the worker becomes idle, is asked again (Ray is still
        restarting it), or is dropped with why."""
        actor, deadline = self._starting.pop(ref)
        try:
            info: WorkerInfo = ray.get(ref)
        except ActorUnavailableError as exc:
            if time.monotonic() < deadline:
                time.sleep(RETRY_S)
                self._ask_ready(actor, deadline)
            else:
                self._drop(actor, f"a worker did not come back: {_last_line(exc)}")
            return
        except RayError as exc:
            self._drop(actor, f"a worker failed to start: {_last_line(exc)}")
            return
        if self.info is None:
            self.info = info
        elif info.model.sha256 != self.info.model.sha256:
            self._drop(
                actor,
                f"the worker on {info.host} loaded model sha256 {info.model.sha256[:12]}…, the "
                f"one on {self.info.host} {self.info.model.sha256[:12]}…: install the same model "
                "on every node",
            )
            return
        self._idle.append(actor)

    def _drop(self, actor: Any, problem: str) -> None:
        log.error("Ray worker not used: %s", problem)
        self._problems.append(problem)
        ray.kill(actor, no_restart=True)

    def stream(
        self,
        items: Sequence[Item],
        submit: Callable[[Any, Item], Any],
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[Finished]:
        """``submit(worker, item)`` (it returns the call's ObjectRef) for every item, as workers
        become idle; each item's :class:`Finished` as soon as it is back, in any order. Once
        ``should_stop()`` says True, no further item is submitted; the ones in flight finish."""
        pending = deque(range(len(items)))
        busy: dict[Any, tuple[int, Any]] = {}
        while pending or busy:
            if should_stop is not None and should_stop():
                pending.clear()
                if not busy:
                    return
            while pending and self._idle:
                index = pending.popleft()
                actor = self._idle.pop()
                busy[submit(actor, items[index])] = (index, actor)
            if not busy and not self._starting:
                problem = self._problems[-1] if self._problems else "every worker was lost"
                reason = f"internal error (no Ray worker left): {problem}"
                while pending:
                    yield Finished(pending.popleft(), lost=reason)
                return
            timeout = None if busy else self._ready_timeout_s
            done, _ = ray.wait([*busy, *self._starting], num_returns=1, timeout=timeout)
            if not done:  # nothing in flight, and no worker came back in time
                for ref in list(self._starting):
                    actor, _ = self._starting.pop(ref)
                    self._drop(actor, f"not ready again within {self._ready_timeout_s:.0f} s")
                continue
            (ref,) = done
            if ref in self._starting:
                self._settle(ref)
                continue
            index, actor = busy.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as exc:  # raised inside the worker, which is still fine
                self._idle.append(actor)
                yield Finished(index, lost=task_failure(exc))
            except RayError as exc:  # the worker's process or node died
                self.lost_workers += 1
                log.error("a Ray worker was lost: %s", _last_line(exc))
                self._ask_ready(actor)  # it rejoins once Ray has restarted it
                yield Finished(index, lost=worker_lost(exc))
            else:
                self._idle.append(actor)
                yield Finished(index, value=value)

    def peak_rss_mb(self) -> float | None:
        """The largest peak resident memory of the idle workers, in MiB (None if none)."""
        if not self._idle:
            return None
        peaks: list[float] = ray.get([actor.peak_rss_mb.remote() for actor in self._idle])
        return max(peaks)

    def close(self) -> None:
        """Stop every worker of this pool."""
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # already gone
                log.debug("could not kill a Ray worker: %s", exc)
        self._idle.clear()
        self._starting.clear()

"""Running a sweep on Optuna: the store, the study, the objective, and stopping at N variants.

Optuna samples, prunes and keeps every trial in a store: a journal file by default (one file, safe for
several processes on one machine: appends under a file lock), or any database URL Optuna accepts
(``sqlite:///sweep.db``, ``postgresql://user@host/db``) for workers on many machines. Every worker runs
the same loop and stops when the study holds the space's number of measured variants, so starting
``archspec sweep SPACE --storage URL --worker`` on more machines only makes it finish sooner.

A worker killed mid-trial leaves its trial RUNNING: on a database store Optuna's heartbeat fails it
after a grace period and a retry callback enqueues its parameters again; on any store, a worker
starting on the same machine fails the RUNNING trials of processes that no longer exist and enqueues
their parameters again. Finished trials are never touched.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from archspec.errors import Loc, SpecError
from archspec.sweep.measure import latency_ms, static_metrics
from archspec.sweep.sample import draw, parameter_only, violated
from archspec.sweep.space import STATIC_METRICS, LoadedSpace

if TYPE_CHECKING:
    import optuna

ATTR = "archspec"  # the one user attribute a trial carries: status, reason, overrides, metrics, worker
HEARTBEAT_S = 10
GRACE_S = 60
MAX_REJECT_FACTOR = 100  # give up when this many times the wanted variants have been rejected


@dataclass
class Options:
    trials: int
    static: bool = False
    storage: str | None = None
    out: Path = Path("sweep")
    quiet: bool = False


def objectives(space: LoadedSpace, static: bool) -> dict[str, Literal["minimize", "maximize"]]:
    """The metrics Optuna's sampler optimises, with their directions: those of the space that this run
    measures, else the error after training, the latency, or (static) the MACs."""
    measured = set(STATIC_METRICS)
    if not static and space.model.latency is not None:
        measured.add("latency_ms")
    if not static and space.model.train is not None:
        measured.add("error")
    chosen = {k: v for k, v in space.model.objectives.items() if k in measured}
    if chosen:
        return chosen
    for name in ("error", "latency_ms"):
        if name in measured:
            return {name: "minimize"}
    return {"macs": "minimize"}


def study_name(space: LoadedSpace, static: bool) -> str:
    return f"{space.name}-static" if static else space.name


def open_storage(url: str | None, out: Path) -> Any:
    """An Optuna store: a journal file (a path, or the default OUT/study.journal) or a database URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if url is None or "://" not in url:
        path = Path(url) if url else out / "study.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
    if retry is not None:
        kwargs["heartbeat_stale_trial_callback"] = retry(max_retry=3)
    else:
        kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=3)
    return _connect(url, kwargs)


def _connect(url: str, kwargs: dict[str, Any]) -> Any:
    """A database store; workers that start together on an empty database race to make its tables, and
    the losers see the winner's tables on the next try."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(10):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError):
            if attempt == 9:
                raise
            time.sleep(0.2 + 0.3 * attempt)
    raise AssertionError("unreachable")


def _sampler(space: LoadedSpace, worker: int) -> Any:
    """The space's sampler, seeded with ``seed + worker``: each worker (and each restart) draws its own
    stream, and the first worker of a study draws the same variants for the same seed every time."""
    import optuna

    model = space.model
    seed = None if model.seed is None else model.seed + worker
    if model.sampler == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if model.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if model.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def grid(space: LoadedSpace) -> dict[str, list[Any]]:
    """Every parameter's values for the grid sampler: choices and integer ranges only."""
    from archspec.sweep.sample import _encode
    from archspec.sweep.space import Choice, IntRange

    values: dict[str, list[Any]] = {}
    for key, param in space.model.params.items():
        if isinstance(param, Choice):
            values[key] = [_encode(c) for c in param.choice]
        elif isinstance(param, IntRange) and not param.log:
            lo, hi = param.bounds
            values[key] = list(range(lo, hi + 1, param.step))
        else:
            raise SpecError(
                "the grid sampler takes choice lists and integer ranges only",
                space.loc("params", key, key=True),
                code="schema",
                hint="use sampler: random or tpe, or write the values as a list",
            )
    return values


def _pruner(space: LoadedSpace) -> Any:
    import optuna

    if space.model.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if space.model.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(space: LoadedSpace, options: Options) -> tuple[optuna.Study, Any]:
    """The study of this space in the store (made on first use), and the store."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's
    goals = objectives(space, options.static)
    if space.model.train is not None and not options.static and len(goals) > 1 and space.model.pruner != "none":
        raise SpecError(
            "Optuna prunes single-objective studies only: this space has several objectives and a pruner",
            space.loc("pruner"),
            code="schema",
            hint="write pruner: none, or keep one objective (Pareto fronts are drawn from the table either way)",
        )
    storage = open_storage(options.storage, options.out)
    name = study_name(space, options.static)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=list(goals.values()),
        sampler=_sampler(space, 0),
        pruner=_pruner(space),
        load_if_exists=True,
    )
    _check_same(study, space, goals, options)
    return study, storage


def register_worker(study: optuna.Study, space: LoadedSpace) -> int:
    """This process's rank among every worker the study has seen (0 for the first), which seeds its
    sampler: workers that start together see each other's entries and take different ranks."""
    key = f"worker {socket.gethostname()} {os.getpid()} {uuid.uuid4().hex[:8]}"
    study.set_user_attr(key, time.time())
    entries = sorted((v, k) for k, v in study.user_attrs.items() if k.startswith("worker "))
    rank = [k for _, k in entries].index(key)
    study.sampler = _sampler(space, rank)
    return rank


def _check_same(study: optuna.Study, space: LoadedSpace, goals: Mapping[str, str], options: Options) -> None:
    """A study is joined only by the space that made it (same parameters, constraints, measures)."""
    attrs = study.user_attrs
    if "space_digest" not in attrs:
        study.set_user_attr("space_digest", space.digest)
        study.set_user_attr("objectives", list(goals))
        return
    if attrs["space_digest"] != space.digest or attrs.get("objectives") != list(goals):
        raise SpecError(
            f"the store already holds a study {study.study_name!r} made from another version of this space",
            Loc(space.source.file, 1, 1),
            code="io",
            hint=f"name the space anew (name: ...) or use another --out/--storage than {options.storage or options.out}",
        )


class Rejected(Exception):
    """A point outside the space's constraints (or an invalid variant): counted, never built."""


class Failed(Exception):
    """A variant whose measuring failed for a reason of its own (its training diverged): the trial is
    marked failed, with the reason, and the sweep goes on."""


class Objective:
    """One trial: sample, reject statically, measure; everything it learns goes into the trial."""

    def __init__(self, space: LoadedSpace, static: bool, trainer: Callable[..., Any] | None = None) -> None:
        self.space = space
        self.static = static
        self.goals = objectives(space, static)
        metrics = set(STATIC_METRICS) | {"latency_ms", "error"}
        self.early = [c for c in space.model.constraints if parameter_only(c, metrics)]
        self.late = [c for c in space.model.constraints if c not in self.early]
        self.trainer = trainer
        self.worker = {"host": socket.gethostname(), "pid": os.getpid()}
        latency = space.model.latency
        if not static and latency is not None and latency.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise SpecError("latency on cuda, but torch sees no GPU", space.loc("latency", "device"), code="schema")

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        import optuna

        start = time.perf_counter()
        record: dict[str, Any] = {"worker": self.worker, "status": "running"}
        trial.set_user_attr(ATTR, record)
        try:
            metrics = self._measure(trial, record)
        except Rejected as e:
            record.update(status="rejected", reason=str(e), seconds=round(time.perf_counter() - start, 4))
            trial.set_user_attr(ATTR, record)
            raise optuna.TrialPruned(str(e)) from None
        except optuna.TrialPruned:
            record.update(status="pruned", seconds=round(time.perf_counter() - start, 4))
            trial.set_user_attr(ATTR, record)
            raise
        except Failed as e:
            record.update(status="failed", reason=str(e), seconds=round(time.perf_counter() - start, 4))
            trial.set_user_attr(ATTR, record)
            raise
        record.update(status="accepted", seconds=round(time.perf_counter() - start, 4))
        trial.set_user_attr(ATTR, record)
        values = tuple(float(metrics[k]) for k in self.goals)
        return values[0] if len(values) == 1 else values

    def _measure(self, trial: optuna.Trial, record: dict[str, Any]) -> dict[str, Any]:
        point = draw(self.space, trial)
        record.update(values=point.values, overrides=point.overrides)
        if not self.static:  # what is being measured, visible while it runs (a static trial takes milliseconds)
            trial.set_user_attr(ATTR, record)
        reason = point.rejected or violated(self.early, point.values)
        if reason:
            raise Rejected(reason)
        try:
            report, static = static_metrics(self.space.spec, point.overrides)
        except SpecError as e:
            raise Rejected(f"invalid: {e.message} [{e.code}]") from None
        metrics: dict[str, float] = dict(static)
        record.update(metrics=metrics, digest=report.digest)
        reason = violated(self.late, {**point.values, **metrics})
        if reason:
            raise Rejected(reason)
        if self.static:
            return metrics
        settings = self.space.model.latency
        try:
            if settings is not None:
                metrics["latency_ms"] = round(latency_ms(self.space.spec, point.overrides, settings, report), 4)
        except SpecError as e:  # build's own budget (activations at the input size)
            raise Rejected(f"invalid: {e.message} [{e.code}]") from None
        if self.space.model.train is not None and self.trainer is not None:
            record["metrics"] = metrics  # the costs are kept even when training is pruned
            trial.set_user_attr(ATTR, record)
            from archspec.train import UsageError

            try:
                metrics["error"] = self.trainer(self.space, point.overrides, trial, record)
            except UsageError as e:  # e.g. "loss is nan at step 12; lower --lr"
                raise Failed(f"training: {e}") from None
        return metrics


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by what happened to them: accepted, rejected, pruned, running, failed."""
    from optuna.trial import TrialState

    result = {"accepted": 0, "rejected": 0, "pruned": 0, "running": 0, "failed": 0}
    for t in study.get_trials(deepcopy=False):
        status = (t.user_attrs.get(ATTR) or {}).get("status")
        if t.state == TrialState.COMPLETE:
            result["accepted"] += 1
        elif t.state == TrialState.PRUNED:
            result["rejected" if status == "rejected" else "pruned"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            result["running"] += 1
        else:
            result["failed"] += 1
    return result


def measured(c: dict[str, int]) -> int:
    """Variants measured: accepted ones and those pruned during training."""
    return c["accepted"] + c["pruned"]


def recover_stale(study: optuna.Study, storage: Any) -> list[int]:
    """Fail the RUNNING trials of dead processes on this machine and enqueue their parameters again."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = (t.user_attrs.get(ATTR) or {}).get("worker") or {}
        if worker.get("host") != host or _alive(int(worker.get("pid", 0))):
            continue
        try:
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another worker failed it first
            continue
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        failed.append(t.number)
    return failed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(space: LoadedSpace, options: Options, trainer: Callable[..., Any] | None = None) -> optuna.Study:
    """Join (or create) the study and run trials until it holds ``options.trials`` measured variants."""
    study, storage = open_study(space, options)
    register_worker(study, space)
    recovered = recover_stale(study, storage)
    log = logging.getLogger("archspec.sweep")
    if recovered:
        log.warning("trials %s of a stopped worker are run again", recovered)
    objective = Objective(space, options.static, trainer)
    wanted = options.trials
    limit = MAX_REJECT_FACTOR * max(wanted, 1)

    def stop(study: optuna.Study, _trial: Any) -> None:
        c = counts(study)
        if measured(c) + c["running"] >= wanted:
            study.stop()
        elif c["rejected"] >= limit or c["failed"] >= max(wanted, 3):
            logging.getLogger("archspec.sweep").warning(
                "stopping: %d variants rejected and %d failed for %d measured; see the reasons in the results",
                c["rejected"],
                c["failed"],
                measured(c),
            )
            study.stop()

    c = counts(study)
    if measured(c) + c["running"] < wanted:
        study.optimize(objective, callbacks=[stop], gc_after_trial=False, catch=(Failed,))
    return study

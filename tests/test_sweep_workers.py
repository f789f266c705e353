"""Several worker processes on one study: two workers share a journal-file store (and, in the slow tier,
a real PostgreSQL server) and finish with no trial lost or run twice; a worker killed with SIGKILL
loses no finished trial and the study resumes, running the killed trial's variant again."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

from tests.paths import ROOT  # noqa: E402

DIGITS = ROOT / "examples" / "spaces" / "digits_resnet.yaml"

SPACE = f"""\
space: 1
spec: {DIGITS}
name: workers
sampler: random
seed: 0
params:
  w1: [16, 24, 32, 48]
  w2: [32, 48, 64]
  d1: {{int: [2, 3]}}
set:
  network.stage1.0.out: ${{w1}}
  network.stage1.1.out: ${{w1}}
  network.stage1.1.repeat: ${{d1 - 1}}
  network.stage2.0.out: ${{w2}}
  network.stage2.1.out: ${{w2}}
trials: TRIALS
"""
LATENCY = "latency: {batch: 8, repeats: REPEATS, warmup: 1}\n"
TRAIN = "latency: null\ntrain: {data: digits, epochs: 2, batch_size: 128}\npruner: none\n"


def _space(tmp_path: Path, trials: int, repeats: int = 3, train: bool = False) -> Path:
    path = tmp_path / "space.yaml"
    measure = TRAIN if train else LATENCY.replace("REPEATS", str(repeats))
    path.write_text(SPACE.replace("TRIALS", str(trials)) + measure)
    return path


def _worker(space: Path, storage: str, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "archspec.cli", "sweep", str(space), "--storage", storage, "--out", str(out), *extra]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(*workers: subprocess.Popen[str]) -> None:
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err


def _trials(storage: str) -> list[Any]:
    storage = f"sqlite:///{storage}" if storage.endswith(".db") else storage
    s = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage)) if "://" not in storage else storage
    return optuna.load_study(study_name="workers", storage=s).get_trials(deepcopy=False)


def _check_complete(storage: str, wanted: int, workers: int, metric: str = "latency_ms") -> list[Any]:
    """The study holds `wanted` measured variants (a worker that saw wanted - 1 finished may add one more),
    each trial finished by one process with its whole record, and no trial left running."""
    from archspec.sweep.study import ATTR

    trials = _trials(storage)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert wanted <= len(done) <= wanted + workers - 1
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # numbered once each, none missing
    for t in done:
        record = t.user_attrs[ATTR]
        assert record["status"] == "accepted" and record["metrics"][metric] >= 0
        assert t.values[0] == pytest.approx(record["metrics"][metric], abs=1e-6)
    return done


@pytest.mark.slow  # two processes, each training variants on digits
def test_two_workers_train_on_digits_sharing_an_sqlite_store(tmp_path: Path) -> None:
    from archspec.sweep.study import ATTR

    space = _space(tmp_path, trials=4, train=True)
    storage = str(tmp_path / "study.db")
    url = f"sqlite:///{storage}"
    a = _worker(space, url, tmp_path / "a", "--worker")
    b = _worker(space, url, tmp_path / "b", "--worker")
    _finish(a, b)
    done = _check_complete(storage, 4, 2, "error")
    for t in done:  # two epochs (about 22 steps) on digits: each variant learnt something, well below chance's
        # 90 % error (which variants the two workers draw depends on their timing; the slowest learner seen: 53 %)
        assert t.user_attrs[ATTR]["epochs"] == 2 and t.values[0] < 0.75
    pids = {t.user_attrs[ATTR]["worker"]["pid"] for t in done}
    assert pids == {a.pid, b.pid}  # both took part
    assert not (tmp_path / "a" / "results.csv").exists()  # a worker writes no results
    # the report: one row per trial, read back from the store, one spec per accepted trial
    report = _worker(space, url, tmp_path / "r", "--trials", "0")
    _finish(report)
    lines = (tmp_path / "r" / "results.csv").read_text().splitlines()
    assert len(lines) == 1 + len(_trials(storage))
    assert len(list((tmp_path / "r" / "specs").glob("trial-*.yaml"))) == len(done)


def _wait(storage: str, ready: Any, timeout: float = 180) -> list[Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if Path(storage).exists() or "://" in storage:
            try:
                trials = _trials(storage)
            except KeyError:  # the study is not made yet
                trials = []
            if ready(trials):
                return trials
        time.sleep(0.2)
    raise AssertionError("the worker did not get there in time")


def test_kill_9_loses_no_finished_trial_and_the_study_resumes(tmp_path: Path) -> None:
    from archspec.sweep.study import ATTR

    state = optuna.trial.TrialState
    # slow enough trials to kill one mid-way: its measurement must outlast the polling below (with builds
    # kept between trials, 40 repeats took 0.18 s a trial and the worker finished unseen, session 10)
    space = _space(tmp_path, trials=5, repeats=400)
    storage = str(tmp_path / "study.journal")
    worker = _worker(space, storage, tmp_path / "o", "--worker")

    def two_done_one_running(trials: list[Any]) -> bool:
        done = [t for t in trials if t.state == state.COMPLETE]
        return len(done) >= 2 and any(t.state == state.RUNNING and "values" in t.user_attrs.get(ATTR, {}) for t in trials)

    before = _wait(storage, two_done_one_running)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=60)
    after = _trials(storage)
    finished = {t.number: (t.params, t.values) for t in before if t.state == state.COMPLETE}
    assert {t.number: (t.params, t.values) for t in after if t.number in finished} == finished
    killed = [t for t in after if t.state == state.RUNNING]
    assert len(killed) == 1 and len(killed[0].params) == 3
    # restart: the dead process's trial is failed and its variant enqueued again; the study completes
    again = _worker(space, storage, tmp_path / "o")
    _finish(again)
    done = _check_complete(storage, 5, 1)
    trials = _trials(storage)
    assert {t.number: (t.params, t.values) for t in trials if t.number in finished} == finished
    assert trials[killed[0].number].state == state.FAIL
    retried = [t for t in done if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params
    assert (tmp_path / "o" / "results.csv").exists()


# ---- a real PostgreSQL server (Debian's package; .ci/run installs it) --------------------------------


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder, run by an ordinary user (postgres refuses root), on a
    free port and a socket in that folder; yields its URL, then stops it and removes the folder."""
    pytest.importorskip("psycopg2")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does it)")
    home = Path(tempfile.mkdtemp(prefix="archspec-pg-"))  # short: a socket's path has at most 107 bytes
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(home, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = home / "data"

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "sweep", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {home} -c listen_addresses=''"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", str(home), "-p", str(port), "-U", "sweep", "sweeps")
        yield f"postgresql+psycopg2://sweep@/sweeps?host={home}&port={port}"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_postgresql(tmp_path: Path, postgres: str) -> None:
    from archspec.sweep.study import ATTR

    space = _space(tmp_path, trials=6)
    a = _worker(space, postgres, tmp_path / "a", "--worker")
    b = _worker(space, postgres, tmp_path / "b", "--worker")
    _finish(a, b)
    done = _check_complete(postgres, 6, 2)
    assert {t.user_attrs[ATTR]["worker"]["pid"] for t in done} == {a.pid, b.pid}

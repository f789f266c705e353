"""Design spaces: sample, check, measure and compare hundreds of variants of a spec (``archspec sweep``).

space.py reads a space (YAML beside a spec); sample.py turns one draw of Optuna's into --set
overrides; measure.py measures a variant (static costs, latency, error); study.py runs the trials on
an Optuna study in a journal file or a database; results.py and analysis.py write the table, the
standalone specs, the EDF and Pareto plots and the HTML page. docs/sweep.md is the tutorial.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from archspec.sweep.analysis import edf, pareto_front
from archspec.sweep.sample import regnet_stages
from archspec.sweep.space import LoadedSpace, load_space

__all__ = ["LoadedSpace", "edf", "load_space", "pareto_front", "regnet_stages", "sweep", "write_results"]


def sweep(
    space: str | Path | LoadedSpace,
    *,
    trials: int | None = None,
    static: bool = False,
    storage: str | None = None,
    out: str | Path | None = None,
    report: bool = True,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run (or join, or resume) the sweep of ``space`` until its study holds ``trials`` measured variants
    (default: the space's ``trials:``); then, with ``report``, write the results into ``out``. ``jobs``
    runs that many worker processes on this machine (this one and ``jobs - 1`` more). Returns the
    counts of trials by status."""
    from archspec.sweep.study import Options, counts, run
    from archspec.sweep.training import trainer_for

    loaded = space if isinstance(space, LoadedSpace) else load_space(space)
    folder = Path(out) if out is not None else Path(f"{loaded.name}.sweep")
    folder.mkdir(parents=True, exist_ok=True)
    options = Options(trials=loaded.model.trials if trials is None else trials, static=static, storage=storage, out=folder)
    helpers = _helpers(loaded, options, jobs - 1)
    try:
        study = run(loaded, options, None if static else trainer_for(loaded))
    finally:
        for p in helpers:
            p.wait()
    failed = [p.args for p in helpers if p.returncode]
    if failed:
        raise RuntimeError(f"a worker process failed: {failed[0]!r}")
    if report:
        write_results(loaded, study, folder)
    return counts(study)


def _helpers(space: LoadedSpace, options: Any, count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` more worker processes on this machine, each ``archspec sweep SPACE --worker`` on the same store."""
    if count <= 0:
        return []
    from archspec.sweep.study import open_study

    if options.storage is None:
        options.storage = str(options.out / "study.journal")
    open_study(space, options)  # made once here, so that the workers only join it
    command = [sys.executable, "-m", "archspec.cli", "sweep", space.source.file, "--worker", "--trials", str(options.trials)]
    command += ["--storage", options.storage, "--out", str(options.out)] + (["--static"] if options.static else [])
    return [subprocess.Popen(command) for _ in range(count)]


def write_results(space: LoadedSpace, study: Any, out: Path) -> None:
    from archspec.sweep.results import rows_of, write_best, write_diagrams, write_html, write_plots, write_specs, write_table
    from archspec.sweep.study import counts

    rows = rows_of(study)
    write_table(rows, out)
    write_specs(space, rows, out)
    write_best(rows, study, out)
    write_diagrams(rows, out)
    write_plots(rows, out, space.name)
    write_html(space, rows, counts(study), out)

"""Running the study's jobs: local process pool or dask, resumable, atomic writes."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .common import StudyInputError, load_data
from .registry import Config, Experiment, experiments

STUDY_FILE = "study.json"


def atomic_write_json(path: str, obj: Any) -> None:
    """Write JSON to a temp file in the same directory, then ``os.replace`` it."""
    write_atomic(path, json.dumps(clean(obj), indent=1, allow_nan=False).encode())


def write_atomic(path: str, data: bytes) -> None:
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def clean(obj: Any) -> Any:
    """JSON-able copy: NumPy scalars/arrays to Python, NaN/Inf to None."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


@dataclass(frozen=True)
class Job:
    experiment: str
    setting: str
    seed: int
    params: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.setting}/seed{self.seed}"

    def config_hash(self, data_fingerprint: str) -> str:
        from .. import __version__

        blob = json.dumps(
            {
                "experiment": self.experiment,
                "setting": self.setting,
                "seed": self.seed,
                "params": self.params,
                "data": data_fingerprint,
                "fastmem": __version__,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def filename(self, h: str) -> str:
        return f"{self.experiment}--{self.setting}--{h[:16]}.json"


def execute(experiment: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one job (in a worker process, a dask worker, or in-process)."""
    from .. import select_backend

    exp = experiments()[experiment]
    t0 = time.perf_counter()
    result = exp.run(params, seed)
    return {
        "result": clean(result),
        "time_s": time.perf_counter() - t0,
        "backend": select_backend("cpu").name,
    }


def _limit_threads(n: int) -> None:
    # Jobs run side by side: each gets its share of the cores (BLAS and OpenMP). More
    # threads than cores make every OpenMP barrier wait for a time slice (~5 ms per kernel
    # call). The environment covers libraries loaded later (fastmem._core's libgomp reads
    # OMP_NUM_THREADS when it loads); threadpoolctl covers those already loaded.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    import importlib.util

    if importlib.util.find_spec("fastmem._core") is not None:
        import fastmem._core  # noqa: F401  (load it now, under the limit)
    from threadpoolctl import threadpool_limits

    global _LIMITS
    _LIMITS = threadpool_limits(limits=n)


_LIMITS: Any = None


def data_fingerprint(spec: str) -> str:
    if spec in ("digits", "moons"):
        return spec
    h = hashlib.sha256()
    paths = (
        [spec] if os.path.isfile(spec) else sorted(os.path.join(spec, p) for p in os.listdir(spec))
    )
    for p in paths:
        if os.path.isfile(p):
            with open(p, "rb") as f:
                h.update(f.read())
    return f"{os.path.abspath(spec)}:{h.hexdigest()[:16]}"


@dataclass
class Outcome:
    out: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    interrupted: str | None = None
    results_path: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def select(only: list[str] | None) -> list[Experiment]:
    allexp = experiments()
    if only:
        unknown = [n for n in only if n not in allexp]
        if unknown:
            raise StudyInputError(
                f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(allexp)}"
            )
        chosen = [allexp[n] for n in allexp if n in only]
        for e in chosen:
            why = e.available()
            if why:
                raise StudyInputError(f"experiment {e.name!r} cannot run here: {why}")
        return chosen
    return [e for e in allexp.values() if e.available() is None and e.name in _DEFAULT]


_DEFAULT = (
    "fitting",
    "regularizers",
    "constructions",
    "regions",
    "intervals",
    "critical",
    "information",
    "svd",
)


def prepare_out(out: str, cfg: Config, fingerprint: str) -> None:
    """Create ``out`` or check that it holds this same study; never touches other files."""
    ident = {**cfg.to_dict(), "data_fingerprint": fingerprint}
    marker = os.path.join(out, STUDY_FILE)
    if os.path.exists(out) and not os.path.isdir(out):
        raise StudyInputError(f"--out {out} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(marker):
            raise StudyInputError(
                f"--out {out} is not empty and holds no fastmem study; choose another directory"
            )
        try:
            with open(marker) as f:
                old = json.load(f)
        except (OSError, ValueError) as exc:
            raise StudyInputError(f"--out {out}: unreadable {STUDY_FILE} ({exc})") from exc
        if old.get("identity") != ident:
            raise StudyInputError(
                f"--out {out} holds another study ({old.get('identity')}); choose another directory"
            )
    os.makedirs(os.path.join(out, "jobs"), exist_ok=True)
    if not os.path.isfile(marker):
        atomic_write_json(marker, {"identity": ident})


def run_study(
    out: str,
    *,
    only: list[str] | None = None,
    data: str = "digits",
    quick: bool = False,
    seed: int = 0,
    seeds: int = 1,
    jobs: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    quiet: bool = False,
    on_job_done: Any = None,
    render_report: bool = True,
) -> Outcome:
    """Run (or resume) a study into ``out``; see ``fastmem study --help``.

    Raises :class:`StudyInputError` for bad input before anything is written.
    ``on_job_done(key)`` is called in the parent after each job is saved (tests use it
    to interrupt a run). ``seeds``: every job runs for ``seed, seed + 1, ..., seed +
    seeds - 1`` (one job file each; a rerun with more seeds reuses the finished ones).
    """
    from tqdm.auto import tqdm

    from .. import __version__, select_backend
    from ..errors import InputError
    from .report import assemble, render

    if not isinstance(seed, int) or seed < 0:
        raise StudyInputError(f"--seed must be a non-negative integer, got {seed!r}")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise StudyInputError(f"--seeds must be a positive integer, got {seeds!r}")
    chosen = select(only)
    try:
        load_data(data)
    except InputError as exc:
        raise StudyInputError(str(exc)) from exc
    except ImportError as exc:
        raise StudyInputError(f"the study needs the [study] extra: {exc}") from exc
    cfg = Config(data=data, quick=quick, seed=seed, seeds=seeds)
    fp = data_fingerprint(data)
    prepare_out(out, cfg, fp)
    jobdir = os.path.join(out, "jobs")
    t_start = time.perf_counter()

    all_jobs: list[tuple[Job, str]] = []
    for exp in chosen:
        for setting, params in exp.jobs(cfg):
            for s in range(seed, seed + seeds):
                job = Job(exp.name, setting, s, params)
                all_jobs.append((job, job.config_hash(fp)))
    outcome = Outcome(out)
    todo = []
    for job, h in all_jobs:
        path = os.path.join(jobdir, job.filename(h))
        if os.path.isfile(path) and not force:
            outcome.skipped.append(job.key)
        else:
            todo.append((job, h, path))

    def save(job: Job, h: str, path: str, res: dict[str, Any]) -> None:
        atomic_write_json(
            path,
            {
                "experiment": job.experiment,
                "setting": job.setting,
                "seed": job.seed,
                "params": job.params,
                "config_hash": h,
                **res,
            },
        )
        outcome.computed.append(job.key)
        if on_job_done is not None:
            on_job_done(job.key)

    bar = tqdm(total=len(todo), disable=quiet or not sys.stderr.isatty(), unit="job")
    n_workers = max(1, jobs or min(len(todo), os.cpu_count() or 1, 8) or 1)
    extra = {e.name for e in chosen} - set(_default_modules_experiments())
    try:
        if scheduler:
            _run_dask(scheduler, todo, save, outcome, bar)
        elif n_workers == 1 or len(todo) <= 1 or extra:
            for job, h, path in todo:
                bar.set_postfix_str(job.key)
                try:
                    res = execute(job.experiment, job.params, job.seed)
                except Exception:
                    outcome.failed[job.key] = traceback.format_exc()
                else:
                    save(job, h, path, res)
                bar.update()
        else:
            _run_pool(n_workers, todo, save, outcome, bar)
    except KeyboardInterrupt:
        outcome.interrupted = "interrupted (Ctrl-C)"
    except cf.process.BrokenProcessPool:
        outcome.interrupted = "a worker process died"
    finally:
        bar.close()
    done = set(outcome.computed) | set(outcome.skipped) | set(outcome.failed)
    outcome.unfinished = [j.key for j, _ in all_jobs if j.key not in done]
    if outcome.interrupted:
        return outcome

    # Assemble every section whose jobs all finished; render the report.
    results = assemble(
        chosen,
        cfg,
        jobdir,
        {j.key: (j, h) for j, h in all_jobs},
        failures=outcome.failed,
        meta={
            "fastmem_version": __version__,
            "backend": select_backend("cpu").name,
            "data_fingerprint": fp,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "jobs_computed": len(outcome.computed),
            "jobs_reused": len(outcome.skipped),
            "wall_s": time.perf_counter() - t_start,
        },
    )
    outcome.results_path = os.path.join(out, "results.json")
    atomic_write_json(outcome.results_path, results)
    if render_report:
        render(out)
    return outcome


def _default_modules_experiments() -> list[str]:
    from .registry import _EXTRA

    return [n for n in experiments() if n not in _EXTRA]


def _run_pool(n: int, todo: list[Any], save: Any, outcome: Outcome, bar: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    per = max(1, (os.cpu_count() or 1) // n)
    ex = cf.ProcessPoolExecutor(n, mp_context=ctx, initializer=_limit_threads, initargs=(per,))
    try:
        futs = {
            ex.submit(execute, job.experiment, job.params, job.seed): (job, h, path)
            for job, h, path in todo
        }
        for fut in cf.as_completed(futs):
            job, h, path = futs[fut]
            bar.set_postfix_str(job.key)
            try:
                res = fut.result()
            except cf.process.BrokenProcessPool:
                raise
            except Exception as exc:
                tb = getattr(exc, "__cause__", None)
                outcome.failed[job.key] = "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__)
                ) + (str(tb) if tb else "")
            else:
                save(job, h, path, res)
            bar.update()
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        ex.shutdown(wait=True)


def _run_dask(address: str, todo: list[Any], save: Any, outcome: Outcome, bar: Any) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise StudyInputError(f"--scheduler needs dask.distributed: {exc}") from exc
    try:
        client = Client(address, timeout=10)
    except OSError as exc:
        raise StudyInputError(f"--scheduler {address}: cannot connect ({exc})") from exc
    try:
        futs = {}
        for job, h, path in todo:
            f = client.submit(execute, job.experiment, job.params, job.seed, pure=False)
            futs[f] = (job, h, path)
        for fut in as_completed(list(futs)):
            job, h, path = futs[fut]
            try:
                res = fut.result()
            except Exception:
                outcome.failed[job.key] = traceback.format_exc()
            else:
                save(job, h, path, res)
            bar.update()
    except BaseException:
        for f in futs:
            f.cancel()
        raise
    finally:
        client.close()

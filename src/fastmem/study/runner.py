"""Running the study's jobs: local process pool or dask, resumable, atomic writes."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import common
from .common import StudyInputError, load_data
from .io import LOCK_FILE, OutLock, atomic_write_json, clean, read_job
from .registry import Config, Experiment, builtin, experiments, is_extra

STUDY_FILE = "study.json"


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
    timings = common.timings()
    timings.clear()
    t0 = time.perf_counter()
    result = exp.run(params, seed)
    total = time.perf_counter() - t0
    train_s = timings.pop("train", 0.0)
    return {
        "result": clean(result),
        "time_s": total,
        "train_s": train_s,
        "analysis_s": max(0.0, total - train_s),
        "analysis_calls": dict(timings),
        "backend": select_backend("cpu").name,
    }


def _watch_parent(ppid: int) -> None:
    # A pool worker outlives a parent killed with SIGKILL (no cleanup runs there), and
    # would go on computing, holding the terminal's output open. It exits instead.
    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os._exit(70)


def _worker_init(n: int, ppid: int) -> None:
    """Pool worker set-up: exit when the parent dies; share the cores (threads)."""
    import threading

    threading.Thread(target=_watch_parent, args=(ppid,), daemon=True).start()
    _limit_threads(n)


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
    damaged: dict[str, str] = field(default_factory=dict)
    interrupted: str | None = None
    results_path: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def select(only: list[str] | None) -> list[Experiment]:
    """The experiments to run: ``only`` (names, in report order), or every built-in one."""
    allexp = experiments()
    if only is None:
        return builtin()
    if not only:
        raise StudyInputError(f"--only names no experiment; known: {', '.join(allexp)}")
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


def _say(msg: str) -> None:
    print(f"fastmem: {msg}", file=sys.stderr, flush=True)


def prepare_out(out: str, cfg: Config, fingerprint: str, *, wait: bool = False) -> OutLock:
    """Create ``out`` (or check that it holds this same study) and lock it for this run.

    Never touches other files; refuses a foreign or read-only directory, and one another
    run holds (``wait``: wait for that run to end). Returns the held lock.
    """
    ident = {**cfg.to_dict(), "data_fingerprint": fingerprint}
    marker = os.path.join(out, STUDY_FILE)

    def check_identity() -> None:
        if not os.path.isfile(marker):
            return
        try:
            with open(marker) as f:
                old = json.load(f)
        except (OSError, ValueError) as exc:
            raise StudyInputError(f"--out {out}: unreadable {STUDY_FILE} ({exc})") from exc
        if not isinstance(old, dict) or old.get("identity") != ident:
            held = old.get("identity") if isinstance(old, dict) else old
            raise StudyInputError(
                f"--out {out} holds another study ({held}); choose another directory"
            )

    if os.path.exists(out) and not os.path.isdir(out):
        raise StudyInputError(f"--out {out} exists and is not a directory")
    if os.path.isdir(out):
        entries = set(os.listdir(out)) - {LOCK_FILE}
        if entries and not os.path.isfile(marker):
            raise StudyInputError(
                f"--out {out} is not empty and holds no fastmem study; choose another directory"
            )
        check_identity()
        if not os.access(out, os.W_OK | os.X_OK):
            raise StudyInputError(f"--out {out} is not writable")
    lock = OutLock(out)
    try:
        os.makedirs(out, exist_ok=True)
        lock.acquire(
            wait=wait,
            on_wait=lambda who: _say(f"--out {out} is in use by {who}; waiting for it (--wait)"),
        )
    except BlockingIOError as exc:
        raise StudyInputError(
            f"--out {out} is in use by {exc}; wait for that run to end, or pass --wait"
        ) from None
    except OSError as exc:
        raise StudyInputError(f"--out {out} is not writable: {exc.strerror or exc}") from exc
    try:
        check_identity()  # another run may have created it while this one waited
        os.makedirs(os.path.join(out, "jobs"), exist_ok=True)
        if not os.path.isfile(marker):
            atomic_write_json(marker, {"identity": ident})
    except OSError as exc:
        lock.release()
        raise StudyInputError(f"--out {out} is not writable: {exc.strerror or exc}") from exc
    except BaseException:
        lock.release()
        raise
    return lock


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
    wait: bool = False,
    on_job_done: Any = None,
    render_report: bool = True,
) -> Outcome:
    """Run (or resume) a study into ``out``; see ``fastmem study --help``.

    Raises :class:`StudyInputError` for bad input before anything is written (a bad
    ``data``, an unreachable ``scheduler``, a foreign, read-only or busy ``out``).
    ``wait``: when another run holds ``out``, wait for it to end instead. A job file
    that is damaged (unreadable, or not what ``job.schema.json`` describes) is reported
    once and recomputed. ``on_job_done(key)`` is called in the parent after each job is
    saved (tests use it to interrupt a run).
    ``seeds``: every job runs for ``seed, seed + 1, ..., seed + seeds - 1`` (one job
    file each; a rerun with more seeds reuses the finished ones).
    """
    from ..errors import InputError

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise StudyInputError(f"--seed must be a non-negative integer, got {seed!r}")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise StudyInputError(f"--jobs must be a positive integer, got {jobs!r}")
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
    client = _connect(scheduler) if scheduler else None  # before anything is written
    try:
        lock = prepare_out(out, cfg, fp, wait=wait)
        try:
            return _run_locked(
                out, chosen, cfg, fp, jobs=jobs, client=client, force=force, quiet=quiet,
                on_job_done=on_job_done, render_report=render_report,
            )  # fmt: skip
        finally:
            lock.release()
    finally:
        if client is not None:
            client.close()


def _run_locked(
    out: str,
    chosen: list[Experiment],
    cfg: Config,
    fp: str,
    *,
    jobs: int | None,
    client: Any,
    force: bool,
    quiet: bool,
    on_job_done: Any,
    render_report: bool,
) -> Outcome:
    from tqdm.auto import tqdm

    from .. import __version__, select_backend
    from .report import assemble, render

    jobdir = os.path.join(out, "jobs")
    t_start = time.perf_counter()
    seed = cfg.seed

    all_jobs: list[tuple[Job, str]] = []
    for exp in chosen:
        for setting, params in exp.jobs(cfg):
            for s in range(seed, seed + cfg.seeds):
                job = Job(exp.name, setting, s, params)
                all_jobs.append((job, job.config_hash(fp)))
    outcome = Outcome(out)
    todo = []
    for job, h in all_jobs:
        path = os.path.join(jobdir, job.filename(h))
        if os.path.lexists(path) and not force:
            rec, why = read_job(path, h)
            if rec is not None:
                outcome.skipped.append(job.key)
                continue
            outcome.damaged[job.key] = why or "damaged"
            _say(f"job file {path} is damaged ({why}); recomputing it")
            try:
                os.unlink(path)  # reported once: a later run does not see it again
            except OSError:
                pass
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
    cores = os.cpu_count() or 1
    n_workers = max(1, min(jobs or min(cores, 8), cores, len(todo) or 1))
    extra = any(is_extra(e.name) for e in chosen)
    try:
        if client is not None:
            _run_dask(client, todo, save, outcome, bar)
        elif n_workers == 1 or extra:
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
    except KeyboardInterrupt as exc:
        outcome.interrupted = str(exc) or "interrupted (Ctrl-C)"
    except cf.process.BrokenProcessPool:
        outcome.interrupted = "a worker process died"
    finally:
        bar.close()
    done = set(outcome.computed) | set(outcome.skipped) | set(outcome.failed)
    outcome.unfinished = [j.key for j, _ in all_jobs if j.key not in done]
    if outcome.interrupted:
        return outcome

    # Every section whose jobs all finished: the chosen ones and (with --only) the other
    # built-in sections already finished in this directory, so that none is dropped.
    names = {e.name for e in chosen}
    keep = [e for e in builtin() if e.name not in names]
    known = {j.key: (j, h) for j, h in all_jobs}
    for exp in keep:
        for setting, params in exp.jobs(cfg):
            job = Job(exp.name, setting, seed, params)
            known[job.key] = (job, job.config_hash(fp))
    order = {name: i for i, name in enumerate(experiments())}
    sections = sorted([*chosen, *keep], key=lambda e: order[e.name])
    results = assemble(
        sections,
        cfg,
        jobdir,
        known,
        failures=outcome.failed,
        optional={e.name for e in keep},
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


def _connect(address: str) -> Any:
    """A dask.distributed client, or a one-line :class:`StudyInputError` (checked first)."""
    import socket

    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError as exc:
        raise StudyInputError(f"--scheduler needs dask.distributed: {exc}") from exc
    try:
        proto, loc = parse_address(address)
        if proto in ("tcp", "tls"):
            host, port = parse_host_port(loc)
            socket.create_connection((host, port), timeout=5).close()
    except (OSError, ValueError, TypeError) as exc:
        raise StudyInputError(f"--scheduler {address}: cannot connect ({exc})") from exc
    try:
        return Client(address, timeout=10)
    except Exception as exc:  # OSError, TimeoutError, ValueError: any failure to connect
        raise StudyInputError(f"--scheduler {address}: cannot connect ({exc})") from exc


def _run_pool(n: int, todo: list[Any], save: Any, outcome: Outcome, bar: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    per = max(1, (os.cpu_count() or 1) // n)
    ex = cf.ProcessPoolExecutor(
        n, mp_context=ctx, initializer=_worker_init, initargs=(per, os.getpid())
    )
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
        # Interrupted (Ctrl-C, SIGTERM): the workers stop now, not after their jobs.
        procs = list((getattr(ex, "_processes", None) or {}).values())
        # Python 3.11's exit hook wakes the executor's manager thread through a pipe that
        # thread closes as it ends; waiting for it here avoids that race (an "Exception
        # ignored ... Bad file descriptor" traceback on stderr after a clean SIGTERM).
        # Taken before shutdown, which forgets it.
        manager = getattr(ex, "_executor_manager_thread", None)
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)
        if manager is not None:
            manager.join(10)
        raise
    else:
        ex.shutdown(wait=True)


def _run_dask(client: Any, todo: list[Any], save: Any, outcome: Outcome, bar: Any) -> None:
    from distributed import as_completed

    futs: dict[Any, Any] = {}
    try:
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

"""The ``fastmem`` command: ``fastmem study ...`` and ``fastmem report DIR``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

# The sections, in report order (``fastmem study --list`` says what each is); the test
# suite checks this list against the registry.
SECTIONS = (
    "fitting",
    "regularizers",
    "constructions",
    "regions",
    "intervals",
    "critical",
    "information",
    "svd",
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastmem", description="fastmem: memorization studies")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "study",
        help="run the papers' experiments and write a report",
        description="Run the papers' experiments (resumable: rerun the same command after "
        "an interruption; finished jobs are kept in OUT/jobs) and write OUT/results.json "
        "and OUT/index.html.",
    )
    s.add_argument(
        "--quick",
        action="store_true",
        help="small settings: every section at a reduced size, well under a minute on 2 "
        "cores (for CI and trying things out; not the papers' sizes)",
    )
    s.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help="comma-separated sections to run (the other finished sections in OUT are "
        f"kept in the report); sections: {', '.join(SECTIONS)}",
    )
    s.add_argument(
        "--data",
        default="digits",
        help="digits (default), moons, or a path (MNIST IDX images/labels file or "
        "directory, gz or not; CIFAR-10 data_batch_*.bin file or directory; .npz with X, y)",
    )
    s.add_argument("--out", default="report", help="output directory (default: report)")
    s.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes (default and maximum: the cores, at most 8 by default)",
    )
    s.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the jobs on a dask.distributed scheduler (e.g. tcp://host:8786); checked "
        "before anything is written",
    )
    s.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the study's random seed (splits, initializations, random labels); part of "
        "OUT's identity (default: 0)",
    )
    s.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per setting: jobs run for seed, seed+1, ...; tables and figures show "
        "mean and spread (default: 3, or 1 with --quick)",
    )
    s.add_argument("--force", action="store_true", help="recompute finished jobs")
    s.add_argument(
        "--wait",
        action="store_true",
        help="when another run holds OUT, wait for it to end (default: refuse at once)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--list", action="store_true", help="list the sections and exit")
    r = sub.add_parser("report", help="re-render the report from DIR/results.json")
    r.add_argument("dir")
    return p


def default_seeds(quick: bool) -> int:
    """Seeds per setting when --seeds is not given: 3 for the full run, 1 with --quick."""
    return 1 if quick else 3


def _fail(msg: str) -> int:
    print(f"fastmem: error: {msg}", file=sys.stderr)
    return 2


class _Terminated(KeyboardInterrupt):
    """SIGTERM / SIGHUP, handled as Ctrl-C is: save what finished, stop the workers."""


def _on_signal(signum: int, frame: Any) -> None:
    raise _Terminated(f"terminated ({signal.Signals(signum).name})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        return _report(args.dir)

    try:
        from .common import StudyInputError
        from .registry import experiments
        from .runner import run_study
    except ImportError as exc:
        return _fail(f"the study needs the [study] extra (pip install 'fastmem[study]'): {exc}")
    if args.list:
        for name, exp in experiments().items():
            why = exp.available()
            print(f"{name:14s} {exp.title}" + (f"  [unavailable: {why}]" if why else ""))
        return 0
    if args.jobs is not None and args.jobs < 1:
        return _fail(f"--jobs must be >= 1, got {args.jobs}")
    cores = os.cpu_count() or 1
    if args.jobs is not None and args.jobs > cores:
        print(f"fastmem: --jobs {args.jobs} capped at {cores} (the cores here)", file=sys.stderr)
        args.jobs = cores
    only = None
    if args.only is not None:
        only = [n.strip() for n in args.only.split(",") if n.strip()]
        if not only:
            return _fail(f"--only {args.only!r} names no section; sections: {', '.join(SECTIONS)}")
    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, _on_signal)
        except (ValueError, OSError):  # not the main thread
            pass
    try:
        res = run_study(
            args.out,
            only=only,
            data=args.data,
            quick=args.quick,
            seed=args.seed,
            seeds=default_seeds(args.quick) if args.seeds is None else args.seeds,
            jobs=args.jobs,
            scheduler=args.scheduler,
            force=args.force,
            quiet=args.quiet,
            wait=args.wait,
        )
    except StudyInputError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt as exc:
        print(f"fastmem: {exc or 'interrupted'} before any job ran", file=sys.stderr)
        return 130
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if res.interrupted:
        print(
            f"fastmem: {res.interrupted}: {len(res.computed)} job(s) finished and saved, "
            f"{len(res.unfinished)} unfinished job(s) lost; rerun the same command to resume",
            file=sys.stderr,
        )
        return res.exit_code
    for key, tb in res.failed.items():
        print(f"fastmem: job {key} failed:\n{tb}", file=sys.stderr)
    damaged = f", {len(res.damaged)} damaged file(s) recomputed" if res.damaged else ""
    print(
        f"{len(res.computed)} job(s) computed, {len(res.skipped)} reused, "
        f"{len(res.failed)} failed{damaged}; report: {os.path.join(args.out, 'index.html')}"
    )
    return res.exit_code


def _report(d: str) -> int:
    from .report import ReportError, render

    path = os.path.join(d, "results.json")
    if not os.path.isfile(path):
        return _fail(f"{path} not found (run fastmem study --out {d} first)")
    try:
        render(d)
    except ReportError as exc:
        return _fail(str(exc))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        # schema-valid but inconsistent numbers (a hand-edited file)
        return _fail(f"{path} is malformed: {type(exc).__name__}: {exc}")
    except OSError as exc:
        return _fail(f"cannot write the report into {d}: {exc}")
    print(os.path.join(d, "index.html"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

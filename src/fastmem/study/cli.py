"""The ``fastmem`` command: ``fastmem study ...`` and ``fastmem report DIR``."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastmem", description="fastmem: memorization studies")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("study", help="run the papers' experiments and write a report")
    s.add_argument("--quick", action="store_true", help="small settings (minutes; CI)")
    s.add_argument("--only", default=None, help="comma-separated experiment names")
    s.add_argument(
        "--data",
        default="digits",
        help="digits (default), moons, or a path "
        "(MNIST IDX images/labels file or directory, gz or not; .npz with X, y)",
    )
    s.add_argument("--out", default="report", help="output directory (default: report)")
    s.add_argument("--jobs", type=int, default=None, help="worker processes (default: cores)")
    s.add_argument("--scheduler", default=None, help="dask.distributed scheduler address")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per setting: jobs run for seed, seed+1, ...; tables and figures show "
        "mean and spread (default: 3, or 1 with --quick)",
    )
    s.add_argument("--force", action="store_true", help="recompute finished jobs")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--list", action="store_true", help="list the experiments and exit")
    r = sub.add_parser("report", help="re-render the report from DIR/results.json")
    r.add_argument("dir")
    return p


def default_seeds(quick: bool) -> int:
    """Seeds per setting when --seeds is not given: 3 for the full run, 1 with --quick."""
    return 1 if quick else 3


def _fail(msg: str) -> int:
    print(f"fastmem: error: {msg}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "report":
        from .report import render

        path = os.path.join(args.dir, "results.json")
        if not os.path.isfile(path):
            return _fail(f"{path} not found (run fastmem study --out {args.dir} first)")
        try:
            render(args.dir)
        except (ValueError, KeyError) as exc:
            return _fail(f"{path} is malformed: {exc}")
        print(os.path.join(args.dir, "index.html"))
        return 0

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
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
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
        )
    except StudyInputError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("fastmem: interrupted before any job ran", file=sys.stderr)
        return 130
    if res.interrupted:
        print(
            f"fastmem: {res.interrupted}: {len(res.computed)} job(s) finished and saved, "
            f"{len(res.unfinished)} unfinished job(s) lost; rerun the same command to resume",
            file=sys.stderr,
        )
        return res.exit_code
    for key, tb in res.failed.items():
        print(f"fastmem: job {key} failed:\n{tb}", file=sys.stderr)
    print(
        f"{len(res.computed)} job(s) computed, {len(res.skipped)} reused, "
        f"{len(res.failed)} failed; report: {os.path.join(args.out, 'index.html')}"
    )
    with open(os.path.join(args.out, "results.json")) as f:
        json.load(f)
    return res.exit_code


if __name__ == "__main__":
    sys.exit(main())

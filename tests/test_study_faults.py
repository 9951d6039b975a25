"""fastmem study under faults: kill -9, SIGTERM, damaged files, concurrent runs, bad input.

The study loses nothing and never reports from damaged files (issue 25, section 4).
Subprocess tests run the real command on the smallest section that has two jobs; the
others run in-process on a toy experiment.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the study needs scikit-learn ([study] extra)")
pytest.importorskip("matplotlib", reason="the study needs matplotlib ([study] extra)")
pytest.importorskip("tqdm", reason="the study needs tqdm ([study] extra)")

from fastmem.study import cli, common, registry, runner
from fastmem.study.registry import Experiment

# ------------------------------------------------------------------ helpers
CALLS: list[str] = []


def _toy_run(params, seed):
    CALLS.append(params["name"])
    with common.timed("toy analysis"):
        rng = np.random.default_rng([seed, len(params["name"])])
        value = float(rng.random())
    return {"value": value, "name": params["name"]}


def _toy(name="toy", names=("a", "b", "c")):
    return Experiment(
        name=name,
        title=name.title(),
        seed_document="001",
        references="none",
        jobs=lambda cfg: [(n, {"name": n}) for n in names],
        run=_toy_run,
        summarize=lambda res, cfg: {"values": {k: v["value"] for k, v in sorted(res.items())}},
        figures=lambda d: [],
        tables=lambda d: [
            {"title": "t", "columns": ["k", "v"], "rows": sorted(d["values"].items())}
        ],
        reading=lambda d: "toy experiment for the fault tests of the runner",
        setting=lambda cfg: "toy",
    )


@pytest.fixture
def toy():
    CALLS.clear()
    registry.register(_toy())
    yield
    registry.unregister("toy")


def _cli(args, capsys):
    rc = cli.main(args)
    cap = capsys.readouterr()
    return rc, cap.out.strip(), cap.err.strip()


def _one_line_error(rc, err):
    assert rc == 2, err
    assert err.startswith("fastmem: error: ") and "\n" not in err and "Traceback" not in err, err


def _jobs(out):
    return sorted(os.listdir(os.path.join(out, "jobs")))


def _cmd(*args):
    return [sys.executable, "-m", "fastmem.study.cli", *args]


def _children(pid):
    """Every live descendant of ``pid`` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_with_workers(tmp_path, n_workers=2):
    """``fastmem study --quick --only critical`` (2 jobs, 2 workers) once its pool runs."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    out = str(tmp_path / "k")
    proc = subprocess.Popen(
        _cmd("study", "--quick", "--quiet", "--only", "critical", "--jobs", "2", "--out", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        workers = [k for k in kids if b"spawn_main" in _cmdline(k)]
        if len(workers) >= n_workers:
            time.sleep(0.5)  # the workers import and start their jobs
            assert proc.poll() is None, "the study finished before it could be killed"
            return proc, _children(proc.pid)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no pool workers appeared: {proc.communicate()[1].decode()[-2000:]}")


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _read_to_eof(proc, timeout):
    """stdout and stderr until EOF (every holder of the pipes gone), or fail at timeout."""
    box: dict[str, bytes] = {}
    t = threading.Thread(target=lambda: box.update(out=proc.stdout.read(), err=proc.stderr.read()))
    t.start()
    t.join(timeout)
    return (box.get("out"), box.get("err")) if not t.is_alive() else (None, None)


def _gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


# ----------------------------------------------------------- signals, kill -9
def test_kill_9_main_process_workers_exit(tmp_path):
    proc, kids = _start_with_workers(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    left = _gone(kids, 30)
    try:
        assert left == [], f"still running after the parent's kill -9: {left}"
        out, _ = _read_to_eof(proc, 10)
        assert out is not None, "the output pipe is still held open"
    finally:
        for p in left:
            os.kill(p, signal.SIGKILL)


def test_sigterm_main_process_like_ctrl_c(tmp_path):
    proc, kids = _start_with_workers(tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = _gone(kids, 30)
    try:
        assert left == [], f"still running after SIGTERM: {left}"
        _, err = _read_to_eof(proc, 10)
        assert err is not None, "the output pipe is still held open"
        err = err.decode()
        assert rc == 130, err
        assert "terminated (SIGTERM)" in err and "rerun the same command" in err, err
        assert "Traceback" not in err, err
    finally:
        for p in left:
            os.kill(p, signal.SIGKILL)
    out_dir = str(tmp_path / "k")
    assert not os.path.exists(os.path.join(out_dir, "results.json"))
    for f in _jobs(out_dir):  # any job saved is complete
        assert json.load(open(os.path.join(out_dir, "jobs", f)))["result"]


# ---------------------------------------------------------- damaged job files
_DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\xff garbage \x01",
    "list": lambda text: "[]",
    "empty result": lambda text: json.dumps({**json.loads(text), "result": {}}),
    "only result": lambda text: '{"result": {}}',
    "time_s null": lambda text: json.dumps({**json.loads(text), "time_s": None}),
    "seed a string": lambda text: json.dumps({**json.loads(text), "seed": "0"}),
    "result a list": lambda text: json.dumps({**json.loads(text), "result": [1]}),
    "other job's hash": lambda text: json.dumps({**json.loads(text), "config_hash": "0" * 64}),
}


@pytest.mark.parametrize("kind", list(_DAMAGE))
def test_damaged_job_file_recomputed(tmp_path, toy, capsys, kind):
    out = str(tmp_path / "o")
    args = ["study", "--quiet", "--seeds", "1", "--only", "toy", "--out", out]
    rc, _, err = _cli(args, capsys)
    assert rc == 0, err
    good = json.load(open(os.path.join(out, "results.json")))["sections"]["toy"]["data"]
    victim = os.path.join(out, "jobs", _jobs(out)[1])
    text = open(victim, encoding="latin-1").read()
    with open(victim, "w", encoding="latin-1") as f:
        f.write(_DAMAGE[kind](text))
    os.unlink(os.path.join(out, "results.json"))
    CALLS.clear()
    rc, stdout, err = _cli(args, capsys)
    assert rc == 0, err
    assert err.count("is damaged") == 1 and os.path.basename(victim) in err, err
    assert "Traceback" not in err
    assert len(CALLS) == 1 and "1 job(s) computed, 2 reused" in stdout
    assert json.load(open(victim))["result"]  # rewritten whole
    again = json.load(open(os.path.join(out, "results.json")))["sections"]["toy"]["data"]
    assert again == good
    CALLS.clear()
    rc, stdout, err = _cli(args, capsys)  # reported once: now all is well
    assert rc == 0 and CALLS == [] and "is damaged" not in err and "3 reused" in stdout


def test_report_on_malformed_results(tmp_path, toy, capsys):
    out = str(tmp_path / "o")
    rc, _, err = _cli(["study", "--quiet", "--seeds", "1", "--only", "toy", "--out", out], capsys)
    assert rc == 0, err
    path = os.path.join(out, "results.json")
    good = json.load(open(path))
    bad = {
        "a list": [],
        "sections a list": {**good, "sections": []},
        "time_s null": {
            **good,
            "sections": {"toy": {**good["sections"]["toy"], "time_s": None}},
        },
        "no config": {k: v for k, v in good.items() if k != "config"},
        "truncated": None,
    }
    for why, content in bad.items():
        with open(path, "w") as f:
            f.write(json.dumps(good)[:50] if content is None else json.dumps(content))
        rc, _, err = _cli(["report", out], capsys)
        _one_line_error(rc, err)
        assert "malformed" in err, (why, err)
    with open(path, "w") as f:
        json.dump(good, f)
    rc, stdout, err = _cli(["report", out], capsys)
    assert rc == 0 and stdout.endswith("index.html"), err


# ---------------------------------------------------------------- concurrency
_HOLD = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "testhost", "since": "now"}).encode())
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin
"""


def _hold_lock(out):
    os.makedirs(out, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, os.path.join(out, ".fastmem.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    return holder


def test_busy_out_names_the_holder_or_waits(tmp_path, toy, capsys):
    out = str(tmp_path / "o")
    holder = _hold_lock(out)
    try:
        rc, _, err = _cli(
            ["study", "--quiet", "--seeds", "1", "--only", "toy", "--out", out], capsys
        )
        _one_line_error(rc, err)
        assert f"in use by pid {holder.pid} on testhost" in err and "--wait" in err, err
        assert CALLS == [] and sorted(os.listdir(out)) == [".fastmem.lock"]
        # --wait: the run waits for the holder, then runs
        threading.Timer(1.0, holder.stdin.close).start()
        args = ["study", "--quiet", "--seeds", "1", "--only", "toy", "--out", out, "--wait"]
        rc, stdout, err = _cli(args, capsys)
        assert rc == 0, err
        assert f"in use by pid {holder.pid}" in err and "waiting" in err
        assert "3 job(s) computed" in stdout
    finally:
        holder.kill()
        holder.wait()


def test_two_concurrent_runs_compute_each_job_once(tmp_path):
    out = str(tmp_path / "c")
    args = _cmd("study", "--quick", "--quiet", "--only", "constructions", "--out", out)
    procs = [subprocess.Popen([*args, "--wait"], stdout=subprocess.PIPE, text=True)]
    time.sleep(0.5)
    procs.append(subprocess.Popen([*args, "--wait"], stdout=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    computed = sorted(int(o.split(" job(s) computed")[0].split()[-1]) for o in outs)
    assert computed == [0, 4], outs  # one run computed every job, the other reused them
    # without --wait, a run that finds the directory busy refuses it at once
    holder = _hold_lock(out)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2 and f"in use by pid {holder.pid}" in r.stderr, r.stderr


# ------------------------------------------------------------------ bad input
def test_read_only_out(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "MPLCONFIGDIR": str(home)}
    args = _cmd("study", "--quick", "--quiet", "--only", "constructions", "--out", str(out))
    if os.geteuid() == 0:  # root may write anywhere: run as a normal user
        if not os.path.exists("/usr/bin/setpriv"):
            pytest.skip("running as root without setpriv")
        home.chmod(0o777)
        tmp_path.chmod(0o755)
        as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        probe = subprocess.run(
            [*as_nobody, sys.executable, "-c", "import fastmem.study.cli"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        if probe.returncode != 0:  # e.g. the environment lies in a private (0700) folder
            pytest.skip(f"uid 65534 cannot import fastmem here: {probe.stderr.strip()[-200:]}")
        args = [*as_nobody, *args]
    else:
        out.chmod(0o555)
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    finally:
        out.chmod(0o755)
    err = r.stderr.strip()
    assert r.returncode == 2, err
    assert err.startswith("fastmem: error: --out") and "not writable" in err, err
    assert "\n" not in err
    assert os.listdir(out) == []


def test_bad_data_inputs(tmp_path, capsys):
    out = str(tmp_path / "o")
    empty = tmp_path / "empty.npz"
    np.savez(empty, X=np.zeros((0, 4)), y=np.zeros(0, dtype=int))
    cplx = tmp_path / "complex.npz"
    np.savez(cplx, X=np.ones((20, 3)) * (1 + 1j), y=np.arange(20) % 2)
    infy = tmp_path / "infy.npz"
    np.savez(infy, X=np.ones((20, 3)), y=np.r_[np.arange(19) % 2, np.inf])
    huge = tmp_path / "huge-images-idx3-ubyte"
    huge.write_bytes(b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3 + b"\x00" * 16)
    (tmp_path / "huge-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    for data, word in [
        (empty, "no samples"),
        (cplx, "must be real"),
        (infy, "NaN or Inf"),
        (huge, "header promises"),
        ("/dev/zero", "not a regular file"),
        (fifo, "not a regular file"),
    ]:
        args = ["study", "--quick", "--quiet", "--out", out, "--data", str(data)]
        rc, _, err = _cli(args, capsys)
        _one_line_error(rc, err)
        assert word in err, (data, err)
        assert not os.path.exists(out), data


def test_only_comma_refused(tmp_path, capsys):
    out = str(tmp_path / "o")
    for only in (",", " , ,", ""):
        rc, _, err = _cli(["study", "--quick", "--quiet", "--out", out, "--only", only], capsys)
        _one_line_error(rc, err)
        assert "names no section" in err and "fitting" in err
    assert not os.path.exists(out)
    with pytest.raises(runner.StudyInputError, match="no experiment"):
        runner.run_study(out, only=[])


def test_jobs_capped_at_the_cores(tmp_path, toy, capsys, monkeypatch):
    seen = {}
    real = runner.run_study

    def spy(*a, **kw):
        seen.update(kw)
        return real(*a, **kw)

    monkeypatch.setattr(runner, "run_study", spy)
    out = str(tmp_path / "o")
    args = ["study", "--quiet", "--seeds", "1", "--only", "toy", "--jobs", "99999", "--out", out]
    rc, _, err = _cli(args, capsys)
    cores = os.cpu_count() or 1
    assert rc == 0 and f"--jobs 99999 capped at {cores}" in err, err
    assert seen["jobs"] == cores


def test_unreachable_scheduler_checked_before_writing(tmp_path, toy, capsys):
    pytest.importorskip("distributed", reason="needs dask.distributed ([dask])")
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "o")
    for addr in (f"tcp://127.0.0.1:{port}", "nonsense://x"):
        rc, _, err = _cli(
            [
                "study",
                "--quiet",
                "--seeds",
                "1",
                "--only",
                "toy",
                "--out",
                out,
                "--scheduler",
                addr,
            ],
            capsys,
        )
        _one_line_error(rc, err)
        assert "--scheduler" in err and "cannot connect" in err, err
        assert not os.path.exists(out)


# --------------------------------------------------- what a finished run keeps
def test_only_keeps_other_finished_sections(tmp_path, capsys, monkeypatch):
    one, two = _toy("toyone", ("a", "b")), _toy("toytwo", ("c",))
    registry.register(one)
    registry.register(two)
    monkeypatch.setattr(runner, "builtin", lambda: [one, two])
    try:
        out = str(tmp_path / "o")
        for name in ("toyone", "toytwo", "toytwo"):
            rc, _, err = _cli(
                ["study", "--quiet", "--seeds", "1", "--only", name, "--out", out], capsys
            )
            assert rc == 0, err
            res = json.load(open(os.path.join(out, "results.json")))
            page = open(os.path.join(out, "index.html")).read()
        assert list(res["sections"]) == ["toyone", "toytwo"]
        assert 'id="toyone"' in page and 'id="toytwo"' in page
        # a kept section whose job file was since damaged is left out, never shown
        victim = next(f for f in _jobs(out) if f.startswith("toyone--a"))
        open(os.path.join(out, "jobs", victim), "w").write("{")
        rc, _, err = _cli(
            ["study", "--quiet", "--seeds", "1", "--only", "toytwo", "--out", out], capsys
        )
        assert rc == 0, err
        assert list(json.load(open(os.path.join(out, "results.json")))["sections"]) == ["toytwo"]
    finally:
        registry.unregister("toyone")
        registry.unregister("toytwo")


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_files_respect_the_umask(tmp_path, toy, mask):
    old = os.umask(mask)
    try:
        out = str(tmp_path / "o")
        res = runner.run_study(out, only=["toy"], quiet=True)
    finally:
        os.umask(old)
    assert res.exit_code == 0
    want = 0o666 & ~mask
    for name in ("results.json", "study.json", "index.html", *(f"jobs/{f}" for f in _jobs(out))):
        mode = stat.S_IMODE(os.stat(os.path.join(out, name)).st_mode)
        assert mode == want, (name, oct(mode), oct(want))


def test_training_and_analysis_times_apart(tmp_path, toy):
    out = str(tmp_path / "o")
    assert runner.run_study(out, only=["toy"], quiet=True, render_report=False).exit_code == 0
    sec = json.load(open(os.path.join(out, "results.json")))["sections"]["toy"]
    assert sec["train_s"] == 0.0  # the toy trains nothing
    assert sec["analysis_s"] == pytest.approx(sec["time_s"])
    assert set(sec["analysis_calls"]) == {"toy analysis"}
    assert 0 <= sec["analysis_calls"]["toy analysis"] <= sec["analysis_s"]
    for f in _jobs(out):
        rec = json.load(open(os.path.join(out, "jobs", f)))
        assert rec["train_s"] + rec["analysis_s"] == pytest.approx(rec["time_s"])


def test_training_time_recorded_by_train():
    common.timings().clear()
    X = np.random.default_rng(0).random((40, 4))
    y = np.arange(40) % 2
    common.train(X, y, hidden=(3,), epochs=2, seed=0, n_classes=2)
    assert common.timings()["train"] > 0


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        cli.main(["study", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "minutes" not in text
    assert "--seed SEED the study's random seed" in text
    for name in registry.builtin():
        assert name.name in text
    assert list(cli.SECTIONS) == [e.name for e in registry.builtin()]

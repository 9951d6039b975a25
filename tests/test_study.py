"""fastmem study: end to end (--quick), resume, dask, bad input, the page in Chromium."""

from __future__ import annotations

import glob
import html.parser
import json
import math
import os
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the study needs scikit-learn ([study] extra)")
pytest.importorskip("matplotlib", reason="the study needs matplotlib ([study] extra)")
pytest.importorskip("tqdm", reason="the study needs tqdm ([study] extra)")

from fastmem.study import cli, registry, report, run_study
from fastmem.study.registry import Experiment


@pytest.fixture(scope="session")
def quick(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("study") / "report")
    res = run_study(out, quick=True, jobs=2, quiet=True)
    assert res.exit_code == 0, res.failed
    with open(os.path.join(out, "results.json")) as f:
        return out, json.load(f)


class _Tables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None


def test_results_validate(quick):
    jsonschema = pytest.importorskip("jsonschema")
    _, results = quick
    jsonschema.validate(results, report.schema())
    assert results["failures"] == []
    expected = {n for n, e in registry.experiments().items() if e.available() is None}
    assert set(results["sections"]) == expected


def test_figures_are_images(quick):
    out, results = quick
    pngs = glob.glob(os.path.join(out, "figures", "*.png"))
    assert len(pngs) >= len(results["sections"])
    for png in pngs:
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        svg = png[:-4] + ".svg"
        with open(svg) as f:
            assert "<svg" in f.read(2000)
        assert os.path.getsize(png) > 1000 and os.path.getsize(svg) > 1000
    assert not glob.glob(os.path.join(out, "**", "*.part"), recursive=True)


def test_html_tables_equal_results(quick):
    out, results = quick
    p = _Tables()
    with open(os.path.join(out, "index.html")) as f:
        page = f.read()
    p.feed(page)
    tables = [t for s in results["sections"].values() for t in s["tables"]]
    assert len(p.tables) == len(tables) > 0
    n_numbers = 0
    for shown, stored in zip(p.tables, tables, strict=True):
        assert shown[0] == stored["columns"]
        assert len(shown) - 1 == len(stored["rows"])
        for row_shown, row in zip(shown[1:], stored["rows"], strict=True):
            for cell, v in zip(row_shown, row, strict=True):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    assert math.isclose(
                        float(cell.split(" ± ")[0]), v, rel_tol=1e-3, abs_tol=1e-300
                    ), (cell, v)
                    n_numbers += 1
                else:
                    assert cell == report.fmt(v)
    assert n_numbers > 50
    # every image is inlined (self-contained page), one per figure file
    assert len(p.imgs) == len(glob.glob(os.path.join(out, "figures", "*.png")))
    assert all(i["src"].startswith("data:image/png;base64,") for i in p.imgs)
    for name, sec in results["sections"].items():
        assert f'id="{name}"' in page and sec["reading"].split(" ")[0] in page


def test_critical_and_information_sections(quick):
    """Sections 6 and 7 run on this install (fastmem.critical / .information exist)."""
    out, results = quick
    with open(os.path.join(out, "index.html")) as f:
        page = f.read()
    for name, fig in (("critical", "critical"), ("information", "information_plane")):
        assert registry.get(name).available() is None
        assert name in results["sections"], f"section {name} vanished from the quick report"
        assert f'id="{name}"' in page
        assert os.path.getsize(os.path.join(out, "figures", fig + ".png")) > 1000
    crit = results["sections"]["critical"]["data"]
    for lab in ("real", "random"):
        r = crit[lab]
        assert len(r["csr_lower"]) == len(r["csr_upper"]) == len(r["epochs"]) >= 2
        for lo, up in zip(r["csr_lower"], r["csr_upper"], strict=True):
            assert 0.0 <= lo <= up <= 1.0
        assert 0.0 <= r["gini"] <= 1.0
        assert sum(r["sensitivity"]["counts"]) == r["n"]
    # random labels keep more critical samples than real ones (Arpit et al.)
    assert crit["random"]["csr_lower"][-1] > crit["real"]["csr_upper"][-1]
    reading = results["sections"]["critical"]["reading"]
    assert f"{crit['real']['csr_lower'][-1]:.3f}" in reading
    assert f"{crit['random']['gini']:.3f}" in reading
    runs = results["sections"]["information"]["data"]["runs"]
    assert {"tanh-real", "tanh-random", "relu-real", "relu-random"} <= set(runs)
    for r in runs.values():
        ixt, ity = np.asarray(r["i_xt"]), np.asarray(r["i_ty"])
        assert ixt.shape == ity.shape and ixt.shape[0] == len(r["epochs"]) and ixt.shape[1] >= 2
        assert (ixt >= 0).all() and (ixt <= np.log2(r["n"]) + 1e-9).all()
        assert (ity >= 0).all() and (ity <= r["h_y"] + 1e-9).all()
    reading = results["sections"]["information"]["reading"]
    assert f"{runs['relu-random']['i_ty'][-1][-2]:.2f} bits" in reading


def test_report_regenerates_from_results_alone(quick, tmp_path, capsys):
    out, _ = quick
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(os.path.join(out, "results.json"), copy / "results.json")
    assert cli.main(["report", str(copy)]) == 0
    with open(os.path.join(out, "index.html")) as a, open(copy / "index.html") as b:
        assert a.read() == b.read()
    assert sorted(os.listdir(copy / "figures")) == sorted(os.listdir(os.path.join(out, "figures")))


# ------------------------------------------------------------- resume, failures
CALLS: list[str] = []
RAISE_AT: dict[str, int] = {}


def _toy_run(params, seed):
    CALLS.append(params["name"])
    if RAISE_AT.get("n") is not None and len(CALLS) == RAISE_AT["n"]:
        raise KeyboardInterrupt  # the run is killed while this job runs
    if params["name"] == "bad":
        raise RuntimeError("this job fails on purpose")
    rng = np.random.default_rng([seed, len(params["name"])])
    return {"value": float(rng.random()), "name": params["name"]}


def _toy(names):
    return Experiment(
        name="toy",
        title="Toy",
        seed_document="001",
        references="none",
        jobs=lambda cfg: [(n, {"name": n}) for n in names],
        run=_toy_run,
        summarize=lambda res, cfg: {"values": {k: v["value"] for k, v in sorted(res.items())}},
        figures=lambda d: [],
        tables=lambda d: [
            {"title": "t", "columns": ["k", "v"], "rows": sorted(d["values"].items())}
        ],
        reading=lambda d: "toy experiment for the tests of the runner",
        setting=lambda cfg: "toy",
    )


@pytest.fixture
def toy():
    CALLS.clear()
    RAISE_AT.clear()
    registry.register(_toy(["a", "b", "c", "d", "e"]))
    yield
    registry.unregister("toy")


def _job_files(out):
    return sorted(os.listdir(os.path.join(out, "jobs")))


def test_resume_after_interrupt(tmp_path, toy):
    out = str(tmp_path / "r")
    RAISE_AT["n"] = 3  # the third job is killed
    res = run_study(out, only=["toy"], quiet=True, render_report=False)
    assert res.interrupted and res.exit_code == 130
    assert len(res.computed) == 2 and len(res.unfinished) == 3
    assert len(_job_files(out)) == 2
    assert not os.path.exists(os.path.join(out, "results.json"))
    leftovers = [f for f in os.listdir(os.path.join(out, "jobs")) if not f.endswith(".json")]
    assert leftovers == []
    for f in _job_files(out):
        json.load(open(os.path.join(out, "jobs", f)))  # complete JSON, never partial
    RAISE_AT.clear()
    CALLS.clear()
    res = run_study(out, only=["toy"], quiet=True, render_report=False)
    assert res.exit_code == 0 and len(res.skipped) == 2 and len(res.computed) == 3
    assert sorted(CALLS) == sorted(set("abcde") - {k.split("/")[1] for k in res.skipped})
    resumed = json.load(open(os.path.join(out, "results.json")))["sections"]["toy"]["data"]
    fresh_dir = str(tmp_path / "fresh")
    run_study(fresh_dir, only=["toy"], quiet=True, render_report=False)
    fresh = json.load(open(os.path.join(fresh_dir, "results.json")))["sections"]["toy"]["data"]
    assert resumed == fresh
    CALLS.clear()
    res = run_study(out, only=["toy"], quiet=True, render_report=False)
    assert CALLS == [] and len(res.skipped) == 5
    res = run_study(out, only=["toy"], quiet=True, render_report=False, force=True)
    assert sorted(CALLS) == list("abcde")


def test_failing_job_reported_others_go_on(tmp_path):
    CALLS.clear()
    RAISE_AT.clear()
    registry.register(_toy(["a", "bad", "c"]))
    try:
        out = str(tmp_path / "f")
        res = run_study(out, only=["toy", "svd"], quick=True, quiet=True)
    finally:
        registry.unregister("toy")
    assert res.exit_code == 1 and list(res.failed) == ["toy/bad/seed0"]
    assert "this job fails on purpose" in res.failed["toy/bad/seed0"]
    assert sorted(CALLS) == ["a", "bad", "c"]
    results = json.load(open(os.path.join(out, "results.json")))
    assert "toy" not in results["sections"] and "svd" in results["sections"]
    assert results["failures"][0]["job"] == "toy/bad/seed0"
    assert "Failed jobs" in open(os.path.join(out, "index.html")).read()


def test_seeds_one_job_each_mean_and_sd(tmp_path, toy):
    """--seeds N: one job per setting and seed; cells are means with sd; resumable."""
    out = str(tmp_path / "s")
    res = run_study(out, only=["toy"], quiet=True, seeds=3)
    assert res.exit_code == 0 and len(res.computed) == 15
    assert sorted(CALLS) == sorted(list("abcde") * 3)
    results = json.load(open(os.path.join(out, "results.json")))
    sec = results["sections"]["toy"]
    assert sec["seeds"] == [0, 1, 2] and results["config"]["seeds"] == 3
    # the toy's values, per seed, from its own formula
    vals = {
        n: [float(np.random.default_rng([s, len(n)]).random()) for s in range(3)] for n in "abcde"
    }
    for row, sd in zip(sec["tables"][0]["rows"], sec["tables"][0]["sd"], strict=True):
        v = vals[row[0]]
        assert math.isclose(row[1], float(np.mean(v)), rel_tol=1e-12)
        assert math.isclose(sd[1], float(np.std(v, ddof=1)), rel_tol=1e-9)
    assert sec["data"]["n_seeds"] == 3
    page = open(os.path.join(out, "index.html")).read()
    assert " ± " in page and "3 seeds (0-2), mean ± sd" in page
    CALLS.clear()
    res = run_study(out, only=["toy"], quiet=True, seeds=4)  # one more seed: 5 new jobs
    assert len(res.skipped) == 15 and len(res.computed) == 5
    with pytest.raises(Exception, match="--seeds"):
        run_study(str(tmp_path / "z"), only=["toy"], quiet=True, seeds=0)


def test_cli_seed_defaults():
    assert cli.default_seeds(True) == 1 and cli.default_seeds(False) == 3
    sub = cli._parser()._subparsers._group_actions[0].choices["study"]
    assert "--seeds" in sub.format_help()


def test_papers_tables_present(quick):
    _, results = quick
    for name, sec in results["sections"].items():
        papers = [t for t in sec["tables"] if t["title"] == "The papers' values beside ours"]
        assert len(papers) == 1, name
        for row in papers[0]["rows"]:
            assert row[4] in ("agree", "differ", "not comparable") and row[5], (name, row)


# ------------------------------------------------------------------------ dask
def _close(a, b):
    # abs_tol: rounding-level numbers (the float64 residual of a construction, ~1e-9)
    # depend on how many threads the BLAS used, which differs between a pool worker and a
    # dask thread; every other number of the report is far above 1e-8.
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _close(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-8), (a, b)
    else:
        assert a == b


def test_dask_equals_local_pool(quick, tmp_path):
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed ([dask])")
    _, local = quick
    only = ["svd", "constructions"]
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        out = str(tmp_path / "d")
        res = run_study(out, only=only, quick=True, quiet=True, scheduler=cluster.scheduler_address)
    assert res.exit_code == 0, res.failed
    remote = json.load(open(os.path.join(out, "results.json")))
    for name in only:
        _close(remote["sections"][name]["data"], local["sections"][name]["data"])
        _close(remote["sections"][name]["tables"], local["sections"][name]["tables"])


# ------------------------------------------------------------------- bad input
def _cli(args, capsys):
    rc = cli.main(args)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_bad_input(tmp_path, capsys):
    out = str(tmp_path / "o")
    cases = []
    missing = str(tmp_path / "missing.npz")
    cases.append(["--data", missing])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    cases.append(["--data", str(bad)])
    shapes = tmp_path / "shapes.npz"
    np.savez(shapes, X=np.zeros((30, 4)), y=np.zeros(29))
    cases.append(["--data", str(shapes)])
    idx = tmp_path / "x-images-idx3-ubyte"
    idx.write_bytes(b"\x00\x00\x08\x03\x00")
    cases.append(["--data", str(idx)])
    cases.append(["--only", "fitting,nonsense"])
    for extra in cases:
        rc, err = _cli(["study", "--quick", "--quiet", "--out", out, *extra], capsys)
        assert rc == 2, extra
        assert err.startswith("fastmem: error: ") and "\n" not in err, err
        assert not os.path.exists(out), extra  # nothing written
    # a non-empty directory that holds no study, and another study's directory
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    rc, err = _cli(["study", "--quick", "--quiet", "--out", str(foreign), "--only", "svd"], capsys)
    assert rc == 2 and "not empty" in err and "\n" not in err
    assert os.listdir(foreign) == ["keep.txt"] and (foreign / "keep.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    marker = {"identity": {"data": "moons", "quick": True, "seed": 7, "data_fingerprint": "moons"}}
    (other / "study.json").write_text(json.dumps(marker))
    (other / "results.json").write_text("{}")
    rc, err = _cli(["study", "--quick", "--quiet", "--out", str(other), "--only", "svd"], capsys)
    assert rc == 2 and "another study" in err
    assert (other / "results.json").read_text() == "{}"
    rc, err = _cli(["report", str(tmp_path / "nowhere")], capsys)
    assert rc == 2 and "not found" in err


# -------------------------------------------------------------------- chromium
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const _ce = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); _ce(...a); };
window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  const p = document.createElement('pre'); p.id = 'probe';
  p.textContent = 'PROBE ' + JSON.stringify({images: document.images.length, broken: bad,
                                             errors: window.__errors});
  document.body.appendChild(p);
});
</script>"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_page_in_headless_chromium(quick, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    out, _ = quick
    page = open(os.path.join(out, "index.html")).read().replace("<head>", "<head>" + _PROBE, 1)
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=10000",
        "--hide-scrollbars",
    ]
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120
    )
    line = [x for x in dom.stdout.splitlines() if "PROBE {" in x]
    assert line, dom.stderr[-2000:]
    info = json.loads(line[0].split("PROBE ", 1)[1].split("<")[0].replace("&quot;", '"'))
    assert info["images"] > 0 and info["broken"] == 0 and info["errors"] == []
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            exe,
            *flags,
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            (tmp_path / "probe.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.read_bytes()[:4] == b"\x89PNG"


def _jitter(tree, f):
    if isinstance(tree, dict):
        return {k: _jitter(v, f) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_jitter(v, f) for v in tree]
    if isinstance(tree, float):
        return tree * f
    return tree


def test_sections_render_with_spread(quick):
    """Every section's figures, reading and papers' table work on data merged over seeds."""
    from matplotlib.figure import Figure

    from fastmem.study import spread

    _, results = quick
    for name, sec in results["sections"].items():
        exp = registry.get(name)
        d = {k: v for k, v in sec["data"].items() if k not in ("spread", "n_seeds", "seeds")}
        merged = spread.merge([d, _jitter(d, 1.01), _jitter(d, 0.99)])
        assert merged["n_seeds"] == 3
        figs = exp.figures(merged)
        assert figs and all(isinstance(f[1], Figure) for f in figs)
        assert all(len(f) == 3 and len(f[2]) > 40 for f in figs), name  # a caption
        text = exp.reading(merged)
        assert "over 3 seeds" in text, name
        rows = exp.papers(merged)
        assert rows and all(r[4] in spread.VERDICTS for r in rows)

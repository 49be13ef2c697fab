"""``aiecg report`` and ``aiecg explain`` end to end on a tiny synthetic run: the page opens offline, every image
loads in a real (headless) Chromium without a console error, and the tables hold the run's numbers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aiecg.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reported(synth_cohort, ilvm_run, tmp_path_factory):
    """explain (6 participants) and report on the session's trained run (tests/conftest.py: synth 60 -> prepare ->
    train 2 epochs); the folder holding ``explain/`` and ``report/``."""
    pytest.importorskip("captum")
    root = tmp_path_factory.mktemp("report")
    assert main(["-q", "explain", "--bundle", str(ilvm_run / "model.aiecg"), "--cohort",
                 str(synth_cohort / "cohort.yaml"), "--out", str(root / "explain"), "--max-participants", "6",
                 "--steps", "8", "--no-figures"]) == 0
    assert main(["-q", "report", str(ilvm_run), str(root / "explain"), "--out", str(root / "report")]) == 0
    return root


class References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.refs.append((tag, value))


def test_every_reference_is_a_local_file_that_decodes(reported):
    import defusedxml.ElementTree as ElementTree
    from PIL import Image

    out = (reported / "report").resolve()
    page = (out / "index.html").read_text()
    parser = References()
    parser.feed(page)
    images = [ref for tag, ref in parser.refs if tag == "img"]
    assert len(images) >= 12  # agreement, ROC, PR, forest, subgroups, calibration, LR, training, beats, explanations
    assert "<script" not in page and "http://" not in page and "https://" not in page
    for _, ref in parser.refs:
        url = urlparse(ref)
        assert not url.scheme and not url.netloc and not ref.startswith("/"), ref
        target = (out / unquote(url.path)).resolve()
        assert target.is_relative_to(out) and target.is_file(), ref
        if target.suffix == ".png":
            with Image.open(target) as image:
                image.verify()
        elif target.suffix == ".svg":
            assert ElementTree.parse(target).getroot().tag.endswith("svg")
        elif target.suffix == ".csv":
            assert len(pd.read_csv(target)) > 0
    for image in images:  # every figure also as SVG for a manuscript
        assert (out / image).with_suffix(".svg").is_file()


def test_tables_hold_the_runs_numbers(reported, ilvm_run, synth_cohort):
    run = ilvm_run
    tables = reported / "report" / "tables"
    flow = pd.read_csv(next(tables.glob("flow_*.csv")))
    counts = dict(zip(flow["step"].fillna(""), flow["participants"]))
    splits = json.loads((run / "splits.json").read_text())
    assert counts["rows in the cohort table"] == 60
    assert counts["usable participants"] == sum(len(v) for v in splits.values())
    assert counts["test split"] == len(splits["test"])
    excluded = len(pd.read_csv(run / "exclusions.csv"))
    assert counts["excluded by the cohort checks"] + counts["excluded: ECG missing or failed QC"] == excluded

    # the characteristics' Welch p-value for age is scipy's on the run's participants
    cohort = pd.read_parquet(synth_cohort / "cohort.parquet").astype({"eid": str}).set_index("eid")
    used = cohort.loc[[i for v in splits.values() for i in v]]
    expected = stats.ttest_ind(used.loc[used["lvh"] == 1, "age"], used.loc[used["lvh"] == 0, "age"],
                               equal_var=False).pvalue
    characteristics = pd.read_csv(next(tables.glob("characteristics_0_*.csv")), dtype=str)
    age = characteristics.set_index("variable").loc["age (years)"]
    assert age["p"] == ("<0.001" if expected < 0.001 else f"{expected:.3f}")  # the journal convention
    lvh_age = used.loc[used["lvh"] == 1, "age"]
    assert age["LVH"] == f"{lvh_age.mean():.1f} ({lvh_age.std():.1f})"  # mean (SD), as Welch's test compares

    # Table 1 by split and overall, with missing counts
    by_split = pd.read_csv(next(tables.glob("characteristics_by_split_0_*.csv")), dtype=str).set_index("variable")
    assert [by_split.loc["n", f"{k} split"] for k in ("train", "val", "test")] == [str(len(splits[k]))
                                                                        for k in ("train", "val", "test")]
    assert by_split.loc["n", "overall"] == str(len(used)) and by_split.loc["age (years)", "missing"] == "0 / 0 / 0 / 0"

    # the TRIPOD+AI checklist: every item is filled from the runs or open, with a link to a section of the page
    checklist = pd.read_csv(tables / "tripod_ai_checklist.csv", dtype=str, keep_default_na=False)
    page = (reported / "report" / "index.html").read_text()
    assert 'id="tripod"' in page and len(checklist) == 39
    for row in checklist.itertuples():
        assert row.status.startswith(("filled", "partly", "open")), row
        assert (row.where == "") == row.status.startswith("open"), row
        if row.where:
            assert f'id="{row.where[1:]}"' in page, row.where  # the link lands on a section of this page
    assert "synthetic participants generated by aiecg synth" in page
    assert (reported / "report" / "figures" / "flow_fcn.png").is_file()  # the STARD-style flow diagram
    assert (reported / "report" / "figures" / "score_distributions.png").is_file()
    assert "sensitivity at each criterion's specificity" in page

    # one interaction test per subgrouping of each subgroup panel, as the evaluation saved it
    from aiecg.report.tables import format_p

    saved_tests = json.loads((run / "metrics.json").read_text())["subgroups"]
    interactions = pd.read_csv(next(tables.glob("subgroup_interactions_0_*.csv")), dtype=str, keep_default_na=False)
    assert len(interactions) == sum(len(block["subgroups"]) for block in saved_tests.values())
    sex = interactions.set_index(["output", "subgroups"]).loc[("ilvm", "sex")]
    assert sex["p"] == format_p(saved_tests["ilvm"]["interaction"]["is_m"]["p"]) and "Kruskal" in sex["test"]
    assert "Does performance differ between subgroups?" in page

    comparison = pd.read_csv(next(tables.glob("comparison_0_*.csv")))
    saved = pd.read_csv(run / "comparison.csv")
    assert list(comparison["score"]) == list(saved["name"])
    assert (comparison["DeLong p"] == "reference").sum() == 1


def test_explanations_are_complete_and_rendered(reported, ilvm_run):
    summary = json.loads((reported / "explain" / "explain.json").read_text())
    data = np.load(reported / "explain" / "attributions.npz")
    total = data["ecg_attr"].sum(axis=(1, 2)) + data["meta_attr"].sum(axis=1)
    gap = total - (data["outputs"] - data["baseline_outputs"])
    np.testing.assert_allclose(gap, data["delta"], atol=1e-4)
    assert summary["convergence_delta"]["max_abs"] == pytest.approx(np.abs(data["delta"]).max(), rel=1e-5)
    assert summary["n"] == 6 and data["ecg_attr"].shape == data["ecg"].shape
    baseline = summary["baselines"]["ecg"]  # the mean beat per sex of the training split, not the zero line
    assert baseline["kind"] == "mean median beat per sex" and baseline["n_women"] + baseline["n_men"] > 6
    assert data["ecg_baseline"].shape == (2, *data["ecg"].shape[1:]) and np.abs(data["ecg_baseline"]).max() > 0.1
    waves = pd.read_csv(reported / "explain" / "waves.csv")
    overall = waves[waves["lead"] == "all"]
    assert overall["share"].sum() == pytest.approx(1.0) and set(overall["wave"]) == {"P", "QRS", "ST-T", "outside"}
    assert summary["waves"]["generator_truth"] and overall["truth_share"].notna().sum() == 3  # a synthetic cohort
    assert overall["random_share"].notna().all()
    # each explained participant's prediction (THE prediction loop) and CMR value, as the run's results hold them
    results = pd.read_csv(ilvm_run / "results.csv", dtype={"eid": str}).set_index("eid").loc[data["ids"]]
    np.testing.assert_allclose(data["predicted"], results["ilvm_pred"], rtol=1e-4)
    np.testing.assert_allclose(data["true"], results["ilvm_true"], rtol=1e-5)
    assert summary["target"]["stem"] == "ilvm"
    page = (reported / "report" / "index.html").read_text()
    assert 'id="explain"' in page and "Class activation maps (FCN), highest fifth of predictions" in page
    assert "prediction and the CMR reference value" in page  # the beat plots' titles give both
    assert page.count('src="figures/explain_cam_') == 2  # the map on the 12-lead beat of both fifths
    assert "Attribution by wave and lead" in page and "Where in the beat the model looks (signed)" in page


def test_report_of_a_folder_without_results_is_one_clear_error(tmp_path, capsys):
    assert main(["-q", "report", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "holds no metrics.json" in capsys.readouterr().err


def test_the_report_code_only_renders(ilvm_run, tmp_path):
    """aiecg.report reads the run's files and draws: it imports neither torch, the bundle, the store, the
    training code nor any of evaluate's code (what it draws beyond the files, workflows/report.py prepares)."""
    code = ("import sys; import aiecg.report.html; "
            "from aiecg.report import figures, runs, tables, tripod; "
            f"run = runs.load_run({str(ilvm_run)!r}); tables.model_card(run); "
            "assert figures.criteria_scores(run); "
            f"aiecg.report.html.render_report([run], {str(tmp_path / 'page')!r}); "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('aiecg.train', 'aiecg.bundle', "
            "'aiecg.data.store', 'aiecg.evaluate'))); print(bad); "
            "sys.exit(1 if bad else 0)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "page" / "index.html").is_file()


# --- a real browser ----------------------------------------------------------------------------------------------

def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, url: str):
        import websocket

        # No Origin header: Chromium 111+ refuses a DevTools websocket whose Origin is not allowed (403), and which
        # origins it allows changed between versions; a client without an Origin is accepted by all of them.
        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.socket.recv()))
        raise TimeoutError(method)


def render_in_chromium(browser: str, page: Path, profile: Path) -> tuple[list[dict], list[dict], bytes]:
    """Open ``page`` in headless Chromium; returns its images' load state, the console/network error events and a
    PNG screenshot."""
    import base64

    process = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--remote-allow-origins=*", "--window-size=1280,2000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ws_url = None
        deadline = time.monotonic() + 60
        while ws_url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"chromium exited with {process.returncode} before listening")
            if "DevTools listening on" in line:
                ws_url = line.split("DevTools listening on", 1)[1].strip()
        assert ws_url, "chromium never printed its DevTools address"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep its pipe drained
        port = urlparse(ws_url).port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            page_url = next(t["webSocketDebuggerUrl"] for t in json.load(response) if t["type"] == "page")
        tools = DevTools(page_url)
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=page.resolve().as_uri())
        tools.wait_for("Page.loadEventFired")
        images = json.loads(tools.call("Runtime.evaluate", returnByValue=True, expression=(
            "JSON.stringify(Array.from(document.images).map(i => "
            "({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})))"))["result"]["value"])
        shot = base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"])
        tools.socket.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    errors = [e for e in tools.events if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error")
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    return images, errors, shot


def test_page_renders_in_headless_chromium(reported, tmp_path):
    browser = chromium_binary()
    if browser is None:
        pytest.skip("no Chromium on this machine (CI installs the Debian package 'chromium' in .ci/run)")
    pytest.importorskip("websocket", reason="websocket-client (the 'dev' extra) drives the browser")
    import io

    from PIL import Image

    images, errors, shot = render_in_chromium(browser, reported / "report" / "index.html", tmp_path / "profile")
    (tmp_path / "screenshot.png").write_bytes(shot)
    with Image.open(io.BytesIO(shot)) as image:
        low, high = image.convert("L").getextrema()
        assert image.size[0] >= 1000 and high - low > 100  # not a blank page
    assert len(images) >= 12
    broken = [i["src"] for i in images if not i["complete"] or i["width"] == 0]
    assert not broken, f"images that did not load: {broken}"
    assert not errors, errors


def test_panels_that_need_missing_files_are_skipped_with_a_note(ilvm_run, tmp_path):
    from aiecg.report import figures
    from aiecg.report.runs import load_run

    copy = tmp_path / "run"
    shutil.copytree(ilvm_run, copy)
    for name in ("epochs.csv", "comparison.csv", "model.aiecg"):
        (copy / name).unlink()
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["cohort"] = str(tmp_path / "moved" / "cohort.yaml")  # the cohort was moved away
    metrics["bundle"] = str(tmp_path / "moved" / "model.aiecg")
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (copy / "config.yaml").unlink()
    run = load_run(copy)
    assert run.cohort is None and run.store_path is None and run.bundle is None and run.bundle_path is None
    assert any("cohort" in note for note in run.notes)
    training = figures.training_curves([run])
    assert training.figure is None and training.notes == ["no run saved epochs.csv"]
    assert figures.median_beats([run]) == []
    forest = figures.forest_auroc([run])  # falls back on the AUROC in metrics.json
    assert forest.figure is not None
    roc = figures.roc_curves([run])
    assert roc.figure is not None and roc.notes == []  # no comparison rows: nothing claimed about baselines
    assert figures.predicted_vs_true([run]).figure is not None


def test_explain_writes_the_randomisation_check_and_the_report_shows_it(reported):
    check = json.loads((reported / "explain" / "explain.json").read_text())["randomisation_check"]
    assert check["n"] == 6 and check["stages"][0] == "head" and check["stages"][-1].endswith("(all layers)")
    assert len(check["stages"]) == 4  # the FCN's head and three blocks
    for name in ("integrated gradients (signed)", "|integrated gradients|", "class activation map",
                 "wave contributions (signed, per lead and wave)"):
        m = check["maps"][name]
        assert len(m["median"]) == 4 and all(-1 <= v <= 1 for v in m["median"])
        assert m["passes"] == (abs(m["median"][-1]) < check["max_correlation"])
    page = (reported / "report" / "index.html").read_text()
    assert "Sanity check of the maps (model randomisation)" in page
    assert (reported / "report" / "figures" / "explain_sanity_explanations__explain_.png").is_file()
    assert check["drawn"] == ["integrated gradients (signed)", "class activation map",
                              "wave contributions (signed, per lead and wave)"]
    failing = [name for name, m in check["maps"].items() if not m["passes"]]
    drawn_failing = [name for name in failing if name in check["drawn"]]  # a figure that draws it warns
    assert page.count("failed the model-randomisation check") >= (1 if drawn_failing else 0)
    assert page.count("no figure of this report draws it") == len(set(failing) - set(drawn_failing))


def test_the_evaluation_saves_decision_curves_and_the_report_draws_them(reported, ilvm_run):
    run = ilvm_run  # the session's trained run (tests/conftest.py), which the report rendered
    curves = pd.read_csv(run / "decision_curve.csv")
    results = pd.read_csv(run / "results.csv")
    everyone = curves[curves["kind"] == "treat all"].set_index("threshold")["net_benefit"]
    prevalence = results["lvh_true"].mean()
    pt = everyone.index.to_numpy()
    np.testing.assert_allclose(everyone.to_numpy(), prevalence - (1 - prevalence) * pt / (1 - pt), rtol=1e-5, atol=1e-6)
    model = curves[curves["kind"] == "model"]
    column = json.loads((run / "metrics.json").read_text())["comparison"]["decision_curve"]["score"]
    p, y = results[column].to_numpy(), results["lvh_true"].to_numpy()
    at = model.set_index("threshold")["net_benefit"]
    for t in (0.1, 0.3, 0.5):
        treated = p >= t
        expected = (np.sum(treated & (y == 1)) - np.sum(treated & (y == 0)) * t / (1 - t)) / len(y)
        assert at.loc[t] == pytest.approx(expected, abs=1e-5)
    assert set(curves["kind"]) >= {"model", "treat all", "treat none", "criterion"}
    page = (reported / "report" / "index.html").read_text()
    assert 'id="decision_curves"' in page and "figures/decision_curves.png" in page


def test_a_run_without_the_saved_curves_gets_the_same_ones_from_the_report(ilvm_run, tmp_path):
    """The report's fallback for a run evaluated before a file existed uses the evaluation's own functions
    (evaluate/curves.roc_table, pr_table, pr_bands; evaluate/reclassification): what it computes is what the
    evaluation saved."""
    from aiecg.report.runs import load_run
    from aiecg.workflows.report import complete_inputs

    copy = tmp_path / "run"
    shutil.copytree(ilvm_run, copy)
    missing = ("roc_curves.csv", "roc_band.csv", "pr_curves.csv", "pr_band.csv", "reclassification.csv")
    for name in missing:
        (copy / name).unlink()
    run = load_run(copy)
    assert all(getattr(run, name.split(".")[0]) is None for name in missing)
    complete_inputs(run)
    for name in missing:
        saved = pd.read_csv(ilvm_run / name)
        made = getattr(run, name.split(".")[0])[list(saved.columns)]
        pd.testing.assert_frame_equal(made.reset_index(drop=True), saved, check_dtype=False, rtol=1e-5)

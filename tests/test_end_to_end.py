"""The real CLI, end to end: a small study through Flower's simulation engine into a complete report."""

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from leftovers import processes_left_in
from study.cli import parse
from study.models import build_model
from study.report.runs_index import write_runs_index
from study.results import COLUMNS, PREDICTION_COLUMNS, TIMING_METRICS

pytestmark = pytest.mark.slow

FIGURES = ["learning_curves", "privacy_utility", "privacy_audit", "per_site", "roc", "calibration", "communication",
           "data_split"]
SECTIONS = ["headline", "comparison", "results", *FIGURES, "privacy", "audit", "reproduce"]


CHROMIUM = "chromium"
SMALL_STUDY = ["--seeds", "0", "--rounds", "3", "--local-epochs", "1", "--epsilon", "2"]


def _run_cli(reports) -> subprocess.CompletedProcess:
    """The CLI, started in the reports folder so that every process it starts (Ray's among them) is found there."""
    done = subprocess.run([sys.executable, "-m", "study.run", *SMALL_STUDY, "--output", str(reports)],
                          capture_output=True, text=True, timeout=600, cwd=reports)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not processes_left_in(reports), "the CLI left processes running"
    return done


def _run_folders(reports):
    return [path for path in reports.iterdir() if path.is_dir() and not path.name.startswith(".")]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    reports = tmp_path_factory.mktemp("reports")
    return reports, _run_cli(reports)


def test_prints_the_report_path_and_writes_one_complete_run_folder(small_run):
    reports, done = small_run
    (run_dir,) = _run_folders(reports)
    assert done.stdout.strip().splitlines()[-1] == str(run_dir / "index.html")
    assert not run_dir.name.startswith(".")
    for name in ["index.html", "results.csv", "results.json", "split.csv", "predictions.csv", "config.toml"]:
        assert (run_dir / name).stat().st_size > 0
    runs_index = (reports / "index.html").read_text()
    assert f'href="{run_dir.name}/index.html"' in runs_index
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == sorted(f"{name}.{kind}" for name in FIGURES
                                                                            for kind in ("png", "svg"))


def test_report_has_every_section_and_embedded_figures_only(small_run):
    reports, _ = small_run
    html = _run_folders(reports)[0].joinpath("index.html").read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html
    images = re.findall(r'<img src="([^"]{0,40})', html)
    assert len(images) == len(FIGURES) and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in html.replace("http-equiv", "") and "https://" not in html
    assert "Content-Security-Policy" in html


def test_results_table_is_long_format_with_every_arm(small_run):
    reports, _ = small_run
    run_dir = _run_folders(reports)[0]
    table = pd.read_csv(run_dir / "results.csv")
    assert list(table.columns) == COLUMNS
    assert set(table["arm"]) == {"centralized", "local", "federated", "centralized-dp", "federated-dp",
                                 "centralized-iid", "federated-iid", "federated-scaling"}
    assert set(table["model"]) == {"lr", "mlp"}
    assert set(table.loc[table["arm"] == "federated", "round"].dropna()) == {1, 2, 3}
    assert table.loc[table["metric"] == "epsilon", "value"].between(1.6, 2.0).all()


def test_metadata_reproduces_the_run(small_run):
    reports, _ = small_run
    metadata = json.loads(_run_folders(reports)[0].joinpath("results.json").read_text())
    assert metadata["config"]["rounds"] == 3 and metadata["config"]["epsilons"] == [2.0]
    assert {"flwr", "torch", "opacus", "python"} <= set(metadata["versions"])
    argv = metadata["command"].split()[3:]
    config, _ = parse(argv)
    assert config.to_dict() == metadata["config"]


def test_identical_rerun_reuses_every_result(small_run, tmp_path):
    reports, _ = small_run
    shutil.copytree(reports / ".cache", tmp_path / ".cache")
    done = _run_cli(tmp_path)
    assert "0 results trained, 17 reused" in done.stderr  # 14 of the arms and 3 of the scaling sweep
    assert "Flower simulation" not in done.stderr
    (first,), (again,) = _run_folders(reports), _run_folders(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(first / "results.csv"), pd.read_csv(again / "results.csv"))


def test_same_config_and_seed_give_identical_numbers(small_run, tmp_path):
    """A second full training run (no cache) reproduces every number exactly, federated arms included."""
    reports, _ = small_run
    done = subprocess.run([sys.executable, "-m", "study.run", *SMALL_STUDY, "--no-cache", "--quiet",
                           "--output", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (first,), (again,) = _run_folders(reports), _run_folders(tmp_path)
    pd.testing.assert_frame_equal(_untimed(first), _untimed(again), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(first / "predictions.csv"), pd.read_csv(again / "predictions.csv"),
                                  check_exact=True)


def _untimed(run_dir):
    """Every result except wall-clock timings, which are measured, not reproducible."""
    table = pd.read_csv(run_dir / "results.csv")
    return table[~table["metric"].isin(TIMING_METRICS)].reset_index(drop=True)


def test_rerender_rewrites_the_report_from_saved_results(small_run):
    reports, _ = small_run
    run_dir = _run_folders(reports)[0]
    before = (run_dir / "index.html").read_text()
    done = subprocess.run([sys.executable, "-m", "study.report", str(run_dir)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == str(run_dir / "index.html")
    assert (run_dir / "index.html").read_text() == before


def test_run_folders_from_before_the_data_summary_still_render_and_stay_indexed(small_run, tmp_path):
    reports, _ = small_run
    run_dir = tmp_path / "reports" / "20260101-000000-older"
    shutil.copytree(_run_folders(reports)[0], run_dir)
    metadata = json.loads((run_dir / "results.json").read_text())
    del metadata["data"]
    (run_dir / "results.json").write_text(json.dumps(metadata))
    done = subprocess.run([sys.executable, "-m", "study.report", str(run_dir)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    write_runs_index(tmp_path / "reports")
    assert run_dir.name in (tmp_path / "reports" / "index.html").read_text()


def test_rerender_of_a_damaged_run_folder_fails_in_one_line(tmp_path):
    for name in ("results.csv", "split.csv"):
        (tmp_path / name).write_text("")
    (tmp_path / "results.json").write_text("{bad")
    done = subprocess.run([sys.executable, "-m", "study.report", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_report_warns_when_delta_is_not_below_one_over_the_smallest_site(small_run, tmp_path):
    reports, _ = small_run
    run_dir = tmp_path / "run"
    shutil.copytree(_run_folders(reports)[0], run_dir)
    assert "is not below 1/n" not in (run_dir / "index.html").read_text()
    metadata = json.loads((run_dir / "results.json").read_text())
    metadata["config"]["delta"] = 0.5
    (run_dir / "results.json").write_text(json.dumps(metadata))
    done = subprocess.run([sys.executable, "-m", "study.report", str(run_dir)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "is not below 1/n for the smallest site" in " ".join((run_dir / "index.html").read_text().split())


def test_measured_communication_and_predictions_are_exported(small_run):
    reports, _ = small_run
    run_dir = _run_folders(reports)[0]
    table = pd.read_csv(run_dir / "results.csv")
    sent = table[(table["arm"] == "federated") & (table["metric"] == "bytes_sent")]
    assert len(sent) == 2 * 3  # two models x three rounds
    lr = build_model("lr", 30, hidden=1, seed=0)
    parameter_bytes = sum(p.numel() * 4 for p in lr.parameters())
    lr_sent = sent[sent["model"] == "lr"]["value"]
    assert (lr_sent >= 5 * parameter_bytes).all() and (lr_sent < 5 * (parameter_bytes + 1000)).all()
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert list(predictions.columns) == PREDICTION_COLUMNS
    split = pd.read_csv(run_dir / "split.csv")
    test_rows = split[split["part"] == "test"]["rows"].sum()
    assert len(predictions[(predictions["arm"] == "federated") & (predictions["model"] == "lr")]) == test_rows
    html = " ".join((run_dir / "index.html").read_text().split())
    assert "bytes of raw patient data leave the sites" in html.replace("kB of raw", "bytes of raw")


def test_report_in_a_real_browser_loads_offline_without_errors(small_run):
    """Headless Chromium (Debian's `chromium`, installed by .ci/run): no console error, no request beyond the file
    itself, every figure decodes, every section is there. Screenshots land in test-artifacts/ to look at."""
    from playwright.sync_api import sync_playwright

    reports, _ = small_run
    report = _run_folders(reports)[0] / "index.html"
    artifacts = Path(__file__).parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    assert shutil.which(CHROMIUM), f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            problems, requests = [], []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            widths = page.eval_on_selector_all("img", "images => images.map(image => image.complete ? image.naturalWidth : 0)")
            present = page.evaluate("ids => ids.filter(id => document.getElementById(id) !== null)", SECTIONS)
            page.screenshot(path=artifacts / "report-first-screen.png")
            page.screenshot(path=artifacts / "report-full.png", full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert [url for url in requests if url != report.as_uri()] == []
    assert len(widths) == len(FIGURES) and all(width > 0 for width in widths)
    assert present == SECTIONS


@pytest.mark.parametrize("after_line", ["starting Flower simulation", "federated experiment 2/"])
def test_ctrl_c_ends_the_run_at_once_in_one_line_and_leaves_nothing(after_line, tmp_path):
    """Interrupted while the engine starts and while the sites train: exit 130, one line (Ray's own notices aside),
    no run folder, no process left."""
    started = subprocess.Popen([sys.executable, "-m", "study.run", *SMALL_STUDY, "--output", str(tmp_path)],
                               cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = []
    for line in started.stderr:
        lines.append(line)
        if after_line in line:
            break
    started.send_signal(signal.SIGINT)
    stdout, rest = started.communicate(timeout=30)
    ours = [line for line in rest.splitlines() if "network_util" not in line]
    assert started.returncode == 130, "".join(lines) + rest
    assert ours == ["python -m study.run: interrupted; no run folder was written and earlier runs are untouched"]
    assert stdout == "" and _run_folders(tmp_path) == []
    assert not processes_left_in(tmp_path)

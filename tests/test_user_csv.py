"""A user's own CSV: what it may contain, and every kind of bad input ending in one clear line (exit 2)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.config import build_config
from study.data.sources import DataSource, load_dataset
from study.pipeline import preflight
from study.run import main


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _good_rows(rows: int = 40, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = ["age,bmi,smoker,hospital,outcome"]
    for i in range(rows):
        bmi = "" if i % 7 == 0 else f"{rng.normal(27, 4):.1f}"
        lines.append(f"{rng.integers(30, 80)},{bmi},{rng.choice(['yes', 'no'])},{'AB'[i % 2]},{'sick' if i % 3 else 'well'}")
    return "\n".join(lines) + "\n"


def test_a_csv_with_sites_missing_values_and_categories_loads_as_a_natural_split(tmp_path):
    path = _write(tmp_path / "cohort.csv", _good_rows())
    config = build_config({"data": str(path), "target": "outcome", "positive": "sick", "site_column": "hospital"})
    assert config.dataset == "csv" and not config.dp_arms  # no public schema: DP arms are left out by default
    dataset = load_dataset(DataSource(dataset="csv", path=str(path), target="outcome", positive="sick",
                                      site_column="hospital"))
    assert dataset.categorical == ("smoker",) and dataset.site_names == ("A", "B")
    assert dataset.features["bmi"].isna().sum() == 6 and "hospital" not in dataset.features
    assert dataset.target.sum() == 26 and dataset.target_rule == "positive = outcome is 'sick'"
    seeds = preflight(config)
    assert [site.name for site in seeds[0].sites] == ["A", "B"]
    assert "bmi missing" in seeds[0].preprocessor.output_names


def test_numeric_targets_are_binarized_by_the_threshold(tmp_path):
    path = _write(tmp_path / "scores.csv", "x,score\n" + "".join(f"{i},{i % 5}\n" for i in range(30)))
    dataset = load_dataset(DataSource(dataset="csv", path=str(path), target="score", positive_above=2))
    assert dataset.target.tolist() == [int(i % 5 > 2) for i in range(30)]
    assert dataset.target_rule == "positive = score > 2"


BAD = {
    "missing file": (None, [], "does not exist"),
    "binary file": (b"\x89PNG\r\n\x1a\n\x00\x00\x00", [], "not a CSV"),
    "latin-1 encoding": ("age,outcome\n1,caf\xe9\n".encode("latin-1"), [], "not UTF-8"),
    "empty file": ("", [], "is empty"),
    "header only": ("age,bmi,outcome\n", [], "no data rows"),
    "semicolons": ("age;outcome\n1;0\n2;1\n", [], "single column"),
    "duplicate columns": ("age,age,outcome\n1,2,0\n3,4,1\n", [], "duplicate column names ('age')"),
    "ragged line": ("age,outcome\n1,0\n2,1,7\n", [], "line 3 has 3 fields"),
    "target missing": ("age,y\n1,0\n2,1\n", [], "column 'outcome' is not in"),
    "one class": ("age,outcome\n" + "1,1\n" * 30, [], "every row"),
    "positive value absent": ("age,outcome\n" + "1,yes\n2,no\n" * 10, ["--positive", "sick"], "'sick' never occurs"),
    "not coded 0/1": ("age,outcome\n" + "1,yes\n2,no\n" * 10, [], "not coded 0/1"),
    "threshold on text": ("age,outcome\n" + "1,yes\n2,no\n" * 10, ["--positive-above", "1"], "not numeric (line 2"),
    "empty target cell": ("age,outcome\n1,0\n2,\n3,1\n", [], "empty on line 3"),
    "site column missing": ("age,outcome\n" + "1,0\n2,1\n" * 10, ["--site-column", "hospital"], "'hospital' is not in"),
    "single site": ("age,h,outcome\n" + "1,A,0\n2,A,1\n" * 10, ["--site-column", "h"], "single site ('A')"),
    "one-row site": ("age,h,outcome\n" + "1,A,0\n2,A,1\n" * 10 + "3,B,1\n", ["--site-column", "h"], "site 'B' has 1 row"),
    "empty feature column": ("age,bmi,outcome\n" + "1,,0\n2,,1\n" * 10, [], "column 'bmi'"),
    "junk in a numeric column": ("age,outcome\n" + "40,0\n50,1\n" * 10 + "forty,1\n", [], "line 22 holds 'forty'"),
    "infinite value": ("age,outcome\n" + "40,0\n50,1\n" * 10 + "inf,1\n", [], "infinite value on line 22"),
    "huge value": ("age,outcome\n" + "40,0\n50,1\n" * 10 + "1e308,1\n", [], "'1e308' on line 22"),
    "commas only": ("\ufeff,,\n,,\n", [], "holds no values"),
    "constant features": ("age,outcome\n" + "40,0\n40,1\n" * 30, [], "no feature of data.csv varies"),
    "too few rows": ("age,outcome\n1,0\n2,1\n3,0\n", [], "fewer than 2 per site"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_stops_with_one_line_and_leaves_earlier_reports_alone(case, tmp_path, capsys):
    content, extra, expected = BAD[case]
    path = tmp_path / "data.csv"
    if content is not None:
        _write(path, content)
    reports = tmp_path / "reports"
    earlier = reports / "20260101-000000-earlier"
    earlier.mkdir(parents=True)
    (earlier / "index.html").write_text("an earlier report")
    code = main(["--data", str(path), "--target", "outcome", *extra, "--output", str(reports)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert expected in error, error
    assert sorted(p.name for p in reports.iterdir()) == [earlier.name]
    assert (earlier / "index.html").read_text() == "an earlier report"


@pytest.mark.parametrize("argv, option", [
    (["--dataset", "csv"], "--data"),
    (["--data", "x.csv"], "--target"),
    (["--target", "y"], "--target"),
    (["--data", "x.csv", "--target", "y", "--positive", "a", "--positive-above", "1"], "--positive"),
    (["--data", "x.csv", "--target", "y", "--site-column", "y"], "--site-column"),
    (["--dataset", "breast-cancer", "--split", "natural"], "--split"),
    (["--data", "x.csv", "--target", "y", "--sites", "2", "--arms", "federated-dp"], "--arms"),
])
def test_conflicting_data_options_name_the_option(argv, option, tmp_path, capsys):
    if "x.csv" in argv:
        argv = [str(_write(tmp_path / "x.csv", "a,y\n" + "1,0\n2,1\n" * 10)) if a == "x.csv" else a for a in argv]
    assert main(argv + ["--output", str(tmp_path / "reports")]) == 2
    error = capsys.readouterr().err
    assert option in error and error.count("\n") == 1, error


def test_a_report_on_html_column_names_escapes_them_and_marks_one_class_sites(tmp_path):
    """In-process arms only (no engine): a column named like a script tag, and a site whose rows are one class."""
    rng = np.random.default_rng(0)
    rows = ["<script>alert(1)</script>,site,outcome"]
    for i in range(120):
        site = "one-class" if i < 30 else "mixed"
        rows.append(f"{rng.normal():.3f},{site},{0 if site == 'one-class' else i % 2}")
    path = _write(tmp_path / "odd.csv", "\n".join(rows) + "\n")
    reports = tmp_path / "reports"
    code = main(["--data", str(path), "--target", "outcome", "--site-column", "site", "--arms", "centralized", "local",
                 "--models", "lr", "--seeds", "0", "--rounds", "2", "--local-epochs", "1", "--canaries", "0", "--quiet",
                 "--output", str(reports)])
    assert code == 0
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    html = (run_dir / "index.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    table = pd.read_csv(run_dir / "results.csv")
    fallback = table[(table["metric"] == "local_fallback")].set_index("site")["value"]
    assert fallback["one-class"] == 1 and fallback["mixed"] == 0
    assert "one-class of seed 0" in " ".join(html.split())


SCHEMA = 'may-be-missing = ["bmi"]\n[ranges]\nage = [18, 100]\nbmi = [15, 60]\n[categories]\nsmoker = ["no", "yes"]\n'


def test_a_public_schema_brings_the_dp_arms_to_a_users_csv(tmp_path):
    path = _write(tmp_path / "cohort.csv", _good_rows())
    schema = _write(tmp_path / "public.toml", SCHEMA)
    config = build_config({"data": str(path), "target": "outcome", "positive": "sick", "site_column": "hospital",
                           "public_schema": str(schema)})
    assert config.dp_arms == ("centralized-dp", "federated-dp")
    public = preflight(config)[0].public_preprocessor
    assert public.output_names == ["age", "bmi", "bmi missing", "smoker=no", "smoker=yes"]
    np.testing.assert_allclose(public.center[:2], [59.0, 37.5])


@pytest.mark.parametrize("schema, expected", [
    ('[ranges]\nage = [18, 100]\n[categories]\nsmoker = ["no", "yes"]\n', "numeric column 'bmi' needs a range"),
    (SCHEMA.replace("[15, 60]", "[60, 15]"), "numeric column 'bmi' needs a range"),
    (SCHEMA.replace('smoker = ["no", "yes"]', "smoker = []"), "categorical column 'smoker' needs its categories"),
    (SCHEMA + "weight = [1, 2]\n", "'weight', which is not a feature column"),
    ("[ranges\n", "not a readable TOML file"),
    (SCHEMA + "[extra]\n", "unknown key 'extra'"),
])
def test_a_bad_public_schema_is_one_line(schema, expected, tmp_path, capsys):
    path = _write(tmp_path / "cohort.csv", _good_rows())
    schema_path = _write(tmp_path / "public.toml", schema)
    code = main(["--data", str(path), "--target", "outcome", "--positive", "sick", "--site-column", "hospital",
                 "--public-schema", str(schema_path), "--output", str(tmp_path / "reports")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and expected in error and "--public-schema" in error, error

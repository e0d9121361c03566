import json
import math

import pytest

from helpers.core import results


def test_record_results_writes_expected_json(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    path = results.record_results(
        "02_demo",
        {"test_accuracy": 0.91234567, "test_macro_f1": 0.88},
        profile="full",
        headline=("test_accuracy",),
        notes="demo",
    )
    payload = json.loads(path.read_text())
    assert path == tmp_path / "02_demo.json"
    assert payload["metrics"] == {"test_accuracy": 0.912346, "test_macro_f1": 0.88}
    assert payload["profile"] == "full" and payload["headline"] == ["test_accuracy"]
    assert {"date", "hardware", "wall_time_s"} <= payload.keys()
    assert [p.name for p in tmp_path.iterdir()] == ["02_demo.json"]


@pytest.mark.parametrize(
    "metrics, profile, message",
    [
        ({"Test Accuracy": 0.9}, "full", "snake_case"),
        ({"test_accuracy": math.nan}, "full", "finite"),
        ({}, "full", "no metrics"),
        ({"test_accuracy": 0.9}, "fast", "profile"),
    ],
)
def test_record_results_rejects_bad_input(tmp_path, monkeypatch, metrics, profile, message):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=message):
        results.record_results("x", metrics, profile=profile)
    assert list(tmp_path.iterdir()) == []


def test_quick_runs_never_touch_published_results(monkeypatch):
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    assert results.results_dir("quick") != results.PUBLISHED_DIR
    assert results.results_dir("full") == results.PUBLISHED_DIR


def test_readme_table_is_generated_from_results(tmp_path, monkeypatch):
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "res"))
    results.record_results("05_bert", {"test_accuracy": 0.935, "test_mcc": 0.9}, profile="full")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.README_START}\nold\n{results.README_END}\noutro\n")
    assert results.update_readme(readme, tmp_path / "res")
    text = readme.read_text()
    assert "old" not in text and "`05_bert`" in text and "test accuracy **0.9350**" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert not results.update_readme(readme, tmp_path / "res")  # idempotent

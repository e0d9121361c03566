"""Numbers typed in a published notebook's prose agree with that notebook's own run (issue 16).

Most prose numbers are rendered from the run's variables (``display(Markdown(f"..."))``). Some stay typed in
markdown cells, where a sentence reads better than a template; each of those is listed here with where its value
comes from: a metric of ``results/<notebook>.json``, or a row of the classification report printed above the prose.
When a notebook is republished and a number moves, this test names the sentence to rewrite. No notebook is executed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT_COLUMNS = ("precision", "recall", "f1", "support")


@dataclass(frozen=True)
class Claim:
    """``phrase`` (a regular expression with one group: the typed number) in the markdown of ``notebook``, whose
    value is ``source``: ``"results:<key>"``, ``"report:<label>:<column>"`` (the nearest classification report
    printed above the phrase) or ``"output"`` (a number printed above the phrase rounds to it)."""

    notebook: str
    phrase: str
    source: str
    scale: float = 1.0  # 100 for a percentage typed from a fraction


CLAIMS = [
    # 02: the headline paragraph of section 9 (mean ± std over three seeds, from results/02)
    Claim("02_lstm_emotion_en", r"accuracy (0\.\d{4}) ± 0\.\d{4} is", "results:test_accuracy"),
    Claim("02_lstm_emotion_en", r"accuracy 0\.\d{4} ± (0\.\d{4}) is", "results:test_accuracy_std"),
    Claim("02_lstm_emotion_en", r"macro-F1 (0\.\d{3}) ± 0\.\d{3} is", "results:test_macro_f1"),
    Claim("02_lstm_emotion_en", r"macro-F1 0\.\d{3} ± (0\.\d{3}) is", "results:test_macro_f1_std"),
    # 02: the reading of the confusion matrix and report (section 7)
    Claim("02_lstm_emotion_en", r"\*surprise\* the lowest precision \((0\.\d\d)\)", "report:surprise:precision"),
    Claim("02_lstm_emotion_en", r"although its recall \((0\.\d\d)\)", "report:surprise:recall"),
    Claim("02_lstm_emotion_en", r"better than \*fear\*'s \((0\.\d\d)\)", "report:fear:recall"),
    Claim("02_lstm_emotion_en", r"the lowest F1 \((0\.\d\d) and 0\.\d\d\)", "report:love:f1"),
    Claim("02_lstm_emotion_en", r"the lowest F1 \(0\.\d\d and (0\.\d\d)\)", "report:surprise:f1"),
    # 04: the coverage of max_length 64, stated once, as printed
    Claim("04_training_a_tokenizer", r"whole \((\d\d\.\d) % of the held-out sentences", "output"),
    # 03: the cost of Okt on all reviews, from the speed table above it
    Claim("03_korean_nsmc_morphology", r"would take it about (\d+) minutes on this machine", "output"),
    # 05: the own-loop-vs-Trainer paragraph (section 6) and the first epoch of the main run (section 4)
    Claim("05_bert_emotion_en", r"our loop took (\d+) s and `Trainer`", "output"),
    Claim("05_bert_emotion_en", r"our loop took \d+ s and `Trainer` (\d+) s", "output"),
    Claim("05_bert_emotion_en", r"Here that noise reads (0\.\d{3}) against", "output"),
    Claim("05_bert_emotion_en", r"Here that noise reads 0\.\d{3} against (0\.\d{3}) validation", "output"),
    Claim("05_bert_emotion_en", r"validation loss (\d\.\d{4}) against \d", "output"),
    Claim("05_bert_emotion_en", r"validation loss \d\.\d{4} against (\d\.\d{4})\.", "output"),
    Claim("05_bert_emotion_en", r"Macro-F1 \(about (0\.\d\d)\) sits well below", "results:test_macro_f1"),
    Claim("05_bert_emotion_en", r"below accuracy \(about (0\.\d\d)\)", "results:test_accuracy"),
]


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        for text in (out.get("text"), *(out.get("data", {}).get(k) for k in ("text/plain", "text/html"))):
            if text:  # the HTML too: Trainer's training log is an HTML table
                parts.append(text if isinstance(text, str) else "".join(text))
    return "\n".join(parts)


def _locate(nb, phrase: str) -> tuple[int, re.Match]:
    hits = [
        (i, m) for i, c in enumerate(nb.cells) if c.cell_type == "markdown" for m in [re.search(phrase, c.source)] if m
    ]
    assert len(hits) == 1, f"the phrase /{phrase}/ should occur in exactly one markdown cell, found {len(hits)}"
    return hits[0]


def _report_value(nb, before: int, label: str, column: str) -> float:
    row = re.compile(rf"^\s*{re.escape(label)}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$", re.MULTILINE)
    for cell in reversed(nb.cells[:before]):
        if cell.cell_type == "code" and (m := row.search(_outputs_text(cell))):
            return float(m.group(REPORT_COLUMNS.index(column) + 1))
    raise AssertionError(f"no classification report row for {label!r} above cell {before}")


def check_claim(nb, claim: Claim, metrics: dict) -> None:
    """Raise AssertionError when the typed number of ``claim`` disagrees with its source."""
    index, match = _locate(nb, claim.phrase)
    typed = match.group(1)
    decimals = len(typed.split(".")[1]) if "." in typed else 0
    kind, _, rest = claim.source.partition(":")
    if kind == "results":
        value = metrics[rest] * claim.scale
    elif kind == "report":
        label, column = rest.split(":")
        value = _report_value(nb, index, label, column) * claim.scale
    else:
        shown = "\n".join(_outputs_text(c) for c in nb.cells[:index] if c.cell_type == "code")
        printed = {f"{float(n):.{decimals}f}" for n in re.findall(r"(?<![\d.])\d+(?:\.\d+)?", shown.replace(",", ""))}
        assert typed.replace(",", "") in printed, f"{typed} is not printed (to its decimals) above cell {index}"
        return
    assert f"{value:.{decimals}f}" == typed, (
        f"{claim.notebook} cell {index} says {typed}, the run gives {value:.{decimals + 2}f}: rewrite the sentence"
    )


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c.notebook[:2]}-{c.source}" for c in CLAIMS])
def test_typed_number_agrees_with_the_run(claim: Claim):
    nb = nbformat.read(ROOT / "notebooks" / f"{claim.notebook}.ipynb", as_version=4)
    metrics = json.loads((ROOT / "results" / f"{claim.notebook}.json").read_text())["metrics"]
    check_claim(nb, claim, metrics)


def test_a_wrong_typed_number_is_caught():
    """The check fails when prose and run disagree (a check that cannot fail would prove nothing)."""
    report = nbformat.v4.new_output("stream", text="joy  0.9000  0.8100  0.8500  10\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("report()", outputs=[report]),
        nbformat.v4.new_markdown_cell("recall of joy (0.82), precision 0.90, accuracy 0.913, coverage 99.1 %"),
    ]
    check_claim(nb, Claim("x", r"precision (0\.\d\d)", "report:joy:precision"), {})
    check_claim(nb, Claim("x", r"accuracy (0\.\d{3})", "results:acc"), {"acc": 0.91349})
    for wrong, metrics in (
        (Claim("x", r"recall of joy \((0\.\d\d)\)", "report:joy:recall"), {}),
        (Claim("x", r"accuracy (0\.\d{3})", "results:acc"), {"acc": 0.9124}),
        (Claim("x", r"coverage (\d\d\.\d) %", "output"), {}),
    ):
        with pytest.raises(AssertionError):
            check_claim(nb, wrong, metrics)

"""One copy of each recipe: a notebook cell marked ``# @save <helper file>`` defines the same functions and classes
as that helper file (d2l's ``#@save``: the notebook is the source a student reads and edits, the helper is what
scripts and later notebooks import). The definitions are compared as syntax trees (``ast.dump``), so comments and
formatting may differ but code, docstrings and defaults may not. Notebook 08 must carry the recipe of
``helpers/audio/cnn_recipe.py`` this way, and no other cell of it may define a second copy of a helper function.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SAVE_MARK = re.compile(r"^#\s*@save\s+(\S+)")
NB08 = NOTEBOOKS / "08_speech_mfcc_cnn.ipynb"
NB08_RECIPE = {
    "speaker_splits",
    "speech_dataset",
    "new_speech_cnn",
    "speech_optimizer",
    "speech_schedule",
    "train_speech_cnn",
    "predict_speech",
}


def _code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _parse_cell(source: str) -> ast.Module:
    """A code cell as Python: IPython lines (``%magic``, ``!shell``) become ``pass`` so the rest still parses."""
    lines = ["pass" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def saved_cells(notebook: Path) -> list[tuple[str, str]]:
    """``(target file, cell source)`` of every code cell whose first line is ``# @save <target file>``."""
    out = []
    for source in _code_cells(notebook):
        match = SAVE_MARK.match(source.lstrip())
        if match:
            out.append((match.group(1), source))
    return out


def definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Top-level functions and classes of a module, by name."""
    return {
        node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }


def differing(cell_source: str, helper_source: str) -> list[str]:
    """Names defined in the cell whose definition differs from (or is missing in) the helper's."""
    helper = definitions(ast.parse(helper_source))
    return [
        name
        for name, node in definitions(_parse_cell(cell_source)).items()
        if name not in helper or ast.dump(node) != ast.dump(helper[name])
    ]


def _notebooks_with_saved_cells() -> list[Path]:
    return [nb for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if saved_cells(nb)]


@pytest.mark.parametrize("notebook", _notebooks_with_saved_cells(), ids=lambda p: p.stem)
def test_saved_cells_equal_their_helper(notebook):
    for target, source in saved_cells(notebook):
        helper = ROOT / target
        assert helper.is_file(), f"{notebook.name}: a cell is marked '# @save {target}', which does not exist"
        tree = _parse_cell(source)
        others = [type(n).__name__ for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not others, f"{notebook.name}: a '# @save {target}' cell may hold only definitions, found {others}"
        assert definitions(tree), f"{notebook.name}: a '# @save {target}' cell defines nothing"
        bad = differing(source, helper.read_text(encoding="utf-8"))
        assert not bad, (
            f"{notebook.name} and {target} define {bad} differently; the notebook cell is the source: "
            f"copy it into {target} (comments may differ, code and docstrings may not)"
        )


def test_notebook_08_teaches_the_helpers_recipe_and_no_second_copy():
    saved = saved_cells(NB08)
    assert {target for target, _ in saved} == {"helpers/audio/cnn_recipe.py"}
    shown = set().union(*(definitions(_parse_cell(source)) for _, source in saved))
    assert shown >= NB08_RECIPE, f"notebook 08's @save cells lack {sorted(NB08_RECIPE - shown)}"
    helper_names = set(definitions(ast.parse((ROOT / "helpers/audio/cnn_recipe.py").read_text(encoding="utf-8"))))
    saved_sources = {source for _, source in saved}
    for source in _code_cells(NB08):
        if source in saved_sources:
            continue
        tree = _parse_cell(source)
        copies = set(definitions(tree)) & helper_names
        assert not copies, f"notebook 08 defines {sorted(copies)} outside its @save cells: a second copy"
        # the old private names of the three-copies era must not come back either
        assert not set(definitions(tree)) & {"split_fold", "make_dataset", "train_one", "test_scores"}


def test_the_comparison_catches_a_changed_line():
    _, source = next((t, s) for t, s in saved_cells(NB08) if "def train_speech_cnn" in s)
    helper_source = (ROOT / "helpers/audio/cnn_recipe.py").read_text(encoding="utf-8")
    assert differing(source, helper_source) == []
    changed = source.replace("patience=None", "patience=5")
    assert changed != source
    assert differing(changed, helper_source) == ["train_speech_cnn"]
    # a comment is not code: adding one changes nothing
    assert (
        differing(source.replace("def train_speech_cnn", "# a student's note\ndef train_speech_cnn"), helper_source)
        == []
    )


def test_train_audio_uses_only_the_public_recipe():
    tree = ast.parse((ROOT / "helpers/cli/train_audio.py").read_text(encoding="utf-8"))
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "helpers.audio.cnn_recipe"
        for alias in node.names
    ]
    assert imported, "train_audio no longer imports the recipe"
    from helpers.audio import cnn_recipe

    assert all(not name.startswith("_") and name in cnn_recipe.__all__ for name in imported), imported
    # and builds nothing of the recipe itself: the model, optimizer and schedule come from the notebook's builders
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    assert not called & {"SpeechCNN", "AdamW", "OneCycleLR"}, sorted(called & {"SpeechCNN", "AdamW", "OneCycleLR"})
    assert {"new_speech_cnn", "speech_optimizer", "speech_schedule"} <= set(imported)


LESSON_CODE = {  # notebook -> (the helper its @save cells mirror, the definitions it must teach that way)
    "03_korean_nsmc_morphology": (
        {"helpers/core/bootstrap.py"},
        {"bootstrap_draws", "resampled_accuracy", "percentile_interval", "paired_difference"},
    ),
    "06_korean_roberta_kfold": ({"helpers/text/korean_emotion.py"}, {"pretrain_mlm", "finetune"}),
    "09_wav2vec2_speech_emotion": (
        {"helpers/audio/wav2vec.py", "helpers/audio/whisper_features.py"},
        {"train_wav2vec2", "LayerWeightedHead", "train_layer_head"},
    ),
    "10_multimodal_fusion": (
        {"helpers/multimodal/fusion.py"},
        {"EarlyFusion", "GatedFusion", "late_fusion", "ModalityDropout", "train_fusion_head"},
    ),
}


@pytest.mark.parametrize("stem", sorted(LESSON_CODE))
def test_the_notebook_teaches_the_code_it_runs(stem):
    """The lesson's training code is in @save cells, and the notebook runs those, not the helper's copy."""
    notebook = NOTEBOOKS / f"{stem}.ipynb"
    targets, lesson = LESSON_CODE[stem]
    saved = saved_cells(notebook)
    assert {target for target, _ in saved} == targets
    shown = set().union(*(definitions(_parse_cell(source)) for _, source in saved))
    assert shown >= lesson, f"{stem}'s @save cells lack {sorted(lesson - shown)}"
    for source in _code_cells(notebook):
        used = set(re.findall(r"\b(?:fu|wf|w2v|ke)\.(\w+)", source))
        assert not used & lesson, f"{stem} calls the helper's {sorted(used & lesson)} instead of its own cells"


SOLUTIONS = ROOT / "solutions"


def _lessons_and_solutions() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) + sorted(SOLUTIONS.glob("*.ipynb"))


def test_no_notebook_or_solution_defines_a_second_copy_of_saved_code():
    """A definition saved from one notebook (``# @save``) is imported everywhere else, never written again."""
    books = _lessons_and_solutions()
    saved_names = {}
    for notebook in books:
        for _, source in saved_cells(notebook):
            for name in definitions(_parse_cell(source)):
                saved_names[name] = notebook.stem
    assert {"paired_difference", "train_speech_cnn", "finetune"} <= set(saved_names)
    for notebook in books:
        saved_sources = {source for _, source in saved_cells(notebook)}
        for source in _code_cells(notebook):
            if source in saved_sources:
                continue
            copies = {name for name in definitions(_parse_cell(source)) if name in saved_names}
            assert not copies, f"{notebook.name} defines {sorted(copies)} again; they are saved from {saved_names}"


def test_the_paired_bootstrap_is_written_once():
    """Notebooks 05 and 07 (and the solutions) resample through helpers.core.bootstrap, not inline copies."""
    inline = re.compile(r"integers\(0, len\(|percentile\([^)]*2\.5")
    books = _lessons_and_solutions()
    for notebook in books:
        saved_sources = {source for _, source in saved_cells(notebook)}
        for source in _code_cells(notebook):
            found = None if source in saved_sources else inline.search(source)
            assert not found, f"{notebook.name} draws a bootstrap inline: {found[0]}"
    for stem in ("05_bert_emotion_en", "07_macaron_conv_attention"):
        text = "".join(_code_cells(NOTEBOOKS / f"{stem}.ipynb"))
        assert "from helpers.core.bootstrap import" in text and "paired_difference(" in text

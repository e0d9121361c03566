"""Model kinds register themselves with the evaluator: adding one touches only the module that saves it."""

import json
from pathlib import Path

import pytest

from helpers.cli import evaluate
from helpers.core import model_kinds
from helpers.core.model_kinds import Scorer, find_model_kind, import_model_kinds, register_model_kind

EVALUATE_SOURCE = Path(evaluate.__file__).read_text(encoding="utf-8")


def test_every_model_module_registers_its_kind():
    modules = import_model_kinds()
    for module in (
        "helpers.text.lstm",
        "helpers.text.macaron",
        "helpers.text.hf_finetune",
        "helpers.text.encoder_finetune",
        "helpers.audio.cnn",
        "helpers.audio.wav2vec",
    ):
        assert module in modules
    by_module = {k.module: k for k in model_kinds.model_kinds()}
    assert by_module["helpers.text.lstm"].name == "text-classification-lstm"
    assert (
        by_module["helpers.audio.cnn"].name == "speech-emotion-cnn"
        and by_module["helpers.audio.cnn"].modality == "audio"
    )
    assert model_kinds.model_kinds()[-1].fallback, "the generic …ForSequenceClassification kind is tried last"


@pytest.mark.parametrize(
    ("config", "module"),
    [
        ({"task": "text-classification-lstm"}, "helpers.text.lstm"),
        ({"task": "text-classification-macaron-conv-attention"}, "helpers.text.macaron"),
        ({"task": "text-classification-encoder"}, "helpers.text.encoder_finetune"),
        ({"task": "speech-emotion-cnn"}, "helpers.audio.cnn"),
        ({"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForSequenceClassification"]}, "helpers.audio.wav2vec"),
        ({"model_type": "bert", "architectures": ["BertForSequenceClassification"]}, "helpers.text.hf_finetune"),
    ],
)
def test_a_config_finds_the_kind_of_the_module_that_saved_it(config, module):
    import_model_kinds()
    assert find_model_kind(config).module == module


def test_an_unknown_folder_is_refused_naming_the_known_kinds(tmp_path):
    import_model_kinds()
    assert find_model_kind({"task": "nothing-we-save"}) is None
    (tmp_path / "config.json").write_text(json.dumps({"task": "nothing-we-save"}))
    with pytest.raises(evaluate.EvaluationError, match="does not know") as refused:
        evaluate.load_model(tmp_path)
    assert all(kind.name in str(refused.value) for kind in model_kinds.model_kinds())


def test_a_new_kind_needs_no_change_to_the_evaluator(tmp_path, monkeypatch):
    monkeypatch.setattr(model_kinds, "_KINDS", dict(model_kinds._KINDS))  # the registration is undone afterwards
    seen = {}

    def loader(folder, config, max_seconds=None):
        seen.update(folder=folder, max_seconds=max_seconds)
        return Scorer("text", ["no", "yes"], lambda texts: [[0.5, 0.5]] * len(texts), "a test kind")

    register_model_kind("test-kind", loader, modality="text")
    (tmp_path / "config.json").write_text(json.dumps({"task": "test-kind"}))
    loaded = evaluate.load_model(tmp_path, max_seconds=7.0)
    assert loaded.description == "a test kind" and loaded.label_names == ["no", "yes"]
    assert seen == {"folder": tmp_path, "max_seconds": 7.0}
    with pytest.raises(ValueError, match="modality"):
        register_model_kind("bad", loader, modality="video")


def test_the_evaluator_names_no_kind_and_imports_no_model_module():
    for task in ("text-classification-", "speech-emotion-cnn", "wav2vec2", "ForSequenceClassification"):
        assert task not in EVALUATE_SOURCE.split('"""', 2)[2], f"evaluate.py still knows {task!r}"
    imports = [
        line for line in EVALUATE_SOURCE.splitlines() if line.lstrip().startswith(("from helpers", "import helpers"))
    ]
    assert [line for line in imports if "helpers.text" in line or "helpers.audio" in line] == [
        "from helpers.text.hf_finetune import load_errors"
    ], imports

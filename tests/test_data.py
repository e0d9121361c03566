import hashlib
import os

import pandas as pd
import pytest

from helpers.core import data
from helpers.core.data import DataFile, DataNotFoundError, DatasetSpec, Source

CSV = "text,label\nhappy day,1\nsad day,0\nok day,1\n"


def _toy_spec(source_path=None, checksum=None) -> DatasetSpec:
    def build(folder, downloads):
        (folder / "train.csv").write_text(downloads[0].read_text(encoding="utf-8"), encoding="utf-8")

    sources = (Source(source_path.as_uri(), "toy.csv", checksum),) if source_path else ()
    return DatasetSpec(
        name="toy",
        title="toy set",
        folders=("toy",),
        homepage="https://example.org/toy",
        license="CC0",
        citation="",
        labels=("neg", "pos"),
        counts={"train": 3},
        files=(DataFile("train.csv", hashlib.sha256(CSV.encode()).hexdigest()),),
        sources=sources,
        build=build if source_path else None,
        manual="Ask the toy maker.",
    )


@pytest.fixture
def toy(monkeypatch):
    def register(spec):
        monkeypatch.setitem(data.DATASETS, "toy", spec)
        return spec

    return register


def _make_folder(path):
    path.mkdir(parents=True)
    (path / "train.csv").write_text(CSV, encoding="utf-8")
    return path


def test_explicit_path_wins(toy, isolated_cache, tmp_path, monkeypatch):
    toy(_toy_spec())
    mirror = _make_folder(tmp_path / "mirror" / "toy")
    monkeypatch.setenv("COURSE_DATA_DIR", str(mirror.parent))
    explicit = _make_folder(tmp_path / "mine")
    assert data.dataset_dir("toy", explicit) == explicit
    assert data.dataset_dir("toy") == mirror


def test_explicit_path_missing_files_is_clear(toy, isolated_cache, tmp_path):
    toy(_toy_spec())
    with pytest.raises(DataNotFoundError, match="explicit path"):
        data.dataset_dir("toy", tmp_path / "empty")


def test_read_only_mirror_is_never_written(toy, isolated_cache, tmp_path, monkeypatch):
    toy(_toy_spec())
    folder = _make_folder(tmp_path / "mirror" / "toy")
    os.chmod(folder / "train.csv", 0o444)
    os.chmod(folder, 0o555)
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder.parent))
    before = {p: p.stat().st_mtime_ns for p in folder.parent.rglob("*")}
    assert data.dataset_dir("toy") == folder
    assert {p: p.stat().st_mtime_ns for p in folder.parent.rglob("*")} == before
    assert not isolated_cache.exists()
    os.chmod(folder, 0o755)


def test_cache_used_without_mirror(toy, isolated_cache):
    toy(_toy_spec())
    cached = _make_folder(isolated_cache / "toy")
    assert data.dataset_dir("toy") == cached


def test_download_into_cache_then_reuse(toy, isolated_cache, tmp_path):
    source = tmp_path / "upstream.csv"
    source.write_text(CSV, encoding="utf-8")
    toy(_toy_spec(source, f"sha256:{hashlib.sha256(CSV.encode()).hexdigest()}"))
    folder = data.dataset_dir("toy")
    assert folder == isolated_cache / "toy"
    assert (folder / "train.csv").read_text(encoding="utf-8") == CSV
    source.unlink()  # upstream gone: the verified cache is enough now
    assert data.dataset_dir("toy") == folder


def test_truncated_download_fails_clearly_and_leaves_no_files(toy, isolated_cache, tmp_path):
    source = tmp_path / "upstream.csv"
    source.write_text(CSV[:20], encoding="utf-8")  # cut short
    toy(_toy_spec(source, f"sha256:{hashlib.sha256(CSV.encode()).hexdigest()}"))
    with pytest.raises(DataNotFoundError) as err:
        data.dataset_dir("toy")
    message = str(err.value)
    assert "ChecksumError" in message and "discarded" in message
    assert not (isolated_cache / "toy").exists()
    assert list((isolated_cache / "downloads").iterdir()) == []


def test_missing_data_message_says_what_where_and_how(toy, isolated_cache, tmp_path, monkeypatch):
    source = tmp_path / "upstream.csv"
    toy(_toy_spec(source, None))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as err:
        data.dataset_dir("toy")
    message = str(err.value)
    for expected in (
        "'toy'",
        "COURSE_DATA_DIR",
        "Missing: train.csv",
        source.as_uri(),
        "Ask the toy maker",
        "License: CC0",
        str(isolated_cache / "toy"),
    ):
        assert expected in message


def test_mirror_file_with_wrong_checksum_is_reported(toy, isolated_cache, tmp_path, monkeypatch):
    toy(_toy_spec())
    folder = tmp_path / "mirror" / "toy"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text(CSV.replace("happy", "hapyy"), encoding="utf-8")
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder.parent))
    with pytest.raises(data.ChecksumError, match="train.csv"):
        data.dataset_dir("toy")


def test_unknown_data_set_lists_known_ones():
    with pytest.raises(KeyError, match="emotion_en"):
        data.dataset_dir("imdb")


def test_empty_csv_and_wrong_encoding_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no rows"):
        data._read_labelled_csv(empty)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncafé,1\n".encode("cp1252"))
    with pytest.raises(ValueError, match="not UTF-8"):
        data._read_labelled_csv(latin)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sentence,emotion\nhi,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'text,label'"):
        data._read_labelled_csv(wrong)


def test_every_registered_set_has_source_license_and_labels():
    for spec in data.DATASETS.values():
        assert spec.homepage and spec.license and spec.labels, spec.name
        assert spec.sources or spec.manual, f"{spec.name} needs a download or manual instructions"
        for source in spec.sources:
            assert source.url.startswith("https://") and source.checksum, f"{spec.name}: unverified download"


# --------------------------------------------------------------- the real data sets (from the mirror)


def test_emotion_en_official_splits(mirror):
    splits = data.load_emotion_en()
    assert {k: len(v) for k, v in splits.items()} == {"train": 16_000, "validation": 2_000, "test": 2_000}
    assert splits["train"]["label"].value_counts().to_dict() == {1: 5362, 0: 4666, 3: 2159, 4: 1937, 2: 1304, 5: 572}
    assert splits["validation"].iloc[0]["text"].startswith("im feeling quite sad and sorry for myself")
    assert set(splits["test"]["label_name"]) == set(data.EMOTION_EN_LABELS)


def test_nsmc_official_splits_keep_empty_reviews(mirror):
    splits = data.load_nsmc()
    assert len(splits["train"]) == 150_000 and len(splits["test"]) == 50_000
    assert splits["train"]["label"].sum() == 74_827
    assert (splits["train"]["text"] == "").sum() == 5 and (splits["test"]["text"] == "").sum() == 3


def test_ko_single_turn_labels(mirror):
    frame = data.load_ko_single_turn_emotion()
    assert len(frame) == 38_594
    assert frame["label"].value_counts()["행복"] == 6037
    assert frame["label_id"].between(0, 6).all() and not frame["text"].str.startswith(" ").any()


def test_ravdess_metadata_and_filenames_agree(mirror):
    frame = data.load_ravdess()
    assert len(frame) == 1200 and frame["actor"].nunique() == 20
    for _, row in frame.sample(25, random_state=0).iterrows():
        decoded = data.parse_ravdess_filename(row["path"].split("/")[-1])
        assert (decoded["emotion"], decoded["actor"], decoded["intensity"]) == (
            row["emotion"],
            row["actor"],
            row["intensity"],
        )


def test_ravdess_reads_a_fresh_zenodo_layout(tmp_path):
    # a download has Actor_XX/*.wav and no metadata.csv: the loader decodes the file names
    import numpy as np
    import soundfile as sf

    for actor, name in ((1, "03-01-05-02-01-01-01.wav"), (2, "03-01-01-01-02-02-02.wav")):
        folder = tmp_path / "audio" / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        sf.write(folder / name, np.zeros(4800, dtype="float32"), 48_000)
    (tmp_path / "audio" / "Actor_01" / "README.txt").write_text("not a clip")
    frame = data.load_ravdess(tmp_path)
    assert frame["emotion"].tolist() == ["angry", "neutral"]
    assert frame["gender"].tolist() == ["male", "female"]
    assert frame["label"].tolist() == [4, 0]


def test_parse_ravdess_filename_rejects_other_names():
    with pytest.raises(ValueError, match="not a RAVDESS file name"):
        data.parse_ravdess_filename("speech.wav")
    with pytest.raises(ValueError, match="outside"):
        data.parse_ravdess_filename("03-01-09-01-01-01-01.wav")


def test_stratified_split_is_deterministic_and_stratified():
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(1000)], "label": [i % 4 if i < 800 else 0 for i in range(1000)]}
    )
    a = data.stratified_split(frame, test_size=0.1, val_size=0.1, seed=7)
    b = data.stratified_split(frame, test_size=0.1, val_size=0.1, seed=7)
    c = data.stratified_split(frame, test_size=0.1, val_size=0.1, seed=8)
    assert all(a[k].equals(b[k]) for k in a)
    assert not a["test"].equals(c["test"])
    assert {k: len(v) for k, v in a.items()} == {"train": 800, "validation": 100, "test": 100}
    whole = frame["label"].value_counts(normalize=True)
    for part in a.values():
        assert (part["label"].value_counts(normalize=True) - whole).abs().max() < 0.02
    assert set().union(*(set(p["text"]) for p in a.values())) == set(frame["text"])


def test_stratified_split_rejects_bad_fractions_and_nan():
    frame = pd.DataFrame({"label": [0, 1] * 10})
    with pytest.raises(ValueError):
        data.stratified_split(frame, test_size=0.6, val_size=0.5)
    with pytest.raises(ValueError, match="missing labels"):
        data.stratified_split(pd.DataFrame({"label": [0, 1, None] * 10}))


def test_speaker_split_is_speaker_independent_and_deterministic():
    frame = pd.DataFrame({"actor": [f"{a:02d}" for a in range(1, 21) for _ in range(3)]})
    frame["gender"] = ["male" if int(a) % 2 else "female" for a in frame["actor"]]
    a = data.speaker_split(frame, test_speakers=4, val_speakers=2, seed=1)
    b = data.speaker_split(frame, test_speakers=4, val_speakers=2, seed=1)
    actors = {k: set(v["actor"]) for k, v in a.items()}
    assert (
        not (actors["train"] & actors["test"])
        and not (actors["train"] & actors["validation"])
        and not (actors["validation"] & actors["test"])
    )
    assert len(actors["test"]) == 4 and len(actors["validation"]) == 2
    assert sorted(a["test"]["gender"].value_counts().tolist()) == [6, 6]  # gender-balanced
    assert all(a[k].equals(b[k]) for k in a)


def test_speaker_folds_never_share_a_speaker():
    frame = pd.DataFrame({"actor": [a for a in range(10) for _ in range(4)]})
    for train_idx, test_idx in data.speaker_folds(frame, n_folds=5):
        assert not set(frame["actor"].iloc[train_idx]) & set(frame["actor"].iloc[test_idx])


def test_subsample_is_stratified_and_bounded():
    frame = pd.DataFrame({"label": [0] * 90 + [1] * 10})
    part = data.subsample(frame, 20, seed=0)
    assert len(part) == 20 and part["label"].sum() == 2
    assert len(data.subsample(frame, None)) == 100
    with pytest.raises(ValueError):
        data.subsample(frame, 0)

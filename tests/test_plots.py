"""Hangul in plots: use_korean_font finds a font with Hangul, and warns once when there is none."""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.pyplot as plt
import pytest

from helpers.core import plots

HANGUL_LABEL = "감정 분류: 기쁨 −0.5"  # Hangul plus the minus sign NanumGothic lacks (falls back to DejaVu Sans)


def missing_glyph_warnings(label: str) -> list[str]:
    """Draw a figure with ``label`` as title, axis label and tick label; the missing-glyph warnings matplotlib gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.set_title(label)
        ax.set_xlabel(label)
        ax.bar([label], [1.0])
        fig.canvas.draw()
        plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_default_font_lacks_hangul_so_the_check_can_fail():
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        assert missing_glyph_warnings(HANGUL_LABEL), "DejaVu Sans drew Hangul: this test could not catch a missing font"


def test_use_korean_font_renders_hangul_without_missing_glyphs():
    with matplotlib.rc_context():
        family = plots.use_korean_font()
        assert family, "no Korean font: pip install koreanize-matplotlib==0.1.1 (requirements.txt)"
        assert matplotlib.rcParams["font.family"][0] == family
        assert missing_glyph_warnings(HANGUL_LABEL) == []


def test_system_font_is_used_when_the_package_is_absent(monkeypatch):
    packaged = plots._packaged_nanum_font()
    assert packaged is not None, "koreanize-matplotlib's NanumGothic.ttf not found"
    matplotlib.font_manager.fontManager.addfont(str(packaged))  # as if installed by apt-get install fonts-nanum
    monkeypatch.setattr(plots, "_packaged_nanum_font", lambda: None)
    assert plots.find_korean_font() == "NanumGothic"


def test_without_a_korean_font_it_warns_once_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(plots, "find_korean_font", lambda: None)
    monkeypatch.setattr(plots, "_warned_no_korean_font", False)
    with matplotlib.rc_context():
        before = list(matplotlib.rcParams["font.family"])
        with pytest.warns(UserWarning, match="no font with Hangul") as caught:
            assert plots.use_korean_font() is None
            assert plots.use_korean_font() is None
        assert len([w for w in caught if "Hangul" in str(w.message)]) == 1
        assert list(matplotlib.rcParams["font.family"]) == before


def test_show_source_is_the_helpers_code(capsys):
    """One way to show a helper's source: the text is inspect's, optionally cut before a given line."""
    import inspect

    from helpers.core.source import show_source, source_text
    from helpers.text.korean_emotion import FoldConfig

    assert source_text(source_text) == inspect.getsource(source_text)
    cut = source_text(FoldConfig, until="def __post_init__")
    assert cut.startswith("@dataclass") or cut.startswith("class FoldConfig")
    assert "__post_init__" not in cut and "fold:" in cut
    with pytest.raises(ValueError, match="does not start a line"):
        source_text(FoldConfig, until="def no_such_method")
    show_source(source_text)  # outside a notebook IPython prints the Code object's plain text
    assert "def source_text" in capsys.readouterr().out

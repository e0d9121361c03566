import numpy as np
import pytest
from sklearn import metrics as skm

from helpers.core.metrics import classification_metrics, classification_report, confusion_matrix, mean_std


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 8))
    y_true = rng.integers(0, k, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, k, 300))
    ours = classification_metrics(y_true, y_pred, num_classes=k)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert ours["mcc"] == pytest.approx(skm.matthews_corrcoef(y_true, y_pred))
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        assert (ours[f"{avg}_precision"], ours[f"{avg}_recall"], ours[f"{avg}_f1"]) == pytest.approx((p, r, f))
    np.testing.assert_array_equal(
        confusion_matrix(y_true, y_pred, k), skm.confusion_matrix(y_true, y_pred, labels=range(k))
    )


def test_class_never_predicted_and_class_absent():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 0, 1]  # class 2 never predicted
    ours = classification_metrics(y_true, y_pred, num_classes=4)  # class 3 appears nowhere
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert (ours["macro_precision"], ours["macro_recall"], ours["macro_f1"]) == pytest.approx((p, r, f))
    assert ours["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))


def test_perfect_and_constant_predictions():
    assert classification_metrics([0, 1, 2], [0, 1, 2])["mcc"] == pytest.approx(1.0)
    assert classification_metrics([0, 1, 1], [1, 1, 1])["mcc"] == 0.0  # undefined: reported as 0, like sklearn


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics([0, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="has 2 labels but y_pred has 1"):
        classification_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="integer"):
        classification_metrics(["joy"], ["joy"])
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0, 5], [0, 1], num_classes=3)


def test_report_has_per_class_rows_and_averages():
    report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert list(report.index) == ["a", "b", "c", "macro avg", "weighted avg"]
    assert report.loc["b", "recall"] == 0.5 and report.loc["c", "precision"] == 0.5
    assert report.loc["weighted avg", "support"] == 4


def test_mean_std():
    assert mean_std([0.9, 0.92, 0.94]) == pytest.approx((0.92, 0.02))
    assert mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_std([])

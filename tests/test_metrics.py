"""Metrics checked against values computed by hand on small arrays."""
import numpy as np
import pytest

from utils import metrics

LABELS = np.array([[0, 0, 1], [1, 2, 255]])
PREDS = np.array([[0, 1, 1], [1, 0, 2]])


def test_confusion_matrix_skips_ignore_pixels():
    cm = metrics.confusion_matrix(LABELS, PREDS, 3, ignore_label=255)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_iou_accuracies_by_hand():
    cm = metrics.confusion_matrix(LABELS, PREDS, 3, ignore_label=255)
    np.testing.assert_allclose(metrics.per_class_iou(cm), [1 / 3, 2 / 3, 0.0])
    assert metrics.mean_iou(cm) == pytest.approx(1 / 3)
    assert metrics.pixel_accuracy(cm) == pytest.approx(3 / 5)
    assert metrics.mean_class_accuracy(cm) == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_absent_class_is_left_out_of_the_mean():
    cm = metrics.confusion_matrix(LABELS, PREDS, 4, ignore_label=255)  # class 3 never appears
    ious = metrics.per_class_iou(cm)
    assert np.isnan(ious[3])
    assert metrics.mean_iou(cm) == pytest.approx(1 / 3)
    assert metrics.summary(cm, ["a", "b", "c", "d"])["per_class_iou"]["d"] is None


def test_ignore_label_inside_class_range_is_ignored():
    # CamVid: 11 classes 0..10, void = 11 is ignored even though 11 < num_classes would be false anyway
    labels = np.array([0, 11, 1]); preds = np.array([0, 0, 0])
    cm = metrics.confusion_matrix(labels, preds, 12, ignore_label=11)
    assert cm.sum() == 2 and cm[11].sum() == 0


def test_bootstrap_interval_contains_point_estimate_and_shrinks_with_agreement():
    rng = np.random.RandomState(1)
    per_image = []
    for _ in range(30):
        labels = rng.randint(0, 3, 200)
        preds = np.where(rng.rand(200) < 0.7, labels, rng.randint(0, 3, 200))
        per_image.append(metrics.confusion_matrix(labels, preds, 3))
    total = np.sum(per_image, axis=0)
    low, high = metrics.bootstrap_miou(per_image, samples=300)
    assert low <= metrics.mean_iou(total) <= high
    assert 0 < high - low < 0.2
    same = [total // 30] * 30  # identical images: no spread
    low2, high2 = metrics.bootstrap_miou(same, samples=50)
    assert high2 - low2 == pytest.approx(0.0)


def test_format_miou():
    assert metrics.format_miou(0.6213, (0.6131, 0.6294)) == "mIoU 62.1 % (95 % CI 61.3-62.9)"

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


# ----------------------------------------------------------------------------- fwIoU, F1, calibration by hand
def test_frequency_weighted_iou_and_f1_by_hand():
    cm = metrics.confusion_matrix(LABELS, PREDS, 3, ignore_label=255)  # [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    # truth pixels per class 2, 2, 1 of 5; IoU 1/3, 2/3, 0
    assert metrics.frequency_weighted_iou(cm) == pytest.approx((2 * 1 / 3 + 2 * 2 / 3 + 1 * 0) / 5)
    # F1 = 2TP / (2TP + FP + FN): class 0: 2 / (2 + 1 + 1), class 1: 4 / (4 + 1 + 0), class 2: 0 / (0 + 0 + 1)
    np.testing.assert_allclose(metrics.per_class_f1(cm), [0.5, 0.8, 0.0])
    assert metrics.mean_f1(cm) == pytest.approx(1.3 / 3)
    absent = metrics.confusion_matrix(LABELS, PREDS, 4, ignore_label=255)  # class 3 nowhere: no F1, no weight
    assert np.isnan(metrics.per_class_f1(absent)[3]) and metrics.mean_f1(absent) == pytest.approx(1.3 / 3)
    assert metrics.frequency_weighted_iou(absent) == metrics.frequency_weighted_iou(cm)
    # a class predicted but absent from the truth has IoU 0 and weight 0 in fwIoU, F1 0 in the mean F1
    spurious = np.array([[3, 1], [0, 0]])
    assert metrics.frequency_weighted_iou(spurious) == pytest.approx(3 / 4)
    np.testing.assert_allclose(metrics.per_class_f1(spurious), [6 / 7, 0.0])
    summary = metrics.summary(cm, ["a", "b", "c"])
    assert summary["fwIoU"] == pytest.approx(2 / 5) and summary["per_class_F1"] == {"a": 0.5, "b": 0.8, "c": 0.0}
    assert np.isnan(metrics.frequency_weighted_iou(np.zeros((2, 2))))


def test_expected_calibration_error_by_hand():
    # 4 bins: [0, .25) [.25, .5) [.5, .75) [.75, 1]
    confidence = np.array([0.9, 0.9, 0.8, 0.6, 0.6, 0.3, 1.0])
    correct = np.array([1, 1, 0, 1, 0, 0, 1], bool)
    histogram = metrics.calibration_histogram(confidence, correct, bins=4)
    np.testing.assert_allclose(histogram, [[0, 0, 0], [1, 0.3, 0], [2, 1.2, 1], [4, 3.6, 3]])
    # ECE = sum over bins of (pixels / all) * |accuracy - mean confidence|
    expected = (1 * abs(0 - 0.3) + 2 * abs(0.5 - 0.6) + 4 * abs(0.75 - 0.9)) / 7
    assert metrics.expected_calibration_error(histogram) == pytest.approx(expected)
    table = metrics.reliability(histogram)
    assert table["bin_edges"] == [0, 0.25, 0.5, 0.75, 1.0] and table["pixels"] == [0, 1, 2, 4]
    assert table["accuracy"] == [None, 0.0, 0.5, 0.75] and table["mean_confidence"][3] == pytest.approx(0.9)
    # histograms add over images; a perfectly calibrated set has ECE 0
    halves = metrics.calibration_histogram(confidence[:3], correct[:3], 4) + \
        metrics.calibration_histogram(confidence[3:], correct[3:], 4)
    np.testing.assert_allclose(halves, histogram)
    assert metrics.expected_calibration_error(metrics.calibration_histogram([0.5, 0.5], [True, False], 4)) == 0.0


def test_bootstrap_interval_of_vectors_and_of_calibration():
    same = [np.array([[5, 1], [2, 7]])] * 6
    low, high = metrics.bootstrap_interval(same, metrics.per_class_iou, samples=50)
    np.testing.assert_allclose(low, metrics.per_class_iou(same[0]))
    np.testing.assert_allclose(high, low)
    rng = np.random.RandomState(3)
    per_image = [metrics.calibration_histogram(rng.rand(100), rng.rand(100) < 0.5, 10) for _ in range(20)]
    ece = metrics.expected_calibration_error(np.sum(per_image, 0))
    low, high = metrics.bootstrap_interval(per_image, metrics.expected_calibration_error, samples=200)
    assert low <= ece <= high and high > low
    # one seed, one set of resampled images: the mIoU interval is the one bootstrap_miou gives
    confusions = [metrics.confusion_matrix(rng.randint(0, 3, 50), rng.randint(0, 3, 50), 3) for _ in range(10)]
    assert metrics.bootstrap_interval(confusions, metrics.mean_iou, 100) == metrics.bootstrap_miou(confusions, 100)


def test_non_finite_confidences_belong_to_no_bin():
    histogram = metrics.calibration_histogram([0.95, np.nan, np.inf, 0.05], [True, True, False, False], bins=10)
    assert histogram[:, 0].sum() == 2 and histogram[9].tolist() == [1, 0.95, 1] and histogram[0].tolist() == [1, 0.05, 0]

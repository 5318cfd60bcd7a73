"""utils/inference.py and utils/evaluation.py: geometry undone exactly, scores checked by hand, the trained run."""
import numpy as np
import pytest

import decoders
import nets
from utils import metrics
from utils.compat import tf
from utils.data.dataset_info import dataset_files
from utils.data.pipeline import make_dataset, scaled_size
from utils.data.records import parse_record
from utils.inference import clusters, evaluation
from utils.inference.geometry import parse_scales, same_size_batches, scaled_canvas
from utils.inference.segmenter import Segmenter
from utils.training.runfolder import checkpoint_step

NUM_CLASSES = 4
IGNORE = 255
STEP = 40  # red value per class: class c is painted with red = STEP * c


def red_channel_model(images):
    """Fake net: one-hot logits (10 for the class whose red value the pixel has, else 0).

    Zero padding (red 0) reads as class 0, so an uncropped canvas shows up as wrong class-0 pixels.
    """
    red = images[..., 0:1]
    centres = tf.constant([STEP * c for c in range(NUM_CLASSES)], tf.float32)
    return 10.0 * tf.cast(tf.abs(red - centres) < STEP / 2.0, tf.float32)


def block_scene(height, width, block, seed):
    """Random class per aligned block x block tile; the image paints class c with red STEP * c."""
    rng = np.random.RandomState(seed)
    tiles = rng.randint(1, NUM_CLASSES, size=(height // block, width // block))  # classes 1..3: padding is 0
    classes = np.kron(tiles, np.ones((block, block), np.int64)).astype(np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = classes * STEP
    image[..., 1] = 77
    return image, classes


@pytest.fixture(scope="module")
def fake_segmenter():
    seg = Segmenter.from_logits_fn(red_channel_model, NUM_CLASSES, pixels=64, batch_size=3,
                                   class_names=["zero", "one", "two", "three"], ignore_label=IGNORE)
    yield seg
    seg.close()


# --------------------------------------------------------------------------- geometry
def test_scaled_canvas_matches_the_pipeline():
    assert scaled_canvas(360, 480, 256) == (scaled_size(360, 480, 256), (256, 256)) == ((192, 256), (256, 256))
    assert scaled_canvas(360, 480, 256, 0.75) == ((144, 192), (192, 192))
    assert scaled_canvas(360, 480, 0) == ((360, 480), (360, 480))
    assert scaled_canvas(360, 480, 0, 0.5) == ((180, 240), (180, 240))


def test_undoing_resize_and_padding_maps_back_exactly(fake_segmenter):
    """128x96 -> 64x48 on a 64x64 canvas (16 rows of padding) -> back: every pixel's class survives."""
    image, classes = block_scene(96, 128, block=8, seed=0)
    prediction, probabilities = fake_segmenter.segment(image, probabilities=True)
    assert prediction.shape == classes.shape == (96, 128)
    np.testing.assert_array_equal(prediction, classes)
    assert probabilities.shape == (96, 128, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


def test_mixed_sizes_come_back_at_their_own_size_in_order(fake_segmenter):
    scenes = [block_scene(96, 128, 8, 1), block_scene(64, 32, 8, 2), block_scene(96, 128, 8, 3),
              block_scene(128, 128, 8, 4)]
    predictions = fake_segmenter.segment([image for image, _ in scenes])
    for prediction, (_, classes) in zip(predictions, scenes):
        np.testing.assert_array_equal(prediction, classes)
    # a [N, H, W, 3] array is a batch
    batch = fake_segmenter.segment(np.stack([scenes[0][0], scenes[2][0]]))
    np.testing.assert_array_equal(batch[1], scenes[2][1])


def test_multiscale_and_flip_average_probabilities_at_original_size(fake_segmenter):
    image, classes = block_scene(96, 128, 8, 5)
    single, single_probs = fake_segmenter.segment(image, probabilities=True)
    same, same_probs = fake_segmenter.segment(image, probabilities=True, scales=[1.0], flip=False)
    np.testing.assert_array_equal(single, same)
    np.testing.assert_array_equal(single_probs, same_probs)
    multi, multi_probs = fake_segmenter.segment(image, probabilities=True, scales="1,0.5", flip=True)
    assert multi_probs.shape == single_probs.shape
    np.testing.assert_allclose(multi_probs.sum(-1), 1.0, atol=1e-5)
    # scale 1 alone is exact; averaging in the coarse scale may blur tile borders but not tile centres
    np.testing.assert_array_equal(multi[4::8, 4::8], classes[4::8, 4::8])
    # averaging = mean of the four passes, each mapped back to the original (unflipped) frame
    passes = [fake_segmenter.segment(picture, probabilities=True, scales=[scale])[1]
              for scale in (1.0, 0.5) for picture in (image, image[:, ::-1])]
    expected = (passes[0] + passes[1][:, ::-1] + passes[2] + passes[3][:, ::-1]) / 4.0
    np.testing.assert_allclose(multi_probs, expected, atol=1e-5)


def test_native_resolution_is_identity_geometry():
    seg = Segmenter.from_logits_fn(red_channel_model, NUM_CLASSES, pixels=0)
    try:
        image, classes = block_scene(40, 72, 4, 6)  # not multiples of 32: the arch pads, we crop
        np.testing.assert_array_equal(seg.segment(image), classes)
    finally:
        seg.close()


def test_native_resolution_falls_back_to_static_shapes_when_the_net_needs_them():
    """Decoders such as DeepLab declare they need static shapes: one copy per image size instead of a dynamic one."""
    def static_only(images):
        if None in images.shape[1:3].as_list():
            raise ValueError("needs static spatial shapes")
        return red_channel_model(images)

    assert decoders.get("DeepLabV3").needs_static_shapes and not decoders.get("LinkNet").needs_static_shapes
    seg = Segmenter.from_logits_fn(static_only, NUM_CLASSES, pixels=0, static_shapes=True)
    try:
        for height, width in ((40, 72), (24, 24)):
            image, classes = block_scene(height, width, 4, 7)
            np.testing.assert_array_equal(seg.segment(image), classes)
        assert seg.static_shapes and {key[0] for key in seg._ensembles} >= {((40, 72),), ((24, 24),)}
    finally:
        seg.close()


def test_helpers():
    assert same_size_batches([(2, 2), (3, 3), (2, 2), (2, 2), (3, 3)], 2) == [[0, 2], [3], [1, 4]]
    assert parse_scales("0.75, 1,1.25") == (0.75, 1.0, 1.25)
    with pytest.raises(ValueError):
        parse_scales("0,1")
    assert checkpoint_step("/a/model.ckpt-600") == 600 and checkpoint_step("/a/model.ckpt") is None


# --------------------------------------------------------------------------- scoring by hand
def test_image_confusion_and_summary_by_hand():
    label = np.array([[0, 0, 1, IGNORE], [1, 1, IGNORE, 0]])
    prediction = np.array([[0, 1, 1, 2], [1, 0, 3, 0]])  # classes 2 and 3 only where the label is ignored
    confusion = evaluation.image_confusion(prediction, label, NUM_CLASSES, IGNORE)
    np.testing.assert_array_equal(confusion, [[2, 1, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    report = evaluation.summarize([confusion], ["a", "b", "c", "d"], bootstrap=0)
    assert report["per_class_iou"] == {"a": 0.5, "b": 0.5, "c": None, "d": None}  # 2 / (2 + 1 + 1)
    assert report["mIoU"] == pytest.approx(0.5)
    assert report["pixel_accuracy"] == pytest.approx(4 / 6)
    assert report["mean_class_accuracy"] == pytest.approx(2 / 3)
    assert report["per_class_accuracy"]["c"] is None
    assert report["scored_pixels"] == 6 and report["mIoU_ci"] is None
    with pytest.raises(ValueError, match="original resolution"):
        evaluation.image_confusion(prediction[:, :3], label, NUM_CLASSES, IGNORE)


def test_score_split_at_original_resolution_by_hand(fake_segmenter):
    """Fake model on block scenes; labels disagree on known pixels and carry ignore pixels."""
    examples, expected = [], np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for seed in range(5):  # 5 images, batch size 3: a full and a partial batch
        image, classes = block_scene(96, 128, 8, 10 + seed)
        label = classes.copy()
        label[:8, :16] = IGNORE                        # not scored
        label[8:16, :8] = 0                            # truth class 0, predicted what the image says
        examples.append({"image": image, "label": label, "filename": "img%d.png" % seed})
        expected += metrics.confusion_matrix(label, classes, NUM_CLASSES, IGNORE)
    scored = evaluation.score_split(fake_segmenter, examples)
    assert scored.filenames == ["img%d.png" % s for s in range(5)]
    np.testing.assert_array_equal(scored.confusions.sum(0), expected)
    assert expected.sum() == 5 * (96 * 128 - 8 * 16)
    report = evaluation.summarize(scored.confusions, ["zero", "one", "two", "three"], bootstrap=200)
    tp, fp, fn = expected[1, 1], expected[:, 1].sum() - expected[1, 1], expected[1].sum() - expected[1, 1]
    assert report["per_class_iou"]["one"] == pytest.approx(tp / (tp + fp + fn))
    assert report["per_class_iou"]["zero"] == 0.0   # class 0 is in the truth but never predicted
    low, high = report["mIoU_ci"]
    assert low <= report["mIoU"] <= high


def test_bootstrap_interval_collapses_for_identical_images():
    confusion = np.array([[5, 1], [2, 7]])
    report = evaluation.summarize([confusion] * 6, ["a", "b"], bootstrap=100)
    assert report["mIoU_ci"] == pytest.approx([report["mIoU"]] * 2)
    assert evaluation.headline(report) == metrics.format_miou(report["mIoU"], report["mIoU_ci"])


def test_every_interval_resamples_the_same_sequences():
    """fwIoU, mean F1, per-class IoU and ECE get their CIs from the resampling the mIoU gets (--bootstrap_by)."""
    rng = np.random.RandomState(5)
    names = ["%s_%05d.png" % (sequence, frame) for sequence in ("0001TP", "0006R0", "0016E5", "Seq05VD", "Seq06ZZ")
             for frame in range(4)]
    confusions = [metrics.confusion_matrix(rng.randint(0, 3, 200), rng.randint(0, 3, 200), 3) for _ in names]
    calibration = [metrics.calibration_histogram(rng.rand(200), rng.rand(200) < 0.6, 10) for _ in names]
    report = evaluation.summarize(confusions, ["a", "b", "c"], bootstrap=300, calibration=calibration,
                                  filenames=names, family="camvid", bootstrap_by="sequence")
    ids = clusters.clusters_for(names, "camvid", "sequence")[0]
    assert len(set(ids)) == 5 and "sequence" in report["bootstrap_by"]

    def interval(stack, statistic):
        return list(metrics.bootstrap_interval(stack, statistic, 300, clusters=ids))

    assert report["mIoU_ci"] == list(metrics.bootstrap_miou(confusions, 300, clusters=ids))
    assert report["fwIoU_ci"] == interval(confusions, metrics.frequency_weighted_iou)
    assert report["mean_F1_ci"] == interval(confusions, metrics.mean_f1)
    assert report["ECE_ci"] == interval(calibration, metrics.expected_calibration_error)
    np.testing.assert_allclose([report["per_class_iou_ci"][n] for n in "abc"],
                               np.transpose(interval(confusions, metrics.per_class_iou)))
    by_image = evaluation.summarize(confusions, ["a", "b", "c"], bootstrap=300, calibration=calibration,
                                    filenames=names, family="camvid", bootstrap_by="image")
    assert by_image["fwIoU_ci"] == list(metrics.bootstrap_interval(confusions, metrics.frequency_weighted_iou, 300))
    assert by_image["fwIoU_ci"] != report["fwIoU_ci"]
    for key in ("fwIoU", "mean_F1", "ECE"):
        assert report[key + "_ci"][0] <= report[key] <= report[key + "_ci"][1]


def test_checkpoint_spread_by_hand():
    spread = evaluation.checkpoint_spread({6: 0.4, 3: 0.2})
    assert spread["steps"] == [3, 6] and spread["mIoU"] == [0.2, 0.4]
    assert (spread["min"], spread["max"]) == (0.2, 0.4)
    assert spread["mean"] == pytest.approx(0.3) and spread["std"] == pytest.approx(0.1)
    assert evaluation.format_spread(spread) == \
        "mIoU over checkpoints 3, 6: min 20.0 %, max 40.0 %, mean 30.0 %, std 10.0 %"


def test_confusion_csv_round_trip(tmp_path):
    path = str(tmp_path / "c.csv")
    evaluation.write_confusion_csv(path, [[1, 2], [3, 4]], ["a", "b"])
    matrix, names = evaluation.read_confusion_csv(path)
    np.testing.assert_array_equal(matrix, [[1, 2], [3, 4]])
    assert names == ["a", "b"]


# --------------------------------------------------------------------------- the trained run
@pytest.fixture(scope="module")
def trained(tiny_run):
    seg = Segmenter(tiny_run["folder"])
    yield seg
    seg.close()


def test_segmenter_reads_everything_from_the_run(trained, tiny_run):
    assert trained.step == 6 and trained.checkpoint.endswith("model.ckpt-6")
    assert trained.pixels == 64 and trained.batch_size == 2
    assert trained.num_classes == 11 and trained.ignore_label == 11
    assert trained.class_names[3] == "Road" and len(trained.palette) == 11
    assert trained.describe().startswith("resnet_v1_18_LinkNet step 6")


def test_trained_run_segments_any_size_and_restores_milestones(trained):
    rng = np.random.RandomState(0)
    images = [rng.randint(0, 256, (90, 120, 3)).astype(np.uint8), rng.randint(0, 256, (50, 30, 3)).astype(np.uint8)]
    maps, probs = trained.segment(images, probabilities=True)
    assert [m.shape for m in maps] == [(90, 120), (50, 30)] and maps[0].dtype == np.uint8
    np.testing.assert_array_equal(maps[0], np.argmax(probs[0], -1))
    np.testing.assert_array_equal(trained.segment(images[0]), maps[0])  # single-pass (argmax in graph) agrees
    np.testing.assert_allclose(probs[1].sum(-1), 1.0, atol=1e-4)
    multi = trained.segment(images[0], probabilities=True, scales=(0.75, 1, 1.25), flip=True)[1]
    assert multi.shape == probs[0].shape and not np.allclose(multi, probs[0])
    trained.restore(3)
    try:
        assert trained.step == 3
        assert not np.allclose(trained.segment(images[0], probabilities=True)[1], probs[0])
    finally:
        trained.restore(6)
    np.testing.assert_allclose(trained.segment(images[0], probabilities=True)[1], probs[0], atol=1e-6)


def test_folded_graph_equals_the_variable_graph_with_scales_and_flip(trained, tiny_run):
    """test.py's default (batch norm folded, net copies sharing weights) against the graph as trained."""
    image = np.random.RandomState(1).randint(0, 256, (70, 100, 3)).astype(np.uint8)
    settings = dict(probabilities=True, scales=(0.75, 1.25), flip=True)
    assert trained.fold_batch_norms and "batch norm folded" in trained.describe()
    with Segmenter(tiny_run["folder"], fold_batch_norms=False) as plain:
        expected = plain.segment(image, **settings)[1]
    np.testing.assert_allclose(trained.segment(image, **settings)[1], expected, atol=1e-5)


def test_net_input_equals_the_training_pipeline(tiny_run):
    """The canvas the net sees at test time is, value for value, what training fed it."""
    captured = []

    def capture(images):
        captured.append(images)
        return tf.zeros_like(images[..., :1])

    seg = Segmenter.from_logits_fn(capture, 1, pixels=64, preprocess=nets.get("resnet_v1_18").preprocess)
    try:
        files = dataset_files(tiny_run["datapath"], "camvid", "validation")
        with tf.Graph().as_default(), tf.Session() as sess:
            dataset = make_dataset(files, "torchvision", pixels=64, batch_size=1, ignore_label=11, training=False)
            pipeline = sess.run(tf.data.make_one_shot_iterator(dataset).get_next())
            decoded = sess.run(parse_record(next(iter(tf.io.tf_record_iterator(files[0])))))
        ensemble = seg._ensemble((1.0,), False, [scaled_size(360, 480, 64)], padded=True)
        canvas = [t for t in captured if t.shape[1] == 64][0]
        fed = seg.session.run(canvas, {ensemble.images: decoded["image"][None].astype(np.float32),
                                       ensemble.resized_sizes[0]: scaled_size(360, 480, 64)})
        np.testing.assert_allclose(fed, pipeline["image"], atol=1e-4)
    finally:
        seg.close()

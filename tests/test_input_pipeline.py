"""The tf.data input pipeline: shapes, padding, native size, aligned augmentation, seeding."""
import os

import numpy as np
import pytest

from tests.test_datasets import SAMPLE, convert_camvid
from utils.compat import tf
from utils.data import dataset_info
from utils.data import pipeline as ip
from utils.data.families.base import encode_png
from utils.data.records import ShardedRecordWriter, serialize_example
from utils.data.spec import DataSpec

IGNORE = 255
COLORS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)], np.uint8)


def write_records(directory, split, examples, shard_size=None):
    """examples: [(name, image uint8 HxWx3, label uint8 HxW)] -> record files, as the converter writes them."""
    writer = ShardedRecordWriter(str(directory), split, shard_size)
    for name, image, label in examples:
        writer.write(serialize_example(encode_png(image), "png", encode_png(label), image.shape[0], image.shape[1], name))
    return [os.path.join(str(directory), f) for f in writer.commit()]


def coloured_example(name, height, width, seed, block=6):
    """Label = random blocks of classes 0..4; image = each class's colour: the colour encodes the label."""
    rng = np.random.RandomState(seed)
    blocks = rng.randint(0, len(COLORS), (-(-height // block), -(-width // block)))
    label = np.kron(blocks, np.ones((block, block), np.int64))[:height, :width].astype(np.uint8)
    label[:, :2] = 0  # asymmetric left edge
    return name, COLORS[label], label


def run_batches(dataset, count):
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    with tf.Session() as sess:
        return [sess.run(batch) for _ in range(count)]


@pytest.fixture
def small_records(tmp_path):
    examples = [coloured_example("a.png", 24, 32, 0), coloured_example("b.png", 30, 20, 1),
                coloured_example("c.png", 16, 16, 2)]
    return write_records(tmp_path, "training", examples), examples


def test_shapes_dtypes_padding_and_ignore(small_records):
    files, examples = small_records
    dataset = ip.make_dataset(files, None, pixels=64, batch_size=3, ignore_label=IGNORE, training=False)
    shapes = tf.data.get_output_shapes(dataset)
    assert shapes["image"].as_list() == [None, 64, 64, 3] and shapes["label"].as_list() == [None, 64, 64]
    (batch,) = run_batches(dataset, 1)
    assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
    assert list(batch["filename"]) == [b"a.png", b"b.png", b"c.png"]  # file order when not training
    np.testing.assert_array_equal(batch["height"], [24, 30, 16])
    np.testing.assert_array_equal(batch["width"], [32, 20, 16])
    np.testing.assert_allclose(batch["scale"], [2.0, 64 / 30.0, 4.0], rtol=1e-6)
    # a.png: 24x32 -> 48x64, the rest of the 64x64 canvas is padding
    assert ip.scaled_size(24, 32, 64) == (48, 64) and ip.scaled_size(30, 20, 64) == (64, 43)
    assert (batch["label"][0, 48:] == IGNORE).all() and (batch["image"][0, 48:] == 0).all()
    assert (batch["label"][0, :48] != IGNORE).all()
    assert (batch["label"][1, :, 43:] == IGNORE).all() and (batch["label"][1, :, :43] != IGNORE).all()
    np.testing.assert_array_equal(batch["label"][2], np.kron(examples[2][2], np.ones((4, 4), np.uint8)))


def test_padding_is_zero_after_normalisation(small_records):
    files, examples = small_records
    raw = run_batches(ip.make_dataset(files, None, 64, 3, IGNORE, training=False), 1)[0]
    vgg = run_batches(ip.make_dataset(files, "vgg", 64, 3, IGNORE, training=False), 1)[0]
    np.testing.assert_allclose(vgg["image"][0, :48], raw["image"][0, :48] - np.array([123.68, 116.78, 103.94]),
                               atol=1e-3)
    assert (vgg["image"][0, 48:] == 0).all()
    inception = run_batches(ip.make_dataset(files, "mobilenet_v1", 64, 3, IGNORE, training=False), 1)[0]
    assert inception["image"][0, :48].min() >= -1.0 and (inception["image"][0, 48:] == 0).all()


def test_native_size_pads_each_batch_to_its_largest_image(small_records):
    files, examples = small_records
    dataset = ip.make_dataset(files, None, pixels=0, batch_size=2, ignore_label=IGNORE, training=False)
    first, second = run_batches(dataset, 2)
    assert first["image"].shape == (2, 30, 32, 3) and first["label"].shape == (2, 30, 32)
    np.testing.assert_array_equal(first["label"][0, :24, :32], examples[0][2])
    assert (first["label"][0, 24:] == IGNORE).all() and (first["label"][1, :, 20:] == IGNORE).all()
    np.testing.assert_array_equal(first["image"][0, :24, :32], examples[0][1])  # no resampling at all
    assert second["image"].shape == (1, 16, 16, 3) and (first["scale"] == 1).all()


def interior(label):
    """Pixels whose 3x3 neighbourhood has one class (bilinear blending only happens at borders)."""
    padded = np.pad(label, 1, mode="edge")
    same = np.ones(label.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= padded[dy:dy + label.shape[0], dx:dx + label.shape[1]] == label
    return same & (label != IGNORE)


def colour_class(image):
    return np.argmin(((image[..., None, :] - COLORS.astype(np.float32)) ** 2).sum(-1), axis=-1)


@pytest.mark.parametrize("pixels", [64, 0])
def test_augmentation_keeps_image_and_label_aligned(tmp_path, pixels):
    files = write_records(tmp_path, "training", [coloured_example("x%d.png" % i, 40, 56, i) for i in range(4)])
    dataset = ip.make_dataset(files, None, pixels=pixels, batch_size=4, ignore_label=IGNORE, training=True,
                              seed=7, scale_range=(0.6, 1.6))
    sizes, flipped = set(), 0
    for batch in run_batches(dataset, 6):
        for image, label in zip(batch["image"], batch["label"]):
            mask = interior(label)
            assert mask.sum() > 200
            agreement = (colour_class(image)[mask] == label[mask]).mean()
            assert agreement > 0.99, agreement
            valid = label != IGNORE
            sizes.add((valid.any(1).sum(), valid.any(0).sum()))
            flipped += int((label[:, -2:][valid[:, -2:]] == 0).all() and not (label[:, :2][valid[:, :2]] == 0).all())
    assert len(sizes) > 3  # the stretch really varies the size
    assert flipped > 0  # and some examples were mirrored (left edge of class 0 ends up on the right)


def test_random_crop_stays_inside_the_stretched_image(tmp_path):
    files = write_records(tmp_path, "training", [coloured_example("big.png", 80, 80, 3)])
    dataset = ip.make_dataset(files, None, pixels=32, batch_size=1, ignore_label=IGNORE, training=True, seed=1,
                              scale_range=(1.0, 1.5), flip=False)
    crops = [b["label"][0] for b in run_batches(dataset, 5)]
    assert all((c != IGNORE).all() for c in crops)  # stretched >= 32: no padding shows
    assert len({c.tobytes() for c in crops}) > 1  # different windows


def test_crop_cuts_windows_of_the_scaled_frame_and_leaves_validation_whole(tmp_path):
    """--pixels 80 --crop 24: 24x24 windows at the 80-pixel scale (a block stays 6 pixels wide), not the frame
    shrunk to 24; validation data ignores --crop."""
    files = write_records(tmp_path, "training", [coloured_example("big.png", 60, 80, 3)])
    _, _, label = coloured_example("big.png", 60, 80, 3)
    dataset = ip.make_dataset(files, None, pixels=80, batch_size=1, ignore_label=IGNORE, training=True, seed=1,
                              scale_range=(1.0, 1.0), flip=False, crop=24)
    assert tf.data.get_output_shapes(dataset)["label"].as_list() == [1, 24, 24]
    windows = [b["label"][0] for b in run_batches(dataset, 6)]
    assert len({w.tobytes() for w in windows}) > 1
    for window in windows:  # each window is a 24x24 piece of the full-scale label
        found = any((label[top:top + 24, left:left + 24] == window).all()
                    for top in range(60 - 23) for left in range(80 - 23))
        assert found
    with tf.Graph().as_default():
        whole = ip.make_dataset(files, None, pixels=80, batch_size=1, ignore_label=IGNORE, training=False, crop=24)
        assert tf.data.get_output_shapes(whole)["label"].as_list() == [None, 80, 80]
    with pytest.raises(ValueError, match="--crop"):
        DataSpec(crop=-1)


def test_color_jitter_changes_colours_only_and_is_seeded(tmp_path):
    """--color_jitter: images change, labels and geometry do not; the same seed gives the same colours."""
    files = write_records(tmp_path, "training", [coloured_example("c%d.png" % i, 40, 56, i) for i in range(4)])

    def batches(jitter, seed=3):
        with tf.Graph().as_default():
            dataset = ip.make_dataset(files, None, pixels=48, batch_size=4, ignore_label=IGNORE, training=True,
                                      seed=seed, color_jitter=jitter)
            return run_batches(dataset, 2)

    plain, jittered, again = batches(0.0), batches(0.4), batches(0.4)
    for a, b, c in zip(plain, jittered, again):
        np.testing.assert_array_equal(a["label"], b["label"])
        np.testing.assert_array_equal(b["image"], c["image"])
        assert np.abs(a["image"] - b["image"]).mean() > 1.0
        assert b["image"].min() >= 0.0 and b["image"].max() <= 255.0


def test_augmentation_settings_are_declared_with_their_checks():
    assert DataSpec().scale_bounds == (0.75, 1.25) and DataSpec(scale_range="0.5,2").scale_bounds == (0.5, 2.0)
    for bad, flag in ((dict(scale_range="2,1"), "--scale_range"), (dict(scale_range="big"), "--scale_range"),
                      (dict(color_jitter=2.0), "--color_jitter"), (dict(pixels=-5), "--pixels")):
        with pytest.raises(ValueError, match=flag):
            DataSpec(**bad)


def batches_of(files, seed, count=3):
    with tf.Graph().as_default():
        dataset = ip.make_dataset(files, "vgg", pixels=48, batch_size=2, ignore_label=IGNORE, training=True,
                                  seed=seed, shuffle_buffer=8)
        return run_batches(dataset, count)


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
    files = write_records(tmp_path, "training", [coloured_example("s%d.png" % i, 24, 40, i) for i in range(6)],
                          shard_size=2)
    assert len(files) == 3
    first, second, other = batches_of(files, 5), batches_of(files, 5), batches_of(files, 6)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert any(not np.array_equal(a["image"], c["image"]) for a, c in zip(first, other))


def test_training_repeats_and_drops_remainder_validation_does_not(small_records):
    files, _ = small_records
    train = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=True)
    assert tf.data.get_output_shapes(train)["image"].as_list() == [2, 32, 32, 3]
    assert len(run_batches(train, 5)) == 5  # 3 records, 5 batches of 2: repeated
    val = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=False)
    batch = tf.data.make_one_shot_iterator(val).get_next()
    sizes = []
    with tf.Session() as sess:
        with pytest.raises(tf.errors.OutOfRangeError):
            while True:
                sizes.append(len(sess.run(batch["filename"])))
    assert sizes == [2, 1]


def test_feedable_iterator_switches_between_train_and_val(small_records):
    files, _ = small_records
    train = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=True, seed=0)
    val = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=False)
    feed = ip.make_feedable_iterator(train, val)
    assert feed.next_batch["image"].shape.as_list() == [None, 32, 32, 3]
    with tf.Session() as sess:
        train_handle, val_handle = feed.start(sess)
        for _ in range(4):
            assert sess.run(feed.next_batch["image"], {feed.handle: train_handle}).shape == (2, 32, 32, 3)
        names = [list(sess.run(feed.next_batch["filename"], {feed.handle: val_handle})) for _ in range(2)]
        assert names == [[b"a.png", b"b.png"], [b"c.png"]]
        with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(feed.next_batch["label"], {feed.handle: val_handle})
        sess.run(feed.val_iterator.initializer)  # rewind validation, training continues
        assert len(sess.run(feed.next_batch["filename"], {feed.handle: val_handle})) == 2


def test_feedable_iterator_refuses_incompatible_datasets(small_records):
    files, _ = small_records
    train = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=True)
    val = ip.make_dataset(files, None, 32, batch_size=2, ignore_label=IGNORE, training=False).map(
        lambda d: dict(d, label=tf.cast(d["label"], tf.int64)))
    with pytest.raises(ValueError, match="differ"):
        ip.make_feedable_iterator(train, val)


def test_missing_records_name_the_command_that_makes_them(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        dataset_info.dataset_files(str(tmp_path), "camvid", "val")
    assert "python utils/tfrecordify.py --dataset_family camvid --datapath %s" % tmp_path in str(error.value)


def test_dataset_files_info_and_dataset_for_on_the_embedded_sample(tmp_path):
    convert_camvid(SAMPLE, tmp_path)
    assert dataset_info.dataset_files(str(tmp_path), "camvid", "train") == [str(tmp_path / "camvid" / "training.tfrecords")]
    info = dataset_info.load_dataset_info(str(tmp_path), "camvid")
    assert info["num_classes"] == 11 and info["total_train_images"] == 24 and info["ignore_label"] == 11
    dataset = ip.dataset_for(str(tmp_path), "camvid", "val", "inception", pixels=96, batch_size=4)
    (batch,) = run_batches(dataset, 1)
    assert batch["image"].shape == (4, 96, 96, 3) and set(np.unique(batch["label"])) <= set(range(12))
    assert (batch["label"][:, 72:] == 11).all()  # 480x360 -> 96x72, then ignore padding
    assert dataset_info.load_dataset_info(str(tmp_path / "nothing"), "camvid")["total_train_images"] is None


def test_cache_gives_the_same_batches(small_records):
    files, _ = small_records
    plain = run_batches(ip.make_dataset(files, None, 32, 3, IGNORE, training=True, seed=2), 2)
    with tf.Graph().as_default():
        cached = run_batches(ip.make_dataset(files, None, 32, 3, IGNORE, training=True, seed=2, cache=True), 2)
    for a, b in zip(plain, cached):
        np.testing.assert_array_equal(a["label"], b["label"])


def test_preprocessing_resolution():
    assert ip.resolve_preprocessing(None)(3.0) == 3.0
    assert ip.resolve_preprocessing(lambda x: x * 2)(3.0) == 6.0
    from nets import preprocessing
    assert ip.resolve_preprocessing("torchvision") is preprocessing.torchvision
    with pytest.raises(ValueError, match="unknown preprocessing"):
        ip.resolve_preprocessing("caffe")

"""Dataset families and the TFRecord converter: real CamVid, synthetic layouts, bad input.

Helpers here (write_png, make_camvid_layout, convert_tiny_camvid, ...) are reused by
the pipeline and label-checker tests.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CAMVID, ROOT, requires
from utils.data import convert, families, statistics
from utils.data.families.base import (DatasetError, EmptySplitError, LabelValueError, SizeMismatchError,
                                 UnreadableFileError, holdout_split)
from utils.data.records import count_records, find_record_files, read_examples

SAMPLE = os.path.join(ROOT, "data", "camvid_sample")


# --- helpers ------------------------------------------------------------------
def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path)
    return path


def write_jpg(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, "JPEG", quality=95)
    return path


def random_image(h, w, seed):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def random_label(h, w, seed, num_classes, ignore=None):
    label = np.random.RandomState(seed + 1000).randint(0, num_classes, (h, w)).astype(np.uint8)
    if ignore is not None:
        label[0, :] = ignore
    return label


def make_camvid_layout(root, counts=None, size=(24, 32), ext=".png", label_fn=None):
    """A tiny CamVid tree in the SegNet layout, list files with /SegNet/CamVid/... paths."""
    counts = counts or {"train": 3, "val": 2}
    h, w = size
    for split, count in counts.items():
        lines = []
        for i in range(count):
            name = "seq_%s_%03d" % (split, i)
            image = random_image(h, w, i + 100 * ("train", "val", "test").index(split))
            label = label_fn(i) if label_fn else random_label(h, w, i, 11, ignore=11)
            (write_jpg if ext == ".jpg" else write_png)(os.path.join(root, split, name + ext), image)
            write_png(os.path.join(root, split + "annot", name + ".png"), label)
            lines.append("/SegNet/CamVid/%s/%s%s /SegNet/CamVid/%sannot/%s.png" % (split, name, ext, split, name))
        with open(os.path.join(root, split + ".txt"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return root


def convert_camvid(src, out, **kwargs):
    family = families.create("camvid", datapath=str(out), camvid_path=str(src))
    kwargs.setdefault("progress", False)
    return convert.convert(family, os.path.join(str(out), "camvid"), **kwargs)


# --- registry -------------------------------------------------------------------
def test_registry_lists_all_families_and_rejects_unknown_names():
    assert set(families.NAMES) == {"camvid", "pascal_seg", "cityscapes", "kitti_road", "coco_stuff", "ade20k", "folder",
                                   "coco_json", "labelme", "cvat_mask"}
    with pytest.raises(families.UnknownDatasetError) as error:
        families.get("camvidd")
    for name in families.NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("name, classes, ignore", [("camvid", 11, 11), ("pascal_seg", 21, 255),
                                                   ("cityscapes", 19, 255), ("kitti_road", 2, 255),
                                                   ("coco_stuff", 182, 255)])
def test_family_metadata_is_consistent(name, classes, ignore):
    family = families.get(name)
    assert len(family.class_names) == classes and len(family.palette) == classes
    assert family.ignore_label == ignore and family.default_pixels > 0
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in family.palette)
    assert len(set(map(tuple, family.palette))) == classes  # distinguishable colours


def test_camvid_palette_is_the_segnet_one():
    camvid = families.get("camvid")
    assert camvid.palette[0] == (128, 128, 128) and camvid.class_names[0] == "Sky"
    assert camvid.palette[3] == (128, 64, 128) and camvid.class_names[3] == "Road"
    assert camvid.palette[10] == (0, 128, 192) and camvid.class_names[10] == "Bicyclist"


def test_holdout_split_is_deterministic_and_disjoint():
    names = ["img_%02d" % i for i in range(20)]
    train, val = holdout_split(names, 0.25, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == names
    assert holdout_split(list(reversed(names)), 0.25, seed=3) == (train, val)
    assert holdout_split(names, 0.25, seed=4)[1] != val


# --- the real CamVid -------------------------------------------------------------
@pytest.fixture(scope="module")
def real_camvid(tmp_path_factory):
    if not os.path.isdir(CAMVID):
        pytest.skip("needs %s" % CAMVID)
    out = tmp_path_factory.mktemp("real_camvid")
    return convert_camvid(CAMVID, out, workers=2)


def test_real_camvid_converts_with_expected_counts_and_labels(real_camvid):
    assert real_camvid.splits["training"].records == 367
    assert real_camvid.splits["validation"].records == 101
    assert not real_camvid.splits["training"].skipped
    training = os.path.join(real_camvid.outdir, "training.tfrecords")
    assert os.path.isfile(training) and count_records(training) == 367
    values, first = set(), None
    for example in read_examples(find_record_files(real_camvid.outdir, "validation")):
        first = first or example
        values |= set(np.unique(example["label"]).tolist())
        assert example["label"].shape == example["image"].shape[:2] == (360, 480)
    assert values <= set(range(12)) and len(values) == 12
    # original PNG bytes are kept, not re-encoded
    assert first["format"] == "png" and first["filename"] == "0016E5_07959.png"
    source = np.asarray(Image.open(os.path.join(CAMVID, "val", "0016E5_07959.png")))
    np.testing.assert_array_equal(first["image"], source)


def test_real_camvid_dataset_json(real_camvid):
    with open(os.path.join(real_camvid.outdir, "dataset.json")) as handle:
        info = json.load(handle)
    assert info["family"] == "camvid" and info["num_classes"] == 11 and info["ignore_label"] == 11
    assert info["total_train_images"] == 367 and info["class_names"][0] == "Sky"
    assert info["palette"][0] == [128, 128, 128]
    assert info["splits"]["validation"]["records"] == 101
    assert info["splits"]["validation"]["files"] == ["validation.tfrecords"]
    assert len(info["splits"]["training"]["examples"]) == 367


def test_class_statistics_are_recorded_and_filled_in_for_older_conversions(tmp_path):
    """dataset.json holds per-class pixel, image and image-pixel counts of each split (ignore label apart),
    equal to counts from the label files; a dataset.json without them gets them from the records, once."""
    src = make_camvid_layout(str(tmp_path / "src"), counts={"train": 5, "val": 2})
    summary = convert_camvid(src, tmp_path / "out")
    expected = statistics.ClassCounts(11, 11)
    for name in sorted(os.listdir(os.path.join(src, "trainannot"))):
        expected.add(np.asarray(Image.open(os.path.join(src, "trainannot", name))))
    path = os.path.join(summary.outdir, "dataset.json")
    info = json.load(open(path))
    assert info["schema_version"] == 2
    for key, values in expected.as_dict().items():
        assert info["splits"]["training"][key] == values, key
    assert sum(info["splits"]["training"]["class_pixels"]) == 5 * 24 * 32 - 5 * 32  # row 0 is ignored
    for entry in info["splits"].values():  # a conversion made before the statistics existed
        for key in statistics.KEYS:
            del entry[key]
    json.dump(info, open(path, "w"))
    messages = []
    datapath = os.path.dirname(summary.outdir)
    assert statistics.split_statistics(datapath, "camvid", "training", log=messages.append) == expected.as_dict()
    assert statistics.split_statistics(datapath, "camvid", "training", log=messages.append) == expected.as_dict()
    assert len(messages) == 1 and "counting them from 1 record file(s) (once)" in messages[0]


@requires(SAMPLE)
def test_embedded_sample_converts_with_jpeg_images(tmp_path):
    summary = convert_camvid(SAMPLE, tmp_path)
    assert summary.splits["training"].records == 24 and summary.splits["validation"].records == 8
    example = next(read_examples(find_record_files(summary.outdir, "training")))
    assert example["format"] == "jpeg" and example["image"].shape == (360, 480, 3)
    names = summary.splits["training"].examples
    assert {n[:6] for n in names} == {"0001TP", "0006R0", "0016E5"}
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(SAMPLE) for f in fs)
    assert size < 3.2e6


# --- synthetic layouts of every family -----------------------------------------------
def test_camvid_layout_without_list_files_pairs_by_stem(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    os.remove(os.path.join(src, "train.txt"))
    family = families.create("camvid", camvid_path=src)
    assert [e.name for e in family.examples("training")] == ["seq_train_000.png", "seq_train_001.png",
                                                             "seq_train_002.png"]


def test_camvid_test_split_is_converted_when_present(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 2, "val": 1, "test": 2})
    summary = convert_camvid(src, tmp_path / "out")
    assert list(summary.splits) == ["training", "validation", "test"]
    assert count_records(os.path.join(summary.outdir, "test.tfrecords")) == 2


def make_voc_sbd(root, sbd_train=("a", "b"), sbd_val=("c",), voc_val=("c", "d", "e"), size=(20, 30)):
    from scipy.io import savemat
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    sbd = os.path.join(root, "benchmark_RELEASE", "dataset")
    palette = [v for color in families.get("pascal_seg").palette for v in color] + [224, 224, 192] * 235
    for i, name in enumerate(sorted(set(sbd_train) | set(sbd_val) | set(voc_val))):
        image = random_image(size[0], size[1], i)
        write_jpg(os.path.join(voc, "JPEGImages", name + ".jpg"), image)
        label = random_label(size[0], size[1], i, 21)
        label[:, 0] = 255
        seg = Image.frombytes("P", (size[1], size[0]), label.tobytes())
        seg.putpalette(palette[:768])
        os.makedirs(os.path.join(voc, "SegmentationClass"), exist_ok=True)
        seg.save(os.path.join(voc, "SegmentationClass", name + ".png"))
        if name in sbd_train or name in sbd_val:
            write_jpg(os.path.join(sbd, "img", name + ".jpg"), image)
            os.makedirs(os.path.join(sbd, "cls"), exist_ok=True)
            savemat(os.path.join(sbd, "cls", name + ".mat"),
                    {"GTcls": {"Segmentation": label, "Boundaries": np.zeros(1), "CategoriesPresent": np.arange(3)}})
    os.makedirs(os.path.join(voc, "ImageSets", "Segmentation"), exist_ok=True)
    for path, names in ((os.path.join(sbd, "train.txt"), sbd_train), (os.path.join(sbd, "val.txt"), sbd_val),
                        (os.path.join(voc, "ImageSets", "Segmentation", "val.txt"), voc_val)):
        with open(path, "w") as handle:
            handle.write("\n".join(names) + "\n")
    return voc, sbd


def test_pascal_seg_trains_on_all_sbd_and_validates_on_restricted_voc_val(tmp_path):
    voc, sbd = make_voc_sbd(str(tmp_path))
    family = families.create("pascal_seg", voc_path=voc, sbd_path=sbd)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    assert summary.splits["training"].examples == ["a.jpg", "b.jpg", "c.jpg"]
    assert summary.splits["validation"].examples == ["d.jpg", "e.jpg"]  # 'c' is in SBD val: excluded
    example = next(read_examples(os.path.join(summary.outdir, "training.tfrecords")))
    assert example["label"].max() == 255 and example["label"][:, 1:].max() <= 20
    expected = random_label(20, 30, 0, 21)
    expected[:, 0] = 255
    np.testing.assert_array_equal(example["label"], expected)  # the .mat segmentation, unchanged


def test_pascal_seg_refuses_overlapping_train_and_val(tmp_path, monkeypatch):
    voc, sbd = make_voc_sbd(str(tmp_path))
    family = families.create("pascal_seg", voc_path=voc, sbd_path=sbd)
    monkeypatch.setattr(type(family), "validation_names", lambda self: ["b", "d"])
    with pytest.raises(DatasetError, match="share 1 images"):
        family.examples("validation")


def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    root = tmp_path / "cityscapes"
    label_ids = np.array([[7, 8, 26, 33], [0, 1, 6, 24], [23, 11, 17, 30]], np.uint8)
    for split, city in (("train", "aachen"), ("val", "lindau")):
        stem = "%s_000000_000019" % city
        write_png(str(root / "leftImg8bit" / split / city / (stem + "_leftImg8bit.png")), random_image(3, 4, 1))
        write_png(str(root / "gtFine" / split / city / (stem + "_gtFine_labelIds.png")), label_ids)
    summary = convert.convert(families.create("cityscapes", cityscapes_path=str(root)), str(tmp_path / "out"),
                                  progress=False)
    assert summary.splits["training"].examples == ["aachen_000000_000019_leftImg8bit.png"]
    label = next(read_examples(os.path.join(summary.outdir, "validation.tfrecords")))["label"]
    np.testing.assert_array_equal(label, [[0, 1, 13, 18], [255, 255, 255, 11], [10, 2, 5, 255]])


def test_cityscapes_unknown_label_id_is_an_error(tmp_path):
    root = tmp_path / "cityscapes"
    write_png(str(root / "leftImg8bit" / "train" / "x" / "x_0_0_leftImg8bit.png"), random_image(2, 2, 1))
    write_png(str(root / "gtFine" / "train" / "x" / "x_0_0_gtFine_labelIds.png"), np.array([[7, 40], [7, 7]], np.uint8))
    with pytest.raises(LabelValueError, match=r"x_0_0_gtFine_labelIds.png.*\[40\]"):
        convert.convert(families.create("cityscapes", cityscapes_path=str(root)), str(tmp_path / "out"),
                            splits=["training"], progress=False)


def test_kitti_road_magenta_is_road_black_is_ignored_and_val_is_a_seeded_holdout(tmp_path):
    """The devkit scores only where red > 0: black ("not evaluated") pixels become the ignore label."""
    training = tmp_path / "data_road" / "training"
    for i in range(10):
        category = "um" if i < 5 else "umm"
        write_png(str(training / "image_2" / ("%s_%06d.png" % (category, i))), random_image(6, 8, i))
        gt = np.zeros((6, 8, 3), np.uint8)
        gt[..., 0] = 255                       # red: not road
        gt[3:, :] = (255, 0, 255)              # magenta: road
        gt[0, 0] = (0, 0, 0)                   # black: not evaluated -> ignore
        write_png(str(training / "gt_image_2" / ("%s_road_%06d.png" % (category, i))), gt)
        write_png(str(training / "gt_image_2" / ("%s_lane_%06d.png" % (category, i))), gt * 0)  # distractor
    family = families.create("kitti_road", kitti_path=str(tmp_path), val_fraction=0.2, split_seed=0)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    val = summary.splits["validation"].examples
    assert len(val) == 2 and summary.splits["training"].records == 8
    assert not set(val) & set(summary.splits["training"].examples)
    again = families.create("kitti_road", kitti_path=str(tmp_path), val_fraction=0.2, split_seed=0)
    assert [e.name for e in again.examples("validation")] == val
    label = next(read_examples(os.path.join(summary.outdir, "training.tfrecords")))["label"]
    expected = np.zeros((6, 8), np.uint8)
    expected[3:] = 1
    expected[0, 0] = 255
    np.testing.assert_array_equal(label, expected)


def test_coco_stuff_keeps_ids_and_255(tmp_path):
    root = tmp_path / "coco"
    label = np.array([[0, 181, 255], [91, 92, 3]], np.uint8)
    for split in ("train2017", "val2017"):
        write_jpg(str(root / "images" / split / "000000000139.jpg"), random_image(2, 3, 0))
        write_png(str(root / "stuffthingmaps_trainval2017" / split / "000000000139.png"), label)
    summary = convert.convert(families.create("coco_stuff", coco_path=str(root)), str(tmp_path / "out"),
                                  progress=False)
    example = next(read_examples(os.path.join(summary.outdir, "validation.tfrecords")))
    np.testing.assert_array_equal(example["label"], label)
    assert example["format"] == "jpeg" and example["filename"] == "000000000139.jpg"
    assert families.get("coco_stuff").class_names[181] == "wood"


def make_folder_dataset(root, count=6, split_folders=False, rgb_masks=False):
    with open(os.path.join(root, "classes.txt"), "w") as handle:
        handle.write("# my classes\nbackground 0 0 0\ncat 255 0 0\n\ndog\n")
    palette = [(0, 0, 0), (255, 0, 0), None]
    for i in range(count):
        sub = ("train" if i < count - 2 else "val") if split_folders else ""
        label = random_label(5, 7, i, 2 if rgb_masks else 3)
        label[0, 0] = 255 if not rgb_masks else 0
        write_jpg(os.path.join(root, "images", sub, "img%d.jpg" % i), random_image(5, 7, i))
        mask = np.array([palette[v] for v in label.ravel()], np.uint8).reshape(5, 7, 3) if rgb_masks else label
        write_png(os.path.join(root, "masks", sub, "img%d.png" % i), mask)
    return root


def test_folder_family_flat_layout_with_holdout(tmp_path):
    root = make_folder_dataset(str(tmp_path))
    family = families.create("folder", folder_path=root, val_fraction=0.34)
    assert family.class_names == ("background", "cat", "dog") and family.palette[1] == (255, 0, 0)
    assert family.palette[2] not in ((0, 0, 0), (255, 0, 0))  # colour made up for 'dog'
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    assert summary.splits["training"].records == 4 and summary.splits["validation"].records == 2
    with open(os.path.join(summary.outdir, "dataset.json")) as handle:
        assert json.load(handle)["class_names"] == ["background", "cat", "dog"]


def test_folder_family_split_folders_and_rgb_masks(tmp_path):
    root = make_folder_dataset(str(tmp_path), split_folders=True, rgb_masks=True)
    family = families.create("folder", folder_path=root)
    assert family.splits() == ["training", "validation"]
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    assert summary.splits["validation"].examples == ["img4.jpg", "img5.jpg"]
    label = next(read_examples(os.path.join(summary.outdir, "training.tfrecords")))["label"]
    np.testing.assert_array_equal(label, random_label(5, 7, 0, 2) * (np.arange(35).reshape(5, 7) != 0))


def test_folder_rgb_mask_with_unknown_colour_is_an_error(tmp_path):
    root = make_folder_dataset(str(tmp_path), count=3, split_folders=False, rgb_masks=True)
    mask = np.zeros((5, 7, 3), np.uint8)
    mask[2, 2] = (1, 2, 3)
    write_png(os.path.join(root, "masks", "img1.png"), mask)
    with pytest.raises(LabelValueError, match=r"img1.png.*\(1, 2, 3\)"):
        convert.convert(families.create("folder", folder_path=root, val_fraction=0), str(tmp_path / "o"),
                            progress=False)


# --- bad input --------------------------------------------------------------------
def test_corrupt_and_missing_images_are_skipped_and_reported(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 4, "val": 2})
    with open(os.path.join(src, "train", "seq_train_001.png"), "r+b") as handle:
        handle.truncate(60)  # a half-downloaded PNG
    os.remove(os.path.join(src, "train", "seq_train_002.png"))
    summary = convert_camvid(src, tmp_path / "out")
    result = summary.splits["training"]
    assert result.records == 2 and [n for n, _ in result.skipped] == ["seq_train_001.png", "seq_train_002.png"]
    text = "\n".join(summary.lines())
    assert "2 skipped" in text and "seq_train_001.png" in text and "seq_train_002.png" in text
    with open(os.path.join(summary.outdir, "dataset.json")) as handle:
        assert len(json.load(handle)["splits"]["training"]["skipped"]) == 2


def test_strict_makes_an_unreadable_image_fatal(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    with open(os.path.join(src, "val", "seq_val_000.png"), "wb") as handle:
        handle.write(b"not an image at all")
    with pytest.raises(UnreadableFileError, match="seq_val_000.png"):
        convert_camvid(src, tmp_path / "out", strict=True)


def test_label_values_outside_the_classes_are_an_error_naming_file_and_values(tmp_path):
    def label_fn(i):
        label = random_label(24, 32, i, 11)
        if i == 1:
            label[5, 5], label[6, 6] = 12, 200
        return label
    src = make_camvid_layout(str(tmp_path / "src"), label_fn=label_fn)
    with pytest.raises(LabelValueError) as error:
        convert_camvid(src, tmp_path / "out")
    message = str(error.value)
    assert "seq_train_001.png" in message and "[12, 200]" in message


def test_image_label_size_mismatch_is_an_error_naming_the_file(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    write_png(os.path.join(src, "valannot", "seq_val_001.png"), np.zeros((20, 32), np.uint8))
    with pytest.raises(SizeMismatchError, match="seq_val_001.png"):
        convert_camvid(src, tmp_path / "out")


def test_empty_split_is_an_error(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    open(os.path.join(src, "val.txt"), "w").close()
    with pytest.raises(EmptySplitError, match="validation"):
        convert_camvid(src, tmp_path / "out")


def test_a_split_with_every_file_skipped_is_an_error(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 2, "val": 1})
    for name in ("seq_train_000.png", "seq_train_001.png"):
        os.remove(os.path.join(src, "train", name))
    with pytest.raises(EmptySplitError, match="all 2 examples were skipped"):
        convert_camvid(src, tmp_path / "out")


def test_failed_conversion_never_replaces_good_output(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    good = convert_camvid(src, tmp_path / "out")
    before = {f: open(os.path.join(good.outdir, f), "rb").read() for f in os.listdir(good.outdir)}
    write_png(os.path.join(src, "valannot", "seq_val_001.png"), np.full((24, 32), 99, np.uint8))
    make_camvid_layout(str(tmp_path / "src"), {"train": 5})  # training changes too: must not land
    with pytest.raises(LabelValueError):
        convert_camvid(src, tmp_path / "out")
    after = {f: open(os.path.join(good.outdir, f), "rb").read() for f in os.listdir(good.outdir)}
    assert after == before  # same files, same bytes, no temporaries left behind


def test_big_splits_are_sharded_and_stale_shards_removed(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 5, "val": 2})
    summary = convert_camvid(src, tmp_path / "out", shard_size=2)
    assert summary.splits["training"].files == ["training.tfrecords-0000%d-of-00003" % i for i in range(3)]
    assert summary.splits["validation"].files == ["validation.tfrecords"]  # small split: one plain file
    files = find_record_files(summary.outdir, "training")
    assert [count_records(f) for f in files] == [2, 2, 1]
    again = convert_camvid(src, tmp_path / "out", shard_size=10)
    assert sorted(os.listdir(again.outdir)) == ["dataset.json", "training.tfrecords", "validation.tfrecords"]


def test_partial_shard_set_is_refused(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 5, "val": 1})
    summary = convert_camvid(src, tmp_path / "out", shard_size=2)
    os.remove(os.path.join(summary.outdir, "training.tfrecords-00001-of-00003"))
    with pytest.raises(ValueError, match="incomplete"):
        find_record_files(summary.outdir, "training")


def test_converting_one_split_keeps_the_other_in_dataset_json(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"))
    convert_camvid(src, tmp_path / "out")
    summary = convert_camvid(src, tmp_path / "out", splits=["val"])
    with open(summary.json_path) as handle:
        info = json.load(handle)
    assert set(info["splits"]) == {"training", "validation"} and info["total_train_images"] == 3


def test_non_png_jpeg_images_are_reencoded_as_png(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 1, "val": 1})
    image = Image.fromarray(random_image(24, 32, 5)).convert("RGBA")
    image.save(os.path.join(src, "train", "seq_train_000.png"))  # RGBA PNG: the pipeline wants RGB
    summary = convert_camvid(src, tmp_path / "out")
    example = next(read_examples(os.path.join(summary.outdir, "training.tfrecords")))
    assert example["format"] == "png"
    np.testing.assert_array_equal(example["image"], np.asarray(image.convert("RGB")))


# --- CLI ------------------------------------------------------------------------------
def test_cli_converts_and_prints_a_summary(tmp_path, capsys):
    src = make_camvid_layout(str(tmp_path / "src"))
    code = convert.main(["--dataset_family", "camvid", "--camvid_path", src, "--datapath", str(tmp_path),
                             "--no_progress"])
    out = capsys.readouterr().out
    assert code == 0 and "training" in out and "3 records" in out
    assert "test       not in the source (looked for %s or %s/)" % (os.path.join(src, "test.txt"),
                                                                   os.path.join(src, "test")) in out
    assert os.path.isfile(tmp_path / "camvid" / "training.tfrecords")


def test_cli_reports_errors_and_unknown_families(tmp_path, capsys):
    assert convert.main(["--dataset_family", "nope"]) == 2
    assert "valid names: camvid" in capsys.readouterr().err
    code = convert.main(["--dataset_family", "camvid", "--camvid_path", str(tmp_path / "missing"),
                             "--outdir", str(tmp_path / "out"), "--no_progress"])
    assert code == 1 and "no splits found" in capsys.readouterr().err


def test_cli_runs_as_a_script(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 1, "val": 1})
    result = subprocess.run([sys.executable, os.path.join(ROOT, "utils", "tfrecordify.py"), "--dataset_family",
                             "camvid", "--camvid_path", src, "--outdir", str(tmp_path / "out")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "validation" in result.stdout and os.path.isfile(tmp_path / "out" / "dataset.json")

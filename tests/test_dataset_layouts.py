"""The published layouts of each dataset and their common variants, as the datasets' own tools lay them out.

Each fixture writes the file and folder names, PNG modes, palettes and list
files that the download (or the tool named) produces; the expected class
maps are computed here from the published label definitions, not with the
families' own tables.  Also: whatever splits exist are converted, a split
too small for --val_fraction is one error naming the count, and an image
without its label stops the conversion (exit 2) unless --allow_missing_labels.
"""
import json
import os

import numpy as np
import pytest
import scipy.sparse
from PIL import Image
from scipy.io import savemat

from tests.test_datasets import random_image, write_jpg, write_png
from utils.data import convert, families
from utils.data.families.base import SplitTooSmallError
from utils.data.records import read_examples
from utils.inference import evaluation

# Cityscapes' cityscapesscripts/helpers/labels.py: labelId -> trainId for the 19 evaluated classes; the rest 255.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def records(outdir, split):
    return list(read_examples(os.path.join(outdir, split + ".tfrecords")))


def write_mode(path, array, mode):
    """A PNG in an exact PIL mode: 'L' (8-bit grey), 'I;16' (16-bit grey) or 'RGBA'."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array))
    image = image.convert("RGBA") if mode == "RGBA" else image
    assert image.mode == mode, (image.mode, mode)
    image.save(path)
    return path


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


def run_cli(capsys, *args):
    code = convert.main([str(a) for a in args] + ["--no_progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- KITTI road -------------------------------------------------------------------------------------------
def make_kitti_road(root, counts=(("um", 2), ("umm", 2), ("uu", 2)), size=(5, 9)):
    """data_road.zip as unzipped: training/{image_2,gt_image_2} (gt only for road, lane only for um), testing/."""
    h, w = size
    truth = {}
    for category, count in counts:
        for i in range(count):
            number = "%06d" % i
            write_png(os.path.join(root, "data_road", "training", "image_2", "%s_%s.png" % (category, number)),
                      random_image(h, w, len(truth)))
            gt = np.zeros((h, w, 3), np.uint8)          # black: not evaluated
            gt[1:, :] = (255, 0, 0)                      # red: evaluated, not road
            gt[3:, 2:7] = (255, 0, 255)                  # magenta: road
            gt[4, len(truth) % w] = (0, 0, 0)            # a not-evaluated pixel inside the road
            write_png(os.path.join(root, "data_road", "training", "gt_image_2",
                                   "%s_road_%s.png" % (category, number)), gt)
            if category == "um":
                write_png(os.path.join(root, "data_road", "training", "gt_image_2",
                                       "um_lane_%s.png" % number), gt[..., ::-1].copy())
            expected = np.zeros((h, w), np.uint8)
            expected[3:, 2:7] = 1
            expected[0, :] = 255
            expected[4, len(truth) % w] = 255
            truth["%s_%s.png" % (category, number)] = (category, expected)
    write_png(os.path.join(root, "data_road", "testing", "image_2", "um_000000.png"), random_image(h, w, 99))
    return truth


def test_kitti_road_not_evaluated_is_ignored_and_the_category_is_kept(tmp_path):
    truth = make_kitti_road(str(tmp_path / "kitti"))
    family = families.create("kitti_road", kitti_path=str(tmp_path / "kitti"), val_fraction=0.34)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    seen = {}
    for split in ("training", "validation"):
        for example in records(summary.outdir, split):
            category, expected = truth[example["filename"]]
            np.testing.assert_array_equal(example["label"], expected)
            assert example["category"] == category
            seen[example["filename"]] = split
    assert sorted(seen) == sorted(truth)  # the testing/ image and the um_lane files are not examples
    info = json.load(open(summary.json_path))
    counted = {}
    for split in ("training", "validation"):
        for category, count in info["splits"][split]["categories"].items():
            counted[category] = counted.get(category, 0) + count
    assert counted == {"um": 2, "umm": 2, "uu": 2}
    assert "ignore" in info["label_mapping"]


def test_kitti_road_scores_per_category_from_the_records(tmp_path):
    """test.py's report gets per-category mIoU from image/category; here with 'road everywhere' predictions."""
    truth = make_kitti_road(str(tmp_path / "kitti"), counts=(("um", 2), ("uu", 1)))
    family = families.create("kitti_road", kitti_path=str(tmp_path / "kitti"), val_fraction=0)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    examples = records(summary.outdir, "training")
    confusions = [evaluation.image_confusion(np.ones_like(e["label"]), e["label"], 2, 255) for e in examples]
    report = evaluation.summarize(confusions, family.class_names, bootstrap=0,
                                  categories=[e["category"] for e in examples])
    for category in ("um", "uu"):
        labels = np.stack([expected for cat, expected in truth.values() if cat == category])
        road, background = (labels == 1).sum(), (labels == 0).sum()
        entry = report["per_category"][category]
        assert entry["num_images"] == len(labels)
        assert entry["per_class_iou"] == {"background": 0.0, "road": pytest.approx(road / (road + background))}
        assert entry["mIoU"] == pytest.approx(road / (road + background) / 2)
    assert "per category: um" in evaluation.format_report(report)


def test_kitti_road_single_frame_with_the_default_val_fraction_is_one_error_naming_the_count(tmp_path, capsys):
    make_kitti_road(str(tmp_path / "kitti"), counts=(("um", 1),))
    with pytest.raises(SplitTooSmallError, match=r"1 image, too few for --val_fraction 0.1"):
        convert.convert(families.create("kitti_road", kitti_path=str(tmp_path / "kitti")), str(tmp_path / "o"),
                        progress=False)
    code, _, err = run_cli(capsys, "--dataset_family", "kitti_road", "--kitti_path", tmp_path / "kitti",
                           "--outdir", tmp_path / "out")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "image_2: 1 image" in err
    assert not os.path.exists(tmp_path / "out")
    code, out, _ = run_cli(capsys, "--dataset_family", "kitti_road", "--kitti_path", tmp_path / "kitti",
                           "--outdir", tmp_path / "out", "--val_fraction", "0")
    assert code == 0 and "training" in out


# --- Cityscapes ---------------------------------------------------------------------------------------------
def make_cityscapes(root, encodings=("labelIds",), annotations="gtFine", folders=("train", "val"), size=(4, 6)):
    """leftImg8bit_trainvaltest.zip + gtFine_trainvaltest.zip (labelIds, color, instanceIds, polygons), and the
    *_labelTrainIds.png that createTrainIdLabelImgs.py adds; -> {image file name: expected train ids}."""
    truth = {}
    for index, (folder, city) in enumerate((f, c) for f in folders for c in ("aachen", "bochum")):
        stem = "%s_%06d_000019" % (city, index)
        write_png(os.path.join(root, "leftImg8bit", folder, city, stem + "_leftImg8bit.png"),
                  random_image(size[0], size[1], index))
        label_ids = np.random.RandomState(index).randint(0, 34, size).astype(np.uint8)
        train_ids = np.vectorize(lambda i: CITYSCAPES_TRAIN_IDS.get(int(i), 255))(label_ids).astype(np.uint8)
        base = os.path.join(root, annotations, folder, city, "%s_%s_" % (stem, annotations))
        for encoding in encodings:
            write_mode(base + encoding + ".png", label_ids if encoding == "labelIds" else train_ids, "L")
        write_mode(base + "color.png", random_image(size[0], size[1], 7), "RGBA")
        write_mode(base + "instanceIds.png", label_ids.astype(np.uint16) * 1000, "I;16")
        write_lines(base + "polygons.json", ['{"imgHeight": %d, "imgWidth": %d, "objects": []}' % size])
        truth[stem + "_leftImg8bit.png"] = train_ids
    return truth


@pytest.mark.parametrize("encodings, variant", [(("labelIds",), "fine-labelIds"),
                                                (("labelTrainIds",), "fine-labelTrainIds"),
                                                (("labelIds", "labelTrainIds"), "fine-labelIds")])
def test_cityscapes_label_trainids_read_the_same_as_mapped_label_ids(tmp_path, encodings, variant):
    truth = make_cityscapes(str(tmp_path / "cs"), encodings)
    summary = convert.convert(families.create("cityscapes", cityscapes_path=str(tmp_path / "cs")),
                              str(tmp_path / "out"), progress=False)
    assert summary.variant == variant and "layout: %s" % variant in summary.lines()[0]
    assert json.load(open(summary.json_path))["variant"] == variant
    written = {e["filename"]: e["label"] for split in ("training", "validation")
               for e in records(summary.outdir, split)}
    assert sorted(written) == sorted(truth)
    for name, expected in truth.items():
        np.testing.assert_array_equal(written[name], expected)


def test_cityscapes_coarse_trains_on_train_and_train_extra(tmp_path):
    truth = make_cityscapes(str(tmp_path / "cs"), annotations="gtCoarse", folders=("train", "train_extra", "val"))
    family = families.create("cityscapes", cityscapes_path=str(tmp_path / "cs"), cityscapes_annotations="coarse")
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    assert summary.variant == "coarse-labelIds" and summary.splits["training"].records == 4
    for split in ("training", "validation"):
        for example in records(summary.outdir, split):
            np.testing.assert_array_equal(example["label"], truth[example["filename"]])


def test_cityscapes_without_labels_is_one_line_naming_the_folder(tmp_path, capsys):
    write_png(str(tmp_path / "cs" / "leftImg8bit" / "val" / "ulm" / "ulm_000000_000019_leftImg8bit.png"),
              random_image(2, 2, 0))
    code, _, err = run_cli(capsys, "--dataset_family", "cityscapes", "--cityscapes_path", tmp_path / "cs",
                           "--outdir", tmp_path / "out")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert os.path.join(str(tmp_path / "cs"), "gtFine") in err and "labelTrainIds.png" in err


# --- PASCAL VOC ---------------------------------------------------------------------------------------------
def voc_palette():
    """VOCdevkit's VOClabelcolormap.m: bits of the index spread over r, g, b; 255 is (224, 224, 192)."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= (c >> 1 & 1) << shift
            b |= (c >> 2 & 1) << shift
            c >>= 3
        colours += [r, g, b]
    return colours


def write_voc_label(path, label):
    """A palette PNG as VOC ships SegmentationClass: pixel values are class indices, colours VOC's colormap."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    png = Image.frombytes("P", (label.shape[1], label.shape[0]), label.tobytes())
    png.putpalette(voc_palette())
    png.save(path)


def voc_label(seed, size=(5, 7)):
    label = np.random.RandomState(seed).randint(0, 21, size).astype(np.uint8)
    label[0, :] = 255  # the border VOC draws around objects
    return label


def make_voc(root, train=("2007_000032", "2007_000039"), val=("2007_000033", "2008_000002"), size=(5, 7)):
    """VOCtrainval_11-May-2012.tar: VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,SegmentationObject,
    ImageSets/Segmentation/{train,val,trainval}.txt}; -> (voc folder, {name: SegmentationClass indices})."""
    voc = os.path.join(root, "VOCdevkit", "VOC2012")
    truth = {}
    for index, name in enumerate(sorted(set(train) | set(val))):
        write_jpg(os.path.join(voc, "JPEGImages", name + ".jpg"), random_image(size[0], size[1], index))
        truth[name] = voc_label(index, size)
        write_voc_label(os.path.join(voc, "SegmentationClass", name + ".png"), truth[name])
        write_voc_label(os.path.join(voc, "SegmentationObject", name + ".png"), truth[name] // 7)
    sets = os.path.join(voc, "ImageSets", "Segmentation")
    write_lines(os.path.join(sets, "train.txt"), train)
    write_lines(os.path.join(sets, "val.txt"), val)
    write_lines(os.path.join(sets, "trainval.txt"), sorted(set(train) | set(val)))
    return voc, truth


def test_pascal_voc_alone_uses_voc_train_and_val_lists(tmp_path):
    voc, truth = make_voc(str(tmp_path))
    summary = convert.convert(families.create("pascal_seg", voc_path=voc, sbd_path=str(tmp_path / "nosbd")),
                              str(tmp_path / "out"), progress=False)
    assert summary.variant == "voc"
    assert summary.splits["training"].examples == ["2007_000032.jpg", "2007_000039.jpg"]
    assert summary.splits["validation"].examples == ["2007_000033.jpg", "2008_000002.jpg"]
    for split in ("training", "validation"):
        for example in records(summary.outdir, split):
            np.testing.assert_array_equal(example["label"], truth[example["filename"][:-4]])


@pytest.mark.parametrize("listing, line", [
    (("ImageSets", "SegmentationAug", "train_aug.txt"), "/JPEGImages/{0}.jpg /SegmentationClassAug/{0}.png"),
    (("ImageSets", "Segmentation", "aug.txt"), "{0}")])
def test_pascal_segmentation_class_aug(tmp_path, listing, line):
    """SegmentationClassAug: grayscale PNGs of class indices for SBD + VOC train, listed in train_aug.txt
    (DeepLab's form) or aug.txt (mmsegmentation's voc_aug.py); VOC val stays the validation split."""
    voc, truth = make_voc(str(tmp_path))
    aug_names = ["2007_000032", "2007_000039", "2008_000123", "2009_000456"]  # VOC train + SBD-only images
    aug_truth = {}
    for index, name in enumerate(aug_names):
        if not os.path.exists(os.path.join(voc, "JPEGImages", name + ".jpg")):
            write_jpg(os.path.join(voc, "JPEGImages", name + ".jpg"), random_image(5, 7, 50 + index))
        aug_truth[name] = voc_label(100 + index)
        write_mode(os.path.join(voc, "SegmentationClassAug", name + ".png"), aug_truth[name], "L")
    write_lines(os.path.join(voc, *listing), [line.format(n) for n in aug_names])
    summary = convert.convert(families.create("pascal_seg", voc_path=voc, sbd_path=str(tmp_path / "nosbd")),
                              str(tmp_path / "out"), progress=False)
    assert summary.variant == "aug"
    assert summary.splits["training"].examples == [n + ".jpg" for n in aug_names]
    assert summary.splits["validation"].examples == ["2007_000033.jpg", "2008_000002.jpg"]
    for example in records(summary.outdir, "training"):
        np.testing.assert_array_equal(example["label"], aug_truth[example["filename"][:-4]])
    for example in records(summary.outdir, "validation"):
        np.testing.assert_array_equal(example["label"], truth[example["filename"][:-4]])


def test_pascal_sbd_is_preferred_and_its_mat_files_are_read(tmp_path):
    """benchmark.tgz's dataset/cls/*.mat hold a GTcls struct (Segmentation, Boundaries, CategoriesPresent)."""
    voc, _ = make_voc(str(tmp_path))
    sbd = str(tmp_path / "benchmark_RELEASE" / "dataset")
    expected = voc_label(7)
    expected[expected == 255] = 0  # SBD has no border label
    os.makedirs(os.path.join(sbd, "cls"))
    boundaries = np.empty((20, 1), object)  # a 20x1 cell of sparse edge maps, one per object class
    for index in range(20):
        boundaries[index, 0] = scipy.sparse.csc_matrix(expected == index + 1, dtype=np.float64)
    savemat(os.path.join(sbd, "cls", "2008_000123.mat"),
            {"GTcls": {"Segmentation": expected, "Boundaries": boundaries,
                       "CategoriesPresent": np.unique(expected)[1:].astype(np.uint8)}})
    write_jpg(os.path.join(sbd, "img", "2008_000123.jpg"), random_image(5, 7, 3))
    write_lines(os.path.join(sbd, "train.txt"), ["2008_000123"])
    write_lines(os.path.join(sbd, "val.txt"), [])
    summary = convert.convert(families.create("pascal_seg", voc_path=voc, sbd_path=sbd), str(tmp_path / "out"),
                              progress=False)
    assert summary.variant == "sbd" and summary.splits["training"].examples == ["2008_000123.jpg"]
    np.testing.assert_array_equal(records(summary.outdir, "training")[0]["label"], expected)


def test_pascal_without_training_labels_is_one_line_naming_what_was_looked_for(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--dataset_family", "pascal_seg", "--voc_path", tmp_path / "VOC2012",
                           "--sbd_path", tmp_path / "sbd", "--outdir", tmp_path / "out")
    assert code == 1 and len(err.strip().splitlines()) == 1
    for looked_for in ("train.txt", "SegmentationClassAug", os.path.join("ImageSets", "Segmentation", "train.txt")):
        assert looked_for in err


# --- COCO-Stuff ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label_folder, images_nested", [("stuffthingmaps_trainval2017", True),
                                                         ("annotations", True), ("annotations", False),
                                                         ("elsewhere", True)])
def test_coco_stuff_label_folder_variants(tmp_path, label_folder, images_nested):
    """COCO-Stuff's README unzips stuffthingmaps_trainval2017.zip (train2017/, val2017/ of grayscale PNGs,
    value = id - 1, 255 unlabeled) into dataset/annotations/; older trees keep the zip's name."""
    root = tmp_path / "coco"
    labels_root = str(tmp_path / "maps") if label_folder == "elsewhere" else str(root / label_folder)
    truth = {}
    for index, split in enumerate(("train2017", "val2017")):
        name = "%012d" % (139 + index)
        images = root / "images" / split if images_nested else root / split
        write_jpg(str(images / (name + ".jpg")), random_image(3, 4, index))
        truth[name + ".jpg"] = np.random.RandomState(index).choice([0, 1, 90, 91, 181, 255], (3, 4)).astype(np.uint8)
        write_mode(os.path.join(labels_root, split, name + ".png"), truth[name + ".jpg"], "L")
    write_lines(str(root / "annotations" / "instances_val2017.json"), ["{}"])  # COCO's own JSONs are no labels
    options = {"labels_path": labels_root} if label_folder == "elsewhere" else {}
    summary = convert.convert(families.create("coco_stuff", coco_path=str(root), **options), str(tmp_path / "out"),
                              progress=False)
    assert summary.variant == ("labels_path" if label_folder == "elsewhere" else label_folder)
    for split in ("training", "validation"):
        (example,) = records(summary.outdir, split)
        np.testing.assert_array_equal(example["label"], truth[example["filename"]])


def test_coco_stuff_without_a_label_folder_is_one_line_naming_what_was_expected(tmp_path, capsys):
    write_jpg(str(tmp_path / "coco" / "images" / "val2017" / "000000000139.jpg"), random_image(3, 4, 0))
    code, _, err = run_cli(capsys, "--dataset_family", "coco_stuff", "--coco_path", tmp_path / "coco",
                           "--outdir", tmp_path / "out")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "coco") in err and "stuffthingmaps_trainval2017 or annotations" in err


# --- ADE20K -------------------------------------------------------------------------------------------------
def make_ade20k(root, folders=("training", "validation"), size=(4, 5)):
    """ADEChallengeData2016.zip: images/{training,validation}/ADE_*.jpg, annotations/.../ADE_*.png (grayscale,
    0 = other, 1..150), objectInfo150.txt, sceneCategories.txt; -> {image name: raw annotation}."""
    base = os.path.join(root, "ADEChallengeData2016")
    truth = {}
    for folder in folders:
        prefix = "ADE_train" if folder == "training" else "ADE_val"
        for number in (1, 2):
            name = "%s_%08d" % (prefix, number)
            write_jpg(os.path.join(base, "images", folder, name + ".jpg"), random_image(size[0], size[1], number))
            raw = np.random.RandomState(len(truth)).randint(0, 151, size).astype(np.uint8)
            raw[0, 0], raw[0, 1] = 0, 150
            write_mode(os.path.join(base, "annotations", folder, name + ".png"), raw, "L")
            truth[name + ".jpg"] = raw
    write_lines(os.path.join(base, "objectInfo150.txt"),
                ["Idx\tRatio\tTrain\tVal\tName", "1\t0.1576\t11664\t1172\twall"])
    write_lines(os.path.join(base, "sceneCategories.txt"), ["ADE_train_00000001 airport_terminal"])
    return truth


def test_ade20k_zero_is_ignored_and_1_to_150_become_0_to_149(tmp_path):
    truth = make_ade20k(str(tmp_path))
    summary = convert.convert(families.create("ade20k", ade_path=str(tmp_path)), str(tmp_path / "out"),
                              progress=False)
    assert summary.splits["training"].records == 2 and summary.splits["validation"].records == 2
    for split in ("training", "validation"):
        for example in records(summary.outdir, split):
            raw = truth[example["filename"]].astype(np.int64)
            np.testing.assert_array_equal(example["label"], np.where(raw == 0, 255, raw - 1))
    info = json.load(open(summary.json_path))
    assert info["num_classes"] == 150 and info["ignore_label"] == 255 and len(info["palette"]) == 150
    assert info["class_names"][0] == "wall" and info["class_names"][149] == "flag"
    assert "0 (other) -> 255 ignore" in info["label_mapping"]


def test_a_tree_with_only_val_converts_val_and_says_what_is_missing(tmp_path, capsys):
    make_ade20k(str(tmp_path), folders=("validation",))
    code, out, _ = run_cli(capsys, "--dataset_family", "ade20k", "--ade_path", tmp_path / "ADEChallengeData2016",
                           "--datapath", tmp_path)
    assert code == 0, out
    expected = os.path.join(str(tmp_path), "ADEChallengeData2016", "images", "training")
    assert "training   not in the source (looked for %s/)" % expected in out
    info = json.load(open(tmp_path / "ade20k" / "dataset.json"))
    assert list(info["splits"]) == ["validation"] and list(info["missing_splits"]) == ["training"]


# --- missing labels -----------------------------------------------------------------------------------------
def test_an_image_without_its_label_exits_2_naming_it_and_writes_nothing(tmp_path, capsys):
    make_ade20k(str(tmp_path))
    label = tmp_path / "ADEChallengeData2016" / "annotations" / "training" / "ADE_train_00000002.png"
    os.remove(label)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--dataset_family", "ade20k", "--ade_path", tmp_path, "--outdir", out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "1 image without a label file" in err and "ADE_train_00000002.jpg has no %s" % label in err
    assert not os.path.exists(out)
    code, text, _ = run_cli(capsys, "--dataset_family", "ade20k", "--ade_path", tmp_path, "--outdir", out,
                            "--allow_missing_labels")
    assert code == 0 and "1 training image without a label" in text
    info = json.load(open(out / "dataset.json"))
    assert info["splits"]["training"]["records"] == 1
    assert info["splits"]["training"]["missing_labels"] == [{"name": "ADE_train_00000002.jpg", "label": str(label)}]


def test_camvid_listed_label_missing_is_no_longer_skipped_silently(tmp_path, capsys):
    from tests.test_datasets import make_camvid_layout
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 3, "val": 1})
    os.remove(os.path.join(src, "trainannot", "seq_train_001.png"))
    code, _, err = run_cli(capsys, "--dataset_family", "camvid", "--camvid_path", src, "--outdir", tmp_path / "o")
    assert code == 2 and "seq_train_001.png" in err and not os.path.exists(tmp_path / "o")


# --- --help ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["pascal_seg", "cityscapes", "coco_stuff"])
def test_family_help_lists_its_layouts(family, capsys):
    with pytest.raises(SystemExit) as done:
        convert.main(["--dataset_family", family, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "layouts (found automatically):" in out
    for variant, text in families.get(family).variants.items():
        assert "  %s  " % variant in out and text.split()[0] in out

"""Labelling-tool exports as dataset families: COCO-format JSON, LabelMe JSON, CVAT 'Segmentation mask 1.1', and
the folder family's ignore colour.

Fixtures are laid out as each tool writes them (file and folder names, JSON schemas, PNG modes); the labels are
read back from the written records and compared pixel for pixel with masks worked out here by hand (pixel-centre
rules for COCO polygons, LabelMe's inclusive PIL drawing, run lengths counted in column-major order for RLE).
"""
import base64
import io
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from tests.conftest import CAMVID, requires
from tests.test_datasets import random_image, write_jpg, write_png
from utils.data import convert, families
from utils.data.records import find_record_files, read_examples

H, W = 12, 16
ROWS, COLS = np.mgrid[:H, :W]


def records(outdir, split):
    """{filename: decoded example} of a converted split."""
    return {e["filename"]: e for e in read_examples(find_record_files(outdir, split))}


def write_json(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(content, handle)
    return path


def one_line_refusal(capsys, argv):
    """Run the converter CLI expecting a refusal: (exit code, the one stderr line)."""
    code = convert.main(argv + ["--no_progress"])
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return code, err


# --- COCO-format JSON ---------------------------------------------------------------------------------
def column_major_rle(mask):
    """COCO's uncompressed RLE, counted by hand: runs over the column-major pixels, starting with zeros."""
    counts, value, run = [], 0, 0
    for pixel in np.asarray(mask, np.uint8).flatten(order="F"):
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"counts": counts, "size": list(mask.shape)}


def compressed_rle(mask):
    """The compressed RLE string pycocotools writes for `mask` (as in COCO's own JSON)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": list(rle["size"])}


def coco_document(images, annotations, categories):
    """A COCO 2017 instances/stuff file: info, licenses, images, annotations, categories."""
    return {"info": {"description": "test", "version": "1.0", "year": 2017, "contributor": "", "url": "",
                     "date_created": "2017/09/01"},
            "licenses": [{"url": "", "id": 1, "name": "test licence"}],
            "images": [{"license": 1, "file_name": name, "coco_url": "", "height": H, "width": W,
                        "date_captured": "2013-11-14 17:02:52", "flickr_url": "", "id": image_id}
                       for image_id, name in images],
            "annotations": [dict({"id": number + 1, "area": 0.0, "bbox": [0, 0, 1, 1], "iscrowd": 0}, **a)
                            for number, a in enumerate(annotations)],
            "categories": [{"supercategory": "thing", "id": i, "name": n} for i, n in categories]}


CATEGORIES = [(1, "person"), (3, "car"), (18, "dog")]  # COCO's own ids: not contiguous
CAR_BOX = [1, 1, 9, 1, 9, 7, 1, 7]                       # pixels x 1..8, y 1..6 (centres inside)
DOG_TRIANGLE = [2, 2, 8.5, 2, 2, 8.5]                    # centres inside: x >= 2, y >= 2, x + y <= 9
PERSON = (ROWS >= 8) & (ROWS <= 10) & (COLS >= 10) & (COLS <= 14)
CROWD = COLS >= 13


def expected_coco_label():
    """background 0, person 1, car 2, dog 3 (ids in order); the dog (smaller) over the car; the crowd strip is
    ignore except where the single person lies."""
    label = np.zeros((H, W), np.uint8)
    label[(COLS >= 1) & (COLS <= 8) & (ROWS >= 1) & (ROWS <= 6)] = 2
    label[(COLS >= 2) & (ROWS >= 2) & (COLS + ROWS <= 9)] = 3
    label[CROWD & ~PERSON] = 255
    label[PERSON] = 1
    return label


def make_coco_2017(root):
    """COCO 2017 as downloaded: annotations/instances_{train,val}2017.json, images in {train,val}2017/."""
    annotations = [dict(image_id=139, category_id=18, segmentation=[DOG_TRIANGLE]),  # smaller, but listed first
                   dict(image_id=139, category_id=3, segmentation=[CAR_BOX]),
                   dict(image_id=139, category_id=1, iscrowd=1, segmentation=column_major_rle(CROWD)),
                   dict(image_id=139, category_id=1, segmentation=compressed_rle(PERSON))]
    write_json(os.path.join(root, "annotations", "instances_train2017.json"),
               coco_document([(139, "000000000139.jpg"), (285, "000000000285.jpg")], annotations, CATEGORIES))
    write_json(os.path.join(root, "annotations", "instances_val2017.json"),
               coco_document([(632, "000000000632.png")], [
                   dict(image_id=632, category_id=3, segmentation=[[0, 0, 4, 0, 4, 4, 0, 4]]),
                   dict(image_id=632, category_id=18, segmentation=[[2, 2, 6, 2, 6, 6, 2, 6]])], CATEGORIES))
    # what COCO's annotations zip also holds: never read
    write_json(os.path.join(root, "annotations", "captions_train2017.json"), {"annotations": []})
    write_jpg(os.path.join(root, "train2017", "000000000139.jpg"), random_image(H, W, 1))
    write_jpg(os.path.join(root, "train2017", "000000000285.jpg"), random_image(H, W, 2))
    write_png(os.path.join(root, "val2017", "000000000632.png"), random_image(H, W, 3))
    return root


def test_coco_polygons_rle_crowd_and_overlaps_become_the_expected_masks(tmp_path):
    root = make_coco_2017(str(tmp_path / "coco"))
    family = families.create("coco_json", coco_json_path=root)
    assert family.class_names == ("background", "person", "car", "dog")
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    training = records(summary.outdir, "training")
    np.testing.assert_array_equal(training["000000000139.jpg"]["label"], expected_coco_label())
    np.testing.assert_array_equal(training["000000000285.jpg"]["label"], np.zeros((H, W)))  # no annotations
    val = records(summary.outdir, "validation")["000000000632.png"]["label"]
    squares = np.zeros((H, W), np.uint8)
    squares[:4, :4] = 2
    squares[2:6, 2:6] = 3  # equal areas: the later annotation on top
    np.testing.assert_array_equal(val, squares)
    with open(summary.json_path) as handle:
        info = json.load(handle)
    assert info["class_names"] == ["background", "person", "car", "dog"] and info["ignore_label"] == 255
    assert info["source"]["layout"].startswith("COCO annotations/")


def test_coco_stuff_json_merges_with_instances_and_unannotated_can_be_ignore(tmp_path):
    """COCO-Stuff's stuff_val2017.json (ids 92..183) beside instances_val2017.json: one class list, one mask."""
    root = str(tmp_path / "coco")
    things = [(ROWS < 4) & (COLS < 4), (ROWS >= 8) & (COLS >= 12)]
    grass = (COLS < 8) & ~things[0]
    write_json(os.path.join(root, "annotations", "instances_val2017.json"), coco_document(
        [(7, "a.jpg")], [dict(image_id=7, category_id=1, segmentation=column_major_rle(t)) for t in things],
        [(1, "person")]))
    write_json(os.path.join(root, "annotations", "stuff_val2017.json"), coco_document(  # 'other' = all things
        [(7, "a.jpg")], [dict(image_id=7, category_id=124, segmentation=compressed_rle(grass)),
                         dict(image_id=7, category_id=183, segmentation=compressed_rle(things[0] | things[1]))],
        [(124, "grass"), (183, "other")]))
    write_jpg(os.path.join(root, "images", "val2017", "a.jpg"), random_image(H, W, 4))
    family = families.create("coco_json", coco_json_path=root, unannotated="ignore")
    assert family.class_names == ("person", "grass", "other")
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    expected = np.where(grass, 1, 255).astype(np.uint8)  # uncovered pixels: ignore, no background class
    expected[things[0] | things[1]] = 0  # each person is smaller than the 'other' region under them
    np.testing.assert_array_equal(records(summary.outdir, "validation")["a.jpg"]["label"], expected)


def test_coco_json_from_roboflow_and_label_studio_layouts(tmp_path):
    box = [[0, 0, 3, 0, 3, 2, 0, 2]]
    expected = np.zeros((H, W), np.uint8)
    expected[:2, :3] = 1
    robo = str(tmp_path / "roboflow")
    for subset, seed in (("train", 5), ("valid", 6)):  # Roboflow: images beside <subset>/_annotations.coco.json
        write_json(os.path.join(robo, subset, "_annotations.coco.json"), coco_document(
            [(0, "x_%s.jpg" % subset)], [dict(image_id=0, category_id=1, segmentation=box)], [(1, "crack")]))
        write_jpg(os.path.join(robo, subset, "x_%s.jpg" % subset), random_image(H, W, seed))
    family = families.create("coco_json", coco_json_path=robo)
    assert family.splits() == ["training", "validation"] and family.layout.startswith("Roboflow")
    summary = convert.convert(family, str(tmp_path / "out_robo"), progress=False)
    np.testing.assert_array_equal(records(summary.outdir, "validation")["x_valid.jpg"]["label"], expected)
    studio = str(tmp_path / "studio")  # Label Studio's COCO export: result.json + images/, one pool held out
    write_json(os.path.join(studio, "result.json"), coco_document(
        [(i, "images/%d.jpg" % i) for i in range(3)], [dict(image_id=1, category_id=1, segmentation=box)],
        [(1, "crack")]))
    for i in range(3):
        write_jpg(os.path.join(studio, "images", "%d.jpg" % i), random_image(H, W, i))
    family = families.create("coco_json", coco_annotations=[os.path.join(studio, "result.json")], val_fraction=0.34)
    summary = convert.convert(family, str(tmp_path / "out_studio"), progress=False)
    assert summary.splits["training"].records == 2 and summary.splits["validation"].records == 1
    converted = dict(records(summary.outdir, "training"), **records(summary.outdir, "validation"))
    np.testing.assert_array_equal(converted["images/1.jpg"]["label"], expected)


def test_coco_json_refusals_are_one_line_naming_the_file(tmp_path, capsys):
    out = ["--outdir", str(tmp_path / "out")]
    code, err = one_line_refusal(capsys, ["--dataset_family", "coco_json", "--coco_json_path", str(tmp_path)] + out)
    assert code == 1 and str(tmp_path) in err and "annotations/instances_<subset>.json" in err
    bad = write_json(str(tmp_path / "annotations" / "instances_val2017.json"), {"images": []})
    code, err = one_line_refusal(capsys, ["--dataset_family", "coco_json", "--coco_json_path", str(tmp_path)] + out)
    assert code == 1 and bad in err and "'annotations'" in err
    write_json(bad, coco_document([(1, "a.jpg")], [dict(image_id=1, category_id=1, segmentation=[])], [(1, "x")]))
    write_jpg(str(tmp_path / "val2017" / "a.jpg"), random_image(H, W, 0))
    code, err = one_line_refusal(capsys, ["--dataset_family", "coco_json", "--coco_json_path", str(tmp_path)] + out)
    assert code == 1 and bad + ": annotation 1 has an empty segmentation" in err
    write_json(bad, coco_document([(1, "a.jpg")], [dict(image_id=2, category_id=1, segmentation=[CAR_BOX])],
                                  [(1, "x")]))
    code, err = one_line_refusal(capsys, ["--dataset_family", "coco_json", "--coco_json_path", str(tmp_path)] + out)
    assert code == 1 and "annotation 1: image_id 2 is not in 'images'" in err


# --- LabelMe --------------------------------------------------------------------------------------------
def labelme_shape(label, points, shape_type):
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": shape_type,
            "flags": {}, "mask": None}


def labelme_document(image_name, shapes, image_data=None):
    """What LabelMe 5 saves beside the image."""
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_name, "imageData": image_data,
            "imageHeight": H, "imageWidth": W}


def make_labelme(root):
    os.makedirs(root)
    with open(os.path.join(root, "labels.txt"), "w") as handle:  # LabelMe's semantic_segmentation example form
        handle.write("__ignore__\n_background_\ncat\ndog\n")
    shapes = [labelme_shape("cat", [[1, 1], [6, 1], [6, 4], [1, 4]], "polygon"),
              labelme_shape("dog", [[3, 3], [9, 3], [3, 9]], "polygon"),          # drawn over the cat
              labelme_shape("cat", [[15, 11], [11, 8]], "rectangle"),              # dragged up-left
              labelme_shape("dog", [[12, 3], [12, 6]], "circle"),                  # centre, rim: radius 3
              labelme_shape("__ignore__", [[0, 10], [2, 11]], "rectangle")]
    write_json(os.path.join(root, "train", "cats.json"), labelme_document("cats.jpg", shapes))
    write_jpg(os.path.join(root, "train", "cats.jpg"), random_image(H, W, 7))
    embedded = io.BytesIO()
    Image.fromarray(random_image(H, W, 8)).save(embedded, "PNG")
    write_json(os.path.join(root, "val", "embedded.json"), labelme_document(
        "embedded.png", [labelme_shape("dog", [[0, 0], [4, 0], [4, 4], [0, 4]], "polygon")],
        base64.b64encode(embedded.getvalue()).decode("ascii")))  # no embedded.png on disk: imageData only
    return root


def test_labelme_shapes_become_the_masks_labelme_draws(tmp_path):
    root = make_labelme(str(tmp_path / "labelme"))
    family = families.create("labelme", labelme_path=root)
    assert family.class_names == ("_background_", "cat", "dog") and family.splits() == ["training", "validation"]
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    expected = np.zeros((H, W), np.uint8)  # LabelMe (PIL) fills a polygon with its outline: integer points on it
    expected[(COLS >= 1) & (COLS <= 6) & (ROWS >= 1) & (ROWS <= 4)] = 1
    expected[(COLS >= 3) & (ROWS >= 3) & (COLS + ROWS <= 12)] = 2
    expected[(COLS >= 11) & (ROWS >= 8)] = 1
    expected[(COLS - 12) ** 2 + (ROWS - 3) ** 2 <= 10] = 2  # PIL's radius-3 disc: up to (3, 1) from the centre
    expected[(COLS <= 2) & (ROWS >= 10)] = 255
    example = records(summary.outdir, "training")["train/cats.jpg"]
    np.testing.assert_array_equal(example["label"], expected)
    embedded = records(summary.outdir, "validation")["val/embedded.png"]
    np.testing.assert_array_equal(embedded["image"], random_image(H, W, 8))
    square = np.zeros((H, W), np.uint8)
    square[:5, :5] = 2
    np.testing.assert_array_equal(embedded["label"], square)


def test_labelme_refusals_are_one_line_naming_the_file_and_shape(tmp_path, capsys):
    root = make_labelme(str(tmp_path / "labelme"))
    path = os.path.join(root, "train", "cats.json")
    argv = ["--dataset_family", "labelme", "--labelme_path", root, "--outdir", str(tmp_path / "out")]
    write_json(path, labelme_document("cats.jpg", [labelme_shape("cow", [[0, 0], [3, 0], [0, 3]], "polygon")]))
    code, err = one_line_refusal(capsys, argv)
    assert code == 1 and path + ": shape 0: label 'cow' is not in the class list" in err
    write_json(path, labelme_document("cats.jpg", [labelme_shape("cat", [[0, 0], [5, 5]], "line")]))
    code, err = one_line_refusal(capsys, argv)
    assert code == 1 and path in err and "'line' shape" in err
    write_json(path, {"shapes": []})
    code, err = one_line_refusal(capsys, argv)
    assert code == 1 and path + ": not a LabelMe JSON" in err


# --- CVAT 'Segmentation mask 1.1' ------------------------------------------------------------------------
LABELMAP = [("background", (0, 0, 0)), ("car", (250, 50, 83)), ("person", (51, 221, 255)),
            ("void", (128, 128, 128))]


def labelmap_indices(seed):
    return np.random.RandomState(seed).randint(0, len(LABELMAP), (H, W)).astype(np.uint8)


def make_cvat_export(root, names=("frame_000000", "frame_000001", "frame_000002")):
    """The unzipped export: labelmap.txt, ImageSets/Segmentation/default.txt, SegmentationClass/ (RGB, or a
    palette PNG), SegmentationObject/, JPEGImages/."""
    os.makedirs(os.path.join(root, "ImageSets", "Segmentation"))
    with open(os.path.join(root, "labelmap.txt"), "w") as handle:
        handle.write("# label:color_rgb:parts:actions\n")
        handle.writelines("%s:%d,%d,%d::\n" % ((name,) + color) for name, color in LABELMAP)
    with open(os.path.join(root, "ImageSets", "Segmentation", "default.txt"), "w") as handle:
        handle.write("\n".join(names) + "\n")
    colors = np.array([color for _, color in LABELMAP], np.uint8)
    for number, name in enumerate(names):
        indices = labelmap_indices(number)
        path = os.path.join(root, "SegmentationClass", name + ".png")
        if number == 1:  # a palette PNG whose palette holds the labelmap colours
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mask = Image.fromarray(indices, "P")
            mask.putpalette(colors.ravel().tolist())
            mask.save(path)
        else:
            write_png(path, colors[indices])
        write_png(os.path.join(root, "SegmentationObject", name + ".png"), colors[indices])
        write_jpg(os.path.join(root, "JPEGImages", name + ".jpg"), random_image(H, W, number))
    return root


def test_cvat_segmentation_mask_export_converts_rgb_and_palette_masks(tmp_path):
    root = make_cvat_export(str(tmp_path / "cvat"))
    family = families.create("cvat_mask", cvat_path=root, ignore_classes=["void"], val_fraction=0.34)
    assert family.class_names == ("background", "car", "person") and family.palette[1] == (250, 50, 83)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    converted = dict(records(summary.outdir, "training"), **records(summary.outdir, "validation"))
    assert sorted(converted) == ["frame_000000", "frame_000001", "frame_000002"]
    assert summary.splits["validation"].records == 1
    for number, name in enumerate(sorted(converted)):
        expected = np.array([0, 1, 2, 255], np.uint8)[labelmap_indices(number)]
        np.testing.assert_array_equal(converted[name]["label"], expected)
        np.testing.assert_array_equal(converted[name]["image"].shape, (H, W, 3))


def test_cvat_refusals_are_one_line(tmp_path, capsys):
    root = make_cvat_export(str(tmp_path / "cvat"))
    argv = ["--dataset_family", "cvat_mask", "--cvat_path", root, "--outdir", str(tmp_path / "out"), "--val_fraction",
            "0.34"]
    mask = np.zeros((H, W, 3), np.uint8)
    mask[3, 4] = (1, 2, 3)
    path = write_png(os.path.join(root, "SegmentationClass", "frame_000002.png"), mask)
    code, err = one_line_refusal(capsys, argv)
    assert code == 1 and path + ": mask colours [(1, 2, 3)] are not in " + os.path.join(root, "labelmap.txt") in err
    code, err = one_line_refusal(capsys, argv + ["--ignore_classes", "sky"])
    assert code == 1 and "--ignore_classes sky: not in" in err
    os.remove(os.path.join(root, "ImageSets", "Segmentation", "default.txt"))
    code, err = one_line_refusal(capsys, argv)
    assert code == 1 and "no ImageSets/Segmentation/<subset>.txt" in err


def test_named_and_unnamed_subsets_together_are_refused(tmp_path, capsys):
    root = make_cvat_export(str(tmp_path / "cvat"))
    with open(os.path.join(root, "ImageSets", "Segmentation", "Train.txt"), "w") as handle:
        handle.write("frame_000000\n")
    code, err = one_line_refusal(capsys, ["--dataset_family", "cvat_mask", "--cvat_path", root])
    assert code == 1 and "subsets default are not named train, val or test while Train are" in err


# --- folder: an ignore colour ----------------------------------------------------------------------------
def test_folder_rgb_masks_may_name_an_ignore_colour(tmp_path):
    root = str(tmp_path / "folder")
    os.makedirs(root)
    with open(os.path.join(root, "classes.txt"), "w") as handle:
        handle.write("road 128 64 128\ncar 0 0 142\nvoid 0 0 0 ignore\n")
    indices = np.random.RandomState(0).randint(0, 3, (H, W))
    colors = np.array([(128, 64, 128), (0, 0, 142), (0, 0, 0)], np.uint8)
    for split in ("train", "val"):
        write_jpg(os.path.join(root, "images", split, "a.jpg"), random_image(H, W, 0))
        write_png(os.path.join(root, "masks", split, "a.png"), colors[indices])
    family = families.create("folder", folder_path=root)
    assert family.class_names == ("road", "car")
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    np.testing.assert_array_equal(records(summary.outdir, "validation")["a.jpg"]["label"],
                                  np.array([0, 1, 255], np.uint8)[indices])


@pytest.mark.parametrize("line", ["void 0 0 ignore", "void 0 0 300 ignore"])
def test_folder_ignore_line_without_a_colour_is_refused(tmp_path, line):
    with open(tmp_path / "classes.txt", "w") as handle:
        handle.write("road\n%s\n" % line)
    with pytest.raises(families.DatasetError, match=r"classes.txt:2: an ignore line is 'name r g b ignore'"):
        families.create("folder", folder_path=str(tmp_path))


@requires(CAMVID)
def test_real_camvid_labels_as_coco_rle_convert_back_unchanged(tmp_path):
    """Five real CamVid labels, each class region one compressed-RLE annotation (void left unannotated), convert
    back to the very same labels with void as the ignore label."""
    names = sorted(os.listdir(os.path.join(CAMVID, "val")))[:5]
    images, annotations, truth = [], [], {}
    for image_id, name in enumerate(names):
        label = np.asarray(Image.open(os.path.join(CAMVID, "valannot", name)))
        truth[name] = np.where(label == 11, 255, label)
        images.append({"id": image_id, "file_name": name, "height": label.shape[0], "width": label.shape[1]})
        annotations += [{"id": len(annotations) + 1, "image_id": image_id, "category_id": c + 1, "iscrowd": 0,
                         "segmentation": compressed_rle(label == c)} for c in range(11) if (label == c).any()]
    root = str(tmp_path / "coco")
    write_json(os.path.join(root, "annotations", "instances_val.json"), {
        "images": images, "annotations": annotations,
        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(families.get("camvid").class_names)]})
    family = families.create("coco_json", coco_json_path=root, coco_images_path=os.path.join(CAMVID, "val"),
                             unannotated="ignore")
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    converted = records(summary.outdir, "validation")
    assert sorted(converted) == names
    for name in names:
        np.testing.assert_array_equal(converted[name]["label"], truth[name])


def test_an_unreadable_labelme_json_is_skipped_and_named_or_fatal_with_strict(tmp_path):
    root = make_labelme(str(tmp_path / "labelme"))
    write_json(os.path.join(root, "train", "more.json"), labelme_document("more.jpg", []))
    write_jpg(os.path.join(root, "train", "more.jpg"), random_image(H, W, 9))
    broken = os.path.join(root, "train", "cats.json")
    with open(broken, "r+b") as handle:
        handle.truncate(40)  # a half-written file
    summary = convert.convert(families.create("labelme", labelme_path=root), str(tmp_path / "out"), progress=False)
    skipped = summary.splits["training"].skipped
    assert [name for name, _ in skipped] == ["train/cats"] and broken + ": cannot read LabelMe JSON" in skipped[0][1]
    assert summary.splits["training"].examples == ["train/more.jpg"]
    with pytest.raises(families.UnreadableFileError, match="cats.json: cannot read LabelMe JSON"):
        convert.convert(families.create("labelme", labelme_path=root), str(tmp_path / "out"), strict=True,
                        progress=False)

"""What test.py writes and where: raw prediction files, the movie legend, result folder names and reuse."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from utils import viz
from utils.inference import predictions, result_folders

NAMES = ["sky", "road", "car"]
PALETTE = [(128, 128, 128), (128, 64, 128), (64, 0, 128)]
IGNORE = 3


def test_parse_formats():
    assert predictions.parse_formats("") == () and predictions.parse_formats(None) == ()
    assert predictions.parse_formats("npy,png") == ("png", "npy") == predictions.parse_formats(" png , npy ")
    assert predictions.parse_formats("PNG") == ("png",)
    with pytest.raises(ValueError, match="--save_masks 'jpg': choose png, npy or png,npy"):
        predictions.parse_formats("jpg")
    with pytest.raises(ValueError, match="do not fit an 8-bit PNG"):
        predictions.check_classes(("png",), 300)
    predictions.check_classes(("npy",), 300)


def test_masks_are_class_indices_in_the_palette_and_probabilities_float16(tmp_path):
    rng = np.random.RandomState(0)
    probabilities = rng.dirichlet(np.ones(3), size=(5, 7)).astype(np.float32)
    classes = probabilities.argmax(-1).astype(np.uint8)
    writer = predictions.PredictionWriter(str(tmp_path), ("png", "npy"), NAMES, PALETTE, IGNORE)
    written = writer.write("frame", classes, probabilities, source="a/frame.jpg")
    again = writer.write("frame", classes, probabilities, source="b/frame.jpg")  # same stem, other folder
    assert written["png"] == str(tmp_path / "masks" / "frame.png")
    assert again["png"] == str(tmp_path / "masks" / "frame_2.png")
    mask = Image.open(written["png"])
    assert mask.mode == "P" and mask.size == (7, 5)
    np.testing.assert_array_equal(predictions.read_mask(written["png"]), classes)
    colours = np.asarray(mask.getpalette()[:3 * (IGNORE + 1)]).reshape(-1, 3).tolist()
    assert colours == [list(c) for c in PALETTE] + [list(viz.IGNORE_COLOR)]
    saved = np.load(written["npy"])
    assert saved.dtype == np.float16 and saved.shape == (5, 7, 3)
    np.testing.assert_allclose(saved, probabilities, atol=1e-3)
    np.testing.assert_array_equal(saved.argmax(-1), classes)
    index = json.load(open(writer.save_index()))
    assert index["class_names"] == NAMES and index["ignore_label"] == IGNORE and index["images"] == 2
    assert index["palette"] == [list(c) for c in PALETTE]
    assert [f["source"] for f in index["files"]] == ["a/frame.jpg", "b/frame.jpg"]
    assert index["files"][1] == {"png": os.path.join("masks", "frame_2.png"),
                                 "npy": os.path.join("probabilities", "frame_2.npy"), "source": "b/frame.jpg"}


def test_ignore_label_keeps_its_index(tmp_path):
    writer = predictions.PredictionWriter(str(tmp_path), ("png",), NAMES, PALETTE, IGNORE)
    label = np.array([[0, 1], [2, IGNORE]], np.uint8)
    path = writer.write("label", label)["png"]
    np.testing.assert_array_equal(predictions.read_mask(path), label)
    assert not os.path.exists(tmp_path / "probabilities")
    with pytest.raises(ValueError, match="needs the probabilities"):
        predictions.PredictionWriter(str(tmp_path), ("npy",), NAMES, PALETTE).write("x", label)


def test_legend_strip_is_as_wide_as_the_frame_with_every_class_colour():
    for width in (80, 481, 1920):
        strip = viz.legend_strip(NAMES, PALETTE, width)
        assert strip.shape[1] == width and strip.shape[0] % 2 == 0 and strip.dtype == np.uint8
        colours = {tuple(c) for c in strip.reshape(-1, 3)}
        assert set(PALETTE) <= colours
    many = ["class %d" % i for i in range(30)]
    assert viz.legend_strip(many, viz.voc_colormap(30), 200).shape[0] > viz.legend_strip(many, viz.voc_colormap(30),
                                                                                         1200).shape[0]  # wraps


def test_folder_names_say_what_was_scored():
    assert result_folders.folder_name("test_validation", 130) == "test_validation_130"
    assert result_folders.folder_name("test_validation", "130_tflite_int8") == "test_validation_130_tflite_int8"
    assert result_folders.folder_name("test_test", "6_bf16", scales=(0.75, 1, 1.25), flip=True, pixels=0) \
        == "test_test_6_bf16_native_scales0.75-1-1.25_flip"
    assert result_folders.folder_name("segmented", 6, tile=(256, 256), tile_overlap=0.5, pixels=512) \
        == "segmented_6_px512_tile256x256_overlap0.5"
    assert result_folders.folder_name("test_validation", 6, tile=(64, 96)) == "test_validation_6_tile64x96"


def _results(folder, **settings):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as handle:
        json.dump({"mIoU": 0.5, "settings": settings}, handle)


def test_a_folder_with_other_settings_is_never_overwritten(tmp_path):
    base = str(tmp_path / "test_validation_6_tflite_int8")
    assert result_folders.choose_folder(base, {"model": "a"}, "results.json") == (base, None)
    _results(base, model="a", scales=[1.0])
    same, note = result_folders.choose_folder(base, {"model": "a", "scales": (1.0,)}, "results.json")
    assert same == base and note == "%s holds results made with the same settings: replacing them" % base
    other, note = result_folders.choose_folder(base, {"model": "b", "scales": (1.0,)}, "results.json")
    assert other == base + "_2"
    assert note == "%s holds results made with other settings (model); writing to %s_2 instead" % (
        base, os.path.basename(base))
    _results(other, model="b", scales=[1.0])
    assert result_folders.choose_folder(base, {"model": "b", "scales": [1.0]}, "results.json")[0] == base + "_2"
    third, note = result_folders.choose_folder(base, {"model": "c", "scales": [0.5]}, "results.json")
    assert third == base + "_3" and "(model, scales)" in note
    forced, note = result_folders.choose_folder(base, {"model": "c"}, "results.json", overwrite=True)
    assert forced == base and "--overwrite: replacing them" in note


def test_a_folder_without_a_record_is_left_alone(tmp_path):
    base = tmp_path / "segmented_6"
    base.mkdir()
    assert result_folders.choose_folder(str(base), {"a": 1}, "segmented.json")[0] == str(base)  # empty: free
    (base / "mine.txt").write_text("keep")
    folder, note = result_folders.choose_folder(str(base), {"a": 1}, "segmented.json")
    assert folder == str(base) + "_2" and "holds no segmented.json with settings to compare with" in note

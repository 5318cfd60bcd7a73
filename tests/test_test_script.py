"""test.py on the tiny trained sample run: scores, files, pictures, checkpoints, images and movies."""
import glob
import importlib.util
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CAMVID, ROOT, SAMPLE, requires, run_script
from utils.compat import precision
from utils.compat import backend
from utils.inference import evaluation, predictions
from utils.training.config import RunConfig

MIOU_LINE = re.compile(r"mIoU (\d+\.\d) % \(95 % CI (\d+\.\d)-(\d+\.\d)\)")


def _load_test_script():
    """test.py by path: `import test` could find the standard library's test package instead."""
    spec = importlib.util.spec_from_file_location("segmentor_test_script", os.path.join(ROOT, "test.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_script = _load_test_script()


def _sample_val_labels():
    return [np.asarray(Image.open(p)) for p in sorted(glob.glob(os.path.join(SAMPLE, "valannot", "*.png")))]


@pytest.fixture(scope="module")
def scored_run(tiny_run, tmp_path_factory):
    """One real command-line run over the sample validation split, shared by the checks below."""
    outdir = str(tmp_path_factory.mktemp("scored"))
    proc = run_script("test.py", "--traindir", tiny_run["folder"], "--bootstrap", "200", "--first2viz", "1",
                      "--last2viz", "2", "--outdir", outdir)
    return {"stdout": proc.stdout, "outdir": outdir, "results": json.load(open(os.path.join(outdir, "results.json")))}


def test_prints_miou_with_interval_and_per_class_iou(scored_run):
    out = scored_run["stdout"]
    match = MIOU_LINE.search(out)
    assert match, out
    miou, low, high = (float(g) for g in match.groups())
    assert low <= miou <= high
    assert "resnet_v1_18_LinkNet step 6 on camvid validation (8 images, pixels 64" in out
    assert "per-class IoU:" in out and "Road" in out and "images/s" in out


def test_results_json_scores_every_labelled_pixel_at_original_resolution(scored_run):
    results = scored_run["results"]
    labels = _sample_val_labels()
    # every non-ignore pixel of the 480x360 labels is scored: nothing lost to the 64-pixel net input
    assert results["scored_pixels"] == sum(int((label != 11).sum()) for label in labels)
    assert results["num_images"] == 8 and len(results["filenames"]) == 8 and len(results["per_image_mIoU"]) == 8
    assert results["step"] == 6 and results["pixels"] == 64 and results["split"] == "validation"
    assert results["backend"]["onednn"] == backend.onednn_enabled() and results["backend"]["summary"].startswith(
        "oneDNN o")
    confusion = np.asarray(results["confusion_matrix"])
    assert confusion.shape == (11, 11) and confusion.sum() == results["scored_pixels"]
    np.testing.assert_array_equal(confusion.sum(1), [np.bincount(np.concatenate([l[l != 11] for l in labels]),
                                                                 minlength=11)[c] for c in range(11)])
    assert 0.0 <= results["mIoU"] <= 1.0
    low, high = results["mIoU_ci"]
    assert low <= results["mIoU"] <= high and results["bootstrap_samples"] == 200
    assert set(results["per_class_iou"]) == set(results["class_names"]) and len(results["class_names"]) == 11
    for key in ("pixel_accuracy", "mean_class_accuracy", "per_class_accuracy", "images_per_second", "checkpoint"):
        assert key in results


def test_confusion_csv_png_and_panels(scored_run):
    outdir, results = scored_run["outdir"], scored_run["results"]
    matrix, names = evaluation.read_confusion_csv(os.path.join(outdir, "confusion_matrix.csv"))
    np.testing.assert_array_equal(matrix, results["confusion_matrix"])
    assert names == results["class_names"]
    heat = Image.open(os.path.join(outdir, "confusion_matrix.png"))
    assert heat.size[0] > 300 and heat.size[1] > 300
    panels = sorted(glob.glob(os.path.join(outdir, "viz", "*_panel.png")))
    overlays = sorted(glob.glob(os.path.join(outdir, "viz", "*_overlay.png")))
    assert [os.path.basename(p)[:3] for p in panels] == ["001", "002"] and len(overlays) == 2
    panel = Image.open(panels[0])
    assert panel.size[0] > 3 * 480 and panel.size[1] >= 360        # image | prediction | truth + legend
    assert Image.open(overlays[0]).size == (480, 360)               # original resolution
    assert results["pictures"] == [os.path.relpath(p, outdir) for p in panels]


def test_unknown_afteriter_lists_the_saved_steps(tiny_run, capsys):
    assert test_script.main(["--traindir", tiny_run["folder"], "--afteriter", "4"]) == 2
    assert "saved steps: 3, 6" in capsys.readouterr().err


def test_select_steps():
    saved = [3, 6, 9]
    assert test_script.select_steps(None, saved) == [None]
    assert test_script.select_steps("6", saved) == [6]
    assert test_script.select_steps("3,9", saved) == [3, 9]
    assert test_script.select_steps("last:2", saved) == [6, 9]
    with pytest.raises(test_script.UsageError, match="saved steps: 3, 6, 9"):
        test_script.select_steps("3,4", saved)
    with pytest.raises(test_script.UsageError):
        test_script.select_steps("soon", saved)


def test_afteriter_list_gives_the_spread_across_checkpoints(tiny_run, tmp_path, capsys):
    outdir = str(tmp_path / "spread")
    assert test_script.main(["--traindir", tiny_run["folder"], "--afteriter", "3,6", "--num_images", "4",
                             "--bootstrap", "50", "--last2viz", "-1", "--outdir", outdir]) == 0
    out = capsys.readouterr().out
    assert re.search(r"step 3: mIoU \d+\.\d % \(95 % CI", out) and re.search(r"step 6: mIoU \d+\.\d %", out)
    assert "mIoU over checkpoints 3, 6: min" in out
    summary = json.load(open(os.path.join(outdir, "results.json")))
    spread = summary["checkpoint_spread"]
    per_step = {step: json.load(open(os.path.join(outdir, "step_%d" % step, "results.json")))["mIoU"]
                for step in (3, 6)}
    assert spread["steps"] == [3, 6] and spread["mIoU"] == [per_step[3], per_step[6]]
    assert spread["min"] == min(per_step.values()) and spread["max"] == max(per_step.values())
    assert spread["std"] == pytest.approx(abs(per_step[3] - per_step[6]) / 2)
    assert set(spread["mIoU_ci"]) == {"3", "6"}
    assert per_step[3] != per_step[6]  # two different checkpoints really were restored


def test_native_resolution_without_bootstrap(tiny_run, tmp_path, capsys):
    outdir = str(tmp_path / "native")
    assert test_script.main(["--traindir", tiny_run["folder"], "--pixels", "0", "--num_images", "2",
                             "--bootstrap", "0", "--last2viz", "-1", "--outdir", outdir]) == 0
    results = json.load(open(os.path.join(outdir, "results.json")))
    assert results["pixels"] == 0 and results["num_images"] == 2 and results["mIoU_ci"] is None
    assert re.search(r"^mIoU \d+\.\d %$", capsys.readouterr().out, re.M)


def test_mixed_precision_takes_train_py_values(tiny_run, tmp_path, capsys):
    """test.py's --mixed_precision is train.py's (auto|bf16|fp16|fp32), resolved the same way, named in results."""
    outdir = str(tmp_path / "auto")
    assert test_script.main(["--traindir", tiny_run["folder"], "--num_images", "2", "--bootstrap", "0",
                             "--last2viz", "-1", "--mixed_precision", "auto", "--outdir", outdir]) == 0
    assert json.load(open(os.path.join(outdir, "results.json")))["precision"] == precision.resolve("auto").mode
    with pytest.raises(SystemExit) as usage:
        test_script.main(["--traindir", tiny_run["folder"], "--mixed_precision", "fp8"])
    assert usage.value.code == 2
    if not precision.visible_gpus():
        assert test_script.main(["--traindir", tiny_run["folder"], "--mixed_precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "auto" in err and "bf16" in err and "fp8" in err  # argparse lists the choices
    assert "--mixed_precision fp16 needs a GPU" in err or precision.visible_gpus()


def test_imagepath_folder_with_multiscale_and_flip(tiny_run, tmp_path, capsys):
    import shutil
    outdir, folder = str(tmp_path / "pics"), str(tmp_path / "mine")
    os.makedirs(folder)
    for path in sorted(glob.glob(os.path.join(SAMPLE, "val", "*")))[:3]:
        shutil.copy(path, folder)
    Image.open(os.path.join(folder, os.listdir(folder)[0])).resize((200, 150)).save(os.path.join(folder, "small.png"))
    assert test_script.main(["--traindir", tiny_run["folder"], "--imagepath", folder, "--scales", "0.75,1.25",
                             "--flip", "--outdir", outdir]) == 0
    out = capsys.readouterr().out
    assert "scales 0.75,1.25, flip" in out and "segmented 4 image(s)" in out
    for image in sorted(os.listdir(folder)):
        stem = os.path.splitext(image)[0]
        overlay = Image.open(os.path.join(outdir, stem + "_overlay.png"))
        assert overlay.size == Image.open(os.path.join(folder, image)).size
        assert os.path.isfile(os.path.join(outdir, stem + "_panel.png"))


def test_movie_comes_back_segmented_with_the_same_frames(tiny_run, tmp_path, capsys):
    from utils.inference.movie import read_frames, video_codec, video_info, write_video
    from utils.inference.segmenter import Segmenter
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(glob.glob(os.path.join(SAMPLE, "val", "*")))[:5]]
    movie = str(tmp_path / "drive.mp4")
    assert write_video(movie, frames, fps=12) == 5
    outdir = str(tmp_path / "movie")
    assert test_script.main(["--traindir", tiny_run["folder"], "--moviepath", movie, "--outdir", outdir,
                             "--save_masks", "png"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"segmented movie: 5 frames -> .*drive_segmented\.mp4 \(H\.264\), \d+\.\d+ frames/s measured", out)
    legend = int(re.search(r"a (\d+)-pixel legend under the frames", out).group(1))
    segmented = os.path.join(outdir, "drive_segmented.mp4")
    info = video_info(segmented)
    assert (info.frame_count, info.width, info.height) == (5, 480, 360 + legend) and info.fps == pytest.approx(12)
    assert legend > 0 and video_codec(segmented) == "h264"
    decoded = list(read_frames(segmented))
    assert len(decoded) == 5
    assert np.abs(decoded[0][:360].astype(int) - frames[0].astype(int)).mean() > 5  # colours were painted on
    palette = RunConfig.load(tiny_run["folder"]).data.palette
    strip = decoded[0][362:].reshape(-1, 3).astype(int)  # H.264 moves colours a little: nearest within 12
    assert all(np.abs(strip - colour).max(-1).min() < 12 for colour in palette)  # every class's swatch
    # one mask per frame, numbered from 1, equal to the class maps of the frames the movie decodes to
    masks = sorted(glob.glob(os.path.join(outdir, "masks", "*.png")))
    assert [os.path.basename(m) for m in masks] == ["drive_%06d.png" % n for n in range(1, 6)]
    with Segmenter(tiny_run["folder"]) as segmenter:
        expected = segmenter.segment(list(read_frames(movie)))
    for mask, want in zip(masks, expected):
        np.testing.assert_array_equal(predictions.read_mask(mask), want)
    assert test_script.main(["--traindir", tiny_run["folder"], "--moviepath", movie, "--outdir", outdir,
                             "--no_legend"]) == 0
    assert "legend" not in capsys.readouterr().out.split("segmented movie:")[1].split("\n")[0]
    info = video_info(segmented)
    assert (info.frame_count, info.width, info.height) == (5, 480, 360)  # the same settings: folder reused


def _confusion_of_masks(mask_dir, labels, filenames, num_classes=11, ignore=11):
    """The summed confusion matrix of saved masks against the labels: equal to results.json's when the masks
    are the very predictions the scoring counted."""
    total = np.zeros((num_classes, num_classes), np.int64)
    for filename, label in zip(filenames, labels):
        mask = predictions.read_mask(os.path.join(mask_dir, os.path.splitext(filename)[0] + ".png"))
        total += evaluation.image_confusion(mask, label, num_classes, ignore)
    return total


def test_save_masks_writes_exactly_the_scored_predictions(tiny_run, tmp_path, capsys):
    outdir = str(tmp_path / "masks")
    assert test_script.main(["--traindir", tiny_run["folder"], "--num_images", "3", "--bootstrap", "0",
                             "--last2viz", "-1", "--save_masks", "png,npy", "--outdir", outdir]) == 0
    out = capsys.readouterr().out
    assert "saved 3 prediction(s): masks, probabilities in %s" % outdir in out
    results = json.load(open(os.path.join(outdir, "results.json")))
    assert results["predictions"] == {"formats": ["png", "npy"], "folders": {"png": "masks", "npy": "probabilities"},
                                      "images": 3, "index": "predictions.json"}
    names = [os.path.basename(f) for f in results["filenames"]]
    labels = _sample_val_labels()[:3]
    np.testing.assert_array_equal(_confusion_of_masks(os.path.join(outdir, "masks"), labels, names),
                                  results["confusion_matrix"])  # same pixels as the scoring counted
    palette = [list(c) for c in RunConfig.load(tiny_run["folder"]).data.palette]
    for name in names:
        mask = Image.open(os.path.join(outdir, "masks", os.path.splitext(name)[0] + ".png"))
        assert mask.mode == "P" and mask.size == (480, 360)
        assert np.asarray(mask.getpalette()[:33]).reshape(-1, 3).tolist() == palette
        probabilities = np.load(os.path.join(outdir, "probabilities", os.path.splitext(name)[0] + ".npy"))
        assert probabilities.dtype == np.float16 and probabilities.shape == (360, 480, 11)
        np.testing.assert_allclose(probabilities.astype(np.float32).sum(-1), 1.0, atol=1e-2)
        assert (probabilities.argmax(-1) == np.asarray(mask)).mean() > 0.999  # float16 ties only
    index = json.load(open(os.path.join(outdir, "predictions.json")))
    assert index["palette"] == palette and index["ignore_label"] == 11 and len(index["files"]) == 3


def test_save_masks_for_imagepath_are_the_segmenters_class_maps(tiny_run, tmp_path, capsys):
    from utils.inference.segmenter import Segmenter
    outdir, paths = str(tmp_path / "pics"), sorted(glob.glob(os.path.join(SAMPLE, "val", "*")))[:2]
    assert test_script.main(["--traindir", tiny_run["folder"], "--imagepath", os.path.join(SAMPLE, "val", "*.jpg"),
                             "--save_masks", "png", "--outdir", outdir]) == 0
    assert "saved 8 prediction(s): masks/ (class-index PNGs) in %s" % outdir in capsys.readouterr().out
    record = json.load(open(os.path.join(outdir, "segmented.json")))
    assert record["predictions"]["images"] == 8 and record["settings"]["imagepath"].endswith("*.jpg")
    assert not os.path.exists(os.path.join(outdir, "probabilities"))
    with Segmenter(tiny_run["folder"]) as segmenter:
        for path in paths:
            expected = segmenter.segment(np.asarray(Image.open(path).convert("RGB")))
            got = predictions.read_mask(os.path.join(outdir, "masks", os.path.splitext(os.path.basename(path))[0]
                                                     + ".png"))
            np.testing.assert_array_equal(got, expected)


def test_bad_arguments_fail_cleanly(tiny_run, tmp_path, capsys):
    assert test_script.main(["--traindir", str(tmp_path / "nowhere")]) == 2
    assert test_script.main(["--traindir", tiny_run["folder"], "--imagepath", str(tmp_path / "*.jpg")]) == 2
    assert test_script.main(["--traindir", tiny_run["folder"], "--datapath", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no images found" in err and "tfrecordify.py" in err


@requires(CAMVID)
def test_make_media_regenerates_the_readme_pictures(tiny_run, tmp_path):
    outdir = str(tmp_path / "media")
    run_script("media/make_media.py", "--traindir", tiny_run["folder"], "--camvid_path", CAMVID, "--frames", "3",
               "--outdir", outdir)
    made = json.load(open(os.path.join(outdir, "made_with.json")))
    assert made["step"] == 6 and len(made["sequence_gif"]["frames"]) == 3
    gif = Image.open(os.path.join(outdir, "camvid_sequence.gif"))
    assert gif.n_frames == 3 and gif.size == (240, 180)
    assert Image.open(os.path.join(outdir, "camvid_prediction.png")).size[0] > 3 * 360

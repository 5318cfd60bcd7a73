"""TFLite (fp32 / fp16 / int8) and ONNX exports of the tiny trained run, and test.py scoring them."""
import contextlib
import glob
import io
import json
import os
import re
import shutil

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from tests.conftest import SAMPLE
from tests.test_test_script import test_script
from utils.compat import tf
from utils.inference import deploy, runtimes
from utils.inference.segmenter import Segmenter

SCORE_ARGS = ("--num_images", "3", "--bootstrap", "50", "--last2viz", "0")


def _test_py(*argv):
    """test.py's main in this process (no interpreter start): (exit code, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = test_script.main([str(a) for a in argv])
    return code, out.getvalue()


def _sample_images(count=8):
    paths = sorted(glob.glob(os.path.join(SAMPLE, "val", "*.jpg")))[:count]
    return [np.asarray(Image.open(path).convert("RGB")) for path in paths]


@pytest.fixture(scope="module")
def checkpoint_results(tiny_run, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("checkpoint_scored")
    assert _test_py("--traindir", tiny_run["folder"], *SCORE_ARGS, "--outdir", outdir)[0] == 0
    return json.load(open(os.path.join(outdir, "results.json")))


@pytest.fixture(scope="module")
def quantized(tiny_run, tmp_path_factory):
    """test.py --quantized: the int8 export (4 calibration images) and its score, in one command."""
    outdir = tmp_path_factory.mktemp("int8_scored")
    code, stdout = _test_py("--traindir", tiny_run["folder"], "--quantized", "--calibration_images", "4",
                            *SCORE_ARGS, "--outdir", outdir)
    assert code == 0, stdout
    model = os.path.join(tiny_run["folder"], "export_tflite_int8_6", "model.tflite")
    return {"stdout": stdout, "model": model, "results": json.load(open(os.path.join(outdir, "results.json"))),
            "record": json.load(open(os.path.join(os.path.dirname(model), "export.json")))}


def test_quantized_exports_int8_with_its_record_and_scores_it(quantized, tiny_run):
    record, results = quantized["record"], quantized["results"]
    assert record["format"] == "tflite" and record["precision"] == "int8" and record["input"]["shape"] == [1, 64, 64, 3]
    assert record["calibration"]["images"] == 4 == len(set(record["calibration"]["files"]))
    assert record["calibration"]["seed"] == 0 and record["calibration"]["split"] == "training"
    assert record["converter"]["tensorflow"] == tf.__version__ and record["runargs"]["net_name"] == results["net"]
    assert record["batch_norms_folded"] and record["file_bytes"] == os.path.getsize(quantized["model"])
    assert results["runtime"].startswith("tflite") and results["precision"] == "int8"
    assert results["model"] == os.path.abspath(quantized["model"]) and results["step"] == 6
    assert "runtime: tflite" in quantized["stdout"] and "precision int8" in quantized["stdout"]
    code, again = _test_py("--traindir", tiny_run["folder"], "--quantized", "--calibration_images", "4",
                           "--imagepath", os.path.join(SAMPLE, "val", "0016E5_08039.jpg"))
    assert code == 0 and "reusing the int8 export" in again and "_overlay.png" in again


def test_exported_model_results_have_the_checkpoints_keys(quantized, checkpoint_results):
    assert set(quantized["results"]) == set(checkpoint_results)
    assert checkpoint_results["runtime"].startswith("tensorflow") and checkpoint_results["precision"] == "fp32"
    assert checkpoint_results["model"] is None
    assert quantized["results"]["scored_pixels"] == checkpoint_results["scored_pixels"]


def test_int8_class_maps_agree_with_fp32(quantized, tiny_run):
    images = _sample_images()
    with Segmenter(tiny_run["folder"]) as segmenter:
        reference = segmenter.segment(images)
    with runtimes.ExportedSegmenter(quantized["model"], tiny_run["folder"]) as segmenter:
        assert segmenter.precision == "int8"
        maps = segmenter.segment(images)
    agreement = np.mean([(a == b).mean() for a, b in zip(maps, reference)])
    assert agreement >= 0.95, agreement


def test_fp32_tflite_and_onnx_equal_the_tf_graph(tiny_run, tmp_path):
    """The net alone on the same canvases, then the whole scoring path against test.py's Segmenter."""
    graph_def, config, _ = deploy.net_graph_def(tiny_run["folder"], None, (64, 64))
    images = _sample_images(2)
    canvases = deploy.fit_to_canvas(images, (64, 64), deploy.pad_value(config.model.encoder))
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        with tf.Session() as sess:
            expected = np.concatenate([sess.run("logits:0", {"images:0": canvas[None]}) for canvas in canvases])
    paths = {"tflite": str(tmp_path / "model.tflite"), "onnx": str(tmp_path / "model.onnx")}
    for name, content in ((paths["tflite"], deploy.convert_tflite(graph_def, "fp32", "logits")),
                          (paths["onnx"], deploy.convert_onnx(graph_def, "logits")),
                          (str(tmp_path / "fp16.tflite"), deploy.convert_tflite(graph_def, "fp16", "logits"))):
        with open(name, "wb") as handle:
            handle.write(content)
    scale = max(1.0, float(np.abs(expected).max()))
    # the ONNX graph's input and output are named as export.json says: feed {"images": x} as a user would
    session = onnxruntime.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
    assert [v.name for v in session.get_inputs()] == ["images"] and [v.name for v in session.get_outputs()] == [
        "logits"]
    np.testing.assert_allclose(session.run(["logits"], {"images": canvases[:1]})[0], expected[:1],
                               atol=1e-4 * scale, rtol=0)
    with Segmenter(tiny_run["folder"]) as segmenter:
        classes, probabilities = segmenter.segment(images, probabilities=True)
    for kind, path in paths.items():
        runner = runtimes.load_runner(path)
        assert runner.kind == kind and runner.precision == "fp32" and runner.shape == (64, 64)
        np.testing.assert_allclose(runner(canvases), expected, atol=1e-4 * scale, rtol=0)
        with runtimes.ExportedSegmenter(path, tiny_run["folder"]) as segmenter:
            got_classes, got_probabilities = segmenter.segment(images, probabilities=True)
        for got, want in zip(got_probabilities, probabilities):
            assert got.shape == want.shape == (360, 480, 11)
            np.testing.assert_allclose(got, want, atol=1e-4)
        assert np.mean([(a == b).mean() for a, b in zip(got_classes, classes)]) > 0.999
    with runtimes.ExportedSegmenter(str(tmp_path / "fp16.tflite"), tiny_run["folder"]) as segmenter:
        assert segmenter.precision == "fp16"
        got_classes = segmenter.segment(images)
    assert np.mean([(a == b).mean() for a, b in zip(got_classes, classes)]) > 0.99


def test_export_onnx_class_map_at_an_image_shape_from_the_command_line(tiny_run, tmp_path):
    folder = tiny_run["folder"]
    code, out = _test_py("--traindir", folder, "--export_onnx", tmp_path / "onnx", "--export_output", "classes",
                         "--export_shape", "360x480")
    assert code == 0 and "as onnx fp32" in out
    record = json.load(open(tmp_path / "onnx" / "export.json"))
    assert record["format"] == "onnx" and record["opset"] == deploy.ONNX_OPSET and record["output"]["kind"] == "classes"
    assert record["output"]["shape"] == [1, 360, 480] and record["converter"]["tf2onnx"]
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [v.name for v in session.get_inputs()] == [record["input"]["name"]] == ["images"]
    assert [v.name for v in session.get_outputs()] == [record["output"]["kind"]] == ["classes"]
    with runtimes.ExportedSegmenter(str(tmp_path / "onnx" / "model.onnx"), folder) as segmenter:
        assert segmenter.shape == (360, 480) and segmenter.pixels == 0
        maps = segmenter.segment(_sample_images(2))  # a class-map export scores too, images as they are
        assert [m.shape for m in maps] == [(360, 480)] * 2
        with pytest.raises(runtimes.ShapeMismatch, match="takes 360x480 images"):
            segmenter.segment(np.zeros((100, 120, 3), np.uint8))


def test_bad_model_shape_and_precision_give_one_clear_line(tiny_run, tmp_path, capsys, quantized):
    folder = tiny_run["folder"]
    garbage = tmp_path / "model.tflite"
    garbage.write_bytes(b"not a flatbuffer")

    def error(*argv):
        assert test_script.main(["--traindir", folder] + list(argv)) == 2
        return capsys.readouterr().err.strip()

    assert error("--model", str(garbage)).startswith("error: --model %s: not a loadable TFLite model" % garbage)
    assert "no such file" in error("--model", str(tmp_path / "missing.onnx"))
    assert "expected a .tflite or .onnx file" in error("--model", str(tmp_path))
    message = error("--model", quantized["model"], "--pixels", "128")
    assert message.startswith("error: --pixels 128: %s takes 64x64 inputs" % quantized["model"])
    assert "multi-scale" in error("--model", quantized["model"], "--scales", "0.5,1")
    message = error("--export_tflite", "int4", str(tmp_path / "int4"))
    assert message == "error: --export_tflite 'int4': unknown precision; choose fp32, fp16, int8, int16x8"
    assert "--export_shape '64'" in error("--export_onnx", str(tmp_path / "x"), "--export_shape", "64")
    assert "--calibration_images 999" in error("--export_tflite", "int8", str(tmp_path / "y"),
                                               "--calibration_images", "999")
    assert not os.path.exists(tmp_path / "int4")


def _results_folder(stdout):
    return re.search(r"^results: (.+)$", stdout, re.M).group(1)


def test_results_of_another_model_file_or_settings_never_overwrite_a_folder(quantized, tiny_run, tmp_path):
    """The issue's case: --model <an int8 file> and --quantized --bootstrap 0 both score 'step 6, tflite int8';
    the second gets its own folder (and says so), and the same settings again reuse theirs."""
    folder = tiny_run["folder"]
    shutil.copytree(os.path.dirname(quantized["model"]), tmp_path / "deploy_int8")
    by_file = ("--traindir", folder, "--model", tmp_path / "deploy_int8" / "model.tflite", *SCORE_ARGS)
    code, first_out = _test_py(*by_file)
    first = _results_folder(first_out)
    assert code == 0 and os.path.basename(first).startswith("test_validation_6_tflite_int8")
    code, second_out = _test_py("--traindir", folder, "--quantized", "--calibration_images", "4", "--bootstrap", "0",
                                "--num_images", "3", "--last2viz", "0")
    second = _results_folder(second_out)
    assert code == 0 and second != first and second.startswith(first.split("_tflite_int8")[0] + "_tflite_int8")
    assert "holds results made with other settings (bootstrap, model); writing to %s instead" % (
        os.path.basename(second)) in second_out
    kept, new = (json.load(open(os.path.join(path, "results.json"))) for path in (first, second))
    assert kept["bootstrap_samples"] == 50 and kept["model"].endswith(os.path.join("deploy_int8", "model.tflite"))
    assert new["bootstrap_samples"] == 0 and new["model"] == os.path.abspath(quantized["model"])
    assert new["settings"]["model"] != kept["settings"]["model"]
    code, again_out = _test_py(*by_file)
    assert code == 0 and _results_folder(again_out) == first
    assert "note: %s holds results made with the same settings: replacing them" % first in again_out


def test_int8_calibration_default_takes_what_a_small_split_has(tiny_run, tmp_path):
    """The sample has 24 training images: the default (up to 100) uses all 24 and says so; an explicit count
    beyond them still stops (test_bad_model_shape_and_precision_give_one_clear_line)."""
    code, out = _test_py("--traindir", tiny_run["folder"], "--export_tflite", "int8", tmp_path / "int8")
    assert code == 0, out
    assert "calibrated on 24 training images (all the split has; the default takes up to 100), seed 0" in out
    calibration = json.load(open(tmp_path / "int8" / "export.json"))["calibration"]
    assert calibration["images"] == 24 == calibration["available"] == len(set(calibration["files"]))
    assert calibration["asked"] == "auto (up to 100)"
    assert deploy.calibration_count(0, 367) == 100 and deploy.calibration_count(0, 24) == 24
    assert deploy.calibration_count(7, 24) == 7
    with pytest.raises(deploy.ExportError, match=r"--calibration_images 25: choose 1\.\.24"):
        deploy.calibration_count(25, 24)


def test_int8_layer_report_and_a_partly_float_model(tiny_run, quantized, tmp_path):
    """bench/int8_layers.py: every quantized op's RMSE / scale by family, the logits' error, and an int8 model
    with one family left in float (its convolutions then take float32 inputs)."""
    import csv
    from tests.conftest import run_script
    written = tmp_path / "partly" / "model.tflite"
    proc = run_script("bench/int8_layers.py", "--traindir", tiny_run["folder"], "--images", "2",
                      "--calibration_images", "2", "--csv", tmp_path / "layers.csv", "--keep_float", "conv",
                      "--write", written)
    assert "| conv |" in proc.stdout and "logits: RMSE / std" in proc.stdout and "CPU:" in proc.stdout
    with open(tmp_path / "layers.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["family"] for row in rows} >= {"conv", "pool"} and all(float(r["rmse_per_scale"]) >= 0 for r in rows)
    assert re.search(r"ops of conv left in float", proc.stdout)

    def conv_input_types(path):
        interpreter = tf.lite.Interpreter(model_path=str(path))
        tensors = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
        return {tensors[op["inputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"}
    assert conv_input_types(written) == {np.float32}
    assert conv_input_types(quantized["model"]) == {np.int8}  # the int8 export: every conv int8
    refused = run_script("bench/int8_layers.py", "--traindir", tiny_run["folder"], "--keep_float", "norms",
                         "--write", written, check=False)
    assert refused.returncode == 2 and "unknown family" in refused.stderr and "layer_norm" in refused.stderr

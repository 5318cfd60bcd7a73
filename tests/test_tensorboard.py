"""The README's run comparison, `bash tboards/createlinks && tensorboard --logdir tboards`, on two real runs.

The runs are the session's `tiny_run` (ResNet18-LinkNet, 6 steps, logged every 2, validated every 3) and the
smallest second run (ResNet18-FCN32, 2 steps).  The installed `tensorboard` command serves them on a free local
port; we read what a browser reads from its HTTP data API and compare it with what each run's runlog says it
logged; then headless Chromium opens the scalars page of the two runs and must show both run names.
The HParams tab holds both runs' settings (read back through TensorBoard's event multiplexer and served by the
hparams plugin), and test.py's scores land in a run's tb_scores/ events at the scored step.
"""
import dataclasses
import glob
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator, plugin_event_multiplexer
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tests.conftest import ROOT, TINY_TRAIN_ARGS, linked_run_copy, run_script
from tools import headless_chromium
from tools.tensorboard_server import TensorBoard
from utils.compat import software, tf
from utils.inference import score_events
from utils.training import hparams, runfolder
from utils.training.config import RunConfig

# What the README's run-folder table promises TensorBoard shows (plus the per-class val_IoU/<class> tags).
README_SCALARS = ("loss", "learning_rate", "train_mIoU", "val_mIoU")
IMAGE_TAGS = ("val/0/image_prediction_truth", "val/1/image_prediction_truth")
TRAIN_LINE = re.compile(r" step (\d+) \| epoch [\d.]+ \| loss ([\d.]+) \| lr ([\d.e+-]+) \|")
VAL_LINE = re.compile(r" step (\d+) \| quarter-val mIoU ([\d.]+) on ")
SCALARS_PAGE = "/#scalars&tagFilter=mIoU&_smoothingWeight=0"
BROWSER_REQUIRED = os.environ.get("SEGMENTOR_REQUIRE_BROWSER", "") not in ("", "0")  # .ci/run sets it


def _value(flag):
    return TINY_TRAIN_ARGS[TINY_TRAIN_ARGS.index(flag) + 1]


@pytest.fixture(scope="module")
def second_run(tiny_run, tmp_path_factory):
    """The cheapest real run to compare with: another decoder, so another run name; 2 steps, validated at 2."""
    runs = tmp_path_factory.mktemp("second_runs")
    run_script("train.py", "--basenet", "resnet_v1_18", "--extended_arch", "FCN", "--no-fcn16",
               "--pretrained", "none", "--pixels", _value("--pixels"), "--batch_size", _value("--batch_size"),
               "--seed", "7", "--datapath", tiny_run["datapath"], "--runs_root", runs,
               "--max_steps", "2", "--val_every", "2", "--save_every", "2", "--log_every", "1")
    (folder,) = glob.glob(os.path.join(str(runs), "*_resnet_v1_18_FCN32__1"))
    return {"folder": folder, "runs": str(runs)}


@pytest.fixture(scope="module")
def tboards(tiny_run, second_run, tmp_path_factory):
    """A copy of tboards/createlinks in a fresh folder, run on both runs roots: the folder TensorBoard serves."""
    folder = tmp_path_factory.mktemp("tboards")
    script = shutil.copy(os.path.join(ROOT, "tboards", "createlinks"), folder)
    for run in (tiny_run, second_run):
        linked = subprocess.run(["bash", script, run["runs"]], capture_output=True, text=True, check=True)
        assert "1 run(s) linked" in linked.stdout, linked.stdout + linked.stderr
    runs = {os.path.basename(run["folder"]): run["folder"] for run in (tiny_run, second_run)}
    assert sorted(os.listdir(folder)) == sorted(["createlinks"] + list(runs))
    return {"folder": str(folder), "runs": runs}


@pytest.fixture(scope="module")
def board(tboards):
    with TensorBoard(tboards["folder"]) as server:
        yield server


def logged_steps(folder):
    """{'train': [(step, loss, lr)], 'val': [(step, mIoU)]} as the run's runlog states them."""
    log = open(os.path.join(folder, runfolder.RUNLOG)).read()
    return {"train": [(int(s), float(loss), float(lr)) for s, loss, lr in TRAIN_LINE.findall(log)],
            "val": [(int(s), float(miou)) for s, miou in VAL_LINE.findall(log)]}


def written_scalar_tags(folder):
    tags = set()
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value if v.HasField("simple_value"))
    return tags


def scalar_tags(board, runs):
    """Scalar tags per run once TensorBoard has read every run's event files."""
    expected = {run: written_scalar_tags(folder) for run, folder in runs.items()}
    return board.poll_json("/data/plugin/scalars/tags",
                           lambda tags: all(expected[run] <= set(tags.get(run, {})) for run in runs),
                           "every scalar tag of both runs")


def test_both_runs_are_listed(board, tboards):
    runs = board.poll_json("/data/runs", lambda runs: set(tboards["runs"]) <= set(runs), "both runs")
    assert sorted(run for run in runs if "/" not in run) == sorted(tboards["runs"])
    # any other run is a subfolder of one of them: test.py's scores (tb_scores), written by tests that scored it
    assert all(run.split("/")[0] in tboards["runs"] for run in runs), runs


def test_the_readme_scalars_are_served_for_each_run(board, tboards):
    tags = scalar_tags(board, tboards["runs"])
    for run, folder in tboards["runs"].items():
        served = set(tags[run])
        assert served == written_scalar_tags(folder), run
        assert set(README_SCALARS) <= served, (run, sorted(served))
        per_class = {tag for tag in served if tag.startswith("val_IoU/")}
        assert per_class, (run, sorted(served))
        assert {tag.split("/", 1)[1] for tag in per_class} <= set(RunConfig.load(folder).data.class_names), run


def test_each_series_has_one_point_per_logged_step(board, tboards):
    scalar_tags(board, tboards["runs"])
    for run, folder in tboards["runs"].items():
        logged = logged_steps(folder)
        assert logged["train"] and logged["val"], run
        loss = board.json("/data/plugin/scalars/scalars", run=run, tag="loss")
        assert [step for _, step, _ in loss] == [step for step, _, _ in logged["train"]], run
        np.testing.assert_allclose([value for _, _, value in loss], [l for _, l, _ in logged["train"]], atol=6e-5)
        rate = board.json("/data/plugin/scalars/scalars", run=run, tag="learning_rate")
        np.testing.assert_allclose([value for _, _, value in rate], [lr for _, _, lr in logged["train"]], rtol=6e-3)
        train_miou = board.json("/data/plugin/scalars/scalars", run=run, tag="train_mIoU")
        assert [step for _, step, _ in train_miou] == [step for step, _, _ in logged["train"]], run
        val_miou = board.json("/data/plugin/scalars/scalars", run=run, tag="val_mIoU")
        assert [step for _, step, _ in val_miou] == [step for step, _ in logged["val"]], run
        np.testing.assert_allclose([value for _, _, value in val_miou], [m for _, m in logged["val"]], atol=6e-4)


def test_image_summaries_are_served(board, tboards):
    pixels = int(_value("--pixels"))
    tags = board.poll_json("/data/plugin/images/tags",
                           lambda tags: all(set(IMAGE_TAGS) <= set(tags.get(run, {})) for run in tboards["runs"]),
                           "the image summaries of both runs")
    for run, folder in tboards["runs"].items():
        assert sorted(tags[run]) == sorted(IMAGE_TAGS), run
        samples = board.json("/data/plugin/images/images", run=run, tag=IMAGE_TAGS[0], sample=0)
        assert [s["step"] for s in samples] == [step for step, _ in logged_steps(folder)["val"]], run
        png = board.get("/data/plugin/images/individualImage?" + samples[-1]["query"])
        picture = Image.open(io.BytesIO(png))
        assert picture.format == "PNG"
        assert picture.size == (3 * pixels, pixels), run  # image | prediction | ground truth


def test_make_tensorboard_links_then_serves_tboards():
    recipe = subprocess.run(["make", "-n", "tensorboard"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = [line for line in recipe.stdout.splitlines() if "createlinks" in line or "tensorboard --logdir" in line]
    assert lines[0] == "bash tboards/createlinks", recipe.stdout
    assert "bin/tensorboard --logdir tboards --port 6006" in lines[1], recipe.stdout


@pytest.fixture
def chromium():
    path = headless_chromium.find_chromium()
    if path is None:
        reason = ("no Chromium: the browser check needs Debian's chromium package (apt-get install chromium) "
                  "or SEGMENTOR_CHROMIUM=<binary>")
        if BROWSER_REQUIRED:
            pytest.fail(reason + " (SEGMENTOR_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    return path


def test_scalars_page_shows_both_runs_in_chromium(board, tboards, chromium, tmp_path):
    scalar_tags(board, tboards["runs"])
    with headless_chromium.Page((1000, 600), chromium) as page:
        page.open(board.url + SCALARS_PAGE)
        text = page.wait_for_text(list(tboards["runs"]) + ["train_mIoU", "val_mIoU"])
        shot = page.screenshot(str(tmp_path / "scalars.png"))
    assert "TensorBoard" in text
    assert Image.open(shot).size == (1000, 600)
    print("screenshot of the scalars page:", shot)


# ------------------------------------------------------------------------------------------------ HParams tab
# Settings a researcher compares runs by: each must be in every run's session-start info, as its runargs say.
COMPARED = {"model": ("encoder", "decoder", "weight_decay"),
            "train": ("learnrate", "lr_schedule", "optimizer", "loss", "class_weights", "batch_size", "seed",
                      "precision", "total_steps"),
            "data": ("pixels", "augment", "dataset_family")}


def session_start_hparams(logdir):
    """{run: {hparam: value}} from the hparams plugin's session-start summaries, read by TensorBoard's own event
    multiplexer (the data API its server uses)."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    found = {}
    for run, tags in multiplexer.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME).items():
        if hparams_metadata.SESSION_START_INFO_TAG in tags:
            info = hparams_metadata.parse_session_start_info_plugin_data(tags[hparams_metadata.SESSION_START_INFO_TAG])
            found[run] = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                          for name, value in info.hparams.items()}
    return found


def test_each_run_writes_its_settings_to_the_hparams_tab(tboards):
    found = session_start_hparams(tboards["folder"])
    assert sorted(found) == sorted(tboards["runs"])  # the runs themselves, not their tb_scores subfolders
    for run, folder in tboards["runs"].items():
        config = RunConfig.load(folder)
        sections = {"model": config.model.to_dict(), "train": dataclasses.asdict(config.train),
                    "data": config.data.to_dict()}
        for section, names in COMPARED.items():
            for name in names:
                assert found[run][name] == pytest.approx(sections[section][name]), (run, name)
        assert found[run] == pytest.approx(hparams.run_hparams(config)), run
        assert found[run]["code"] == software.describe(config.provenance["code"]), run
    assert {values["decoder"] for values in found.values()} == {"LinkNet", "FCN"}


def test_the_hparams_plugin_serves_both_runs_with_val_miou_as_a_metric(board, tboards):
    scalar_tags(board, tboards["runs"])
    request = '{"experimentName": ""}'
    experiment = board.poll_json("/data/plugin/hparams/experiment",
                                 lambda got: any(info["name"] == "decoder" for info in got.get("hparamInfos", [])),
                                 "the HParams experiment", request=request)
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert sorted(infos["decoder"]["domainDiscrete"]) == ["FCN", "LinkNet"] and infos["decoder"]["differs"]
    assert infos["learnrate"]["type"] == "DATA_TYPE_FLOAT64"
    metrics = {(info["name"].get("group", ""), info["name"]["tag"]) for info in experiment["metricInfos"]}
    assert ("", "val_mIoU") in metrics, sorted(metrics)
    groups = board.json("/data/plugin/hparams/session_groups", request=json.dumps(
        {"experimentName": "", "startIndex": 0, "sliceSize": 10, "allowedStatuses": ["STATUS_UNKNOWN"],
         "colParams": [{"hparam": "decoder"}, {"metric": {"tag": "val_mIoU"}}]}))
    sessions = {session["name"]: session for group in groups["sessionGroups"] for session in group["sessions"]}
    assert sorted(sessions) == sorted(tboards["runs"])
    for run, folder in tboards["runs"].items():
        last_val = logged_steps(folder)["val"][-1]
        (metric,) = [m for m in sessions[run]["metricValues"] if m["name"]["tag"] == "val_mIoU"]
        assert metric["trainingStep"] == last_val[0] and metric["value"] == pytest.approx(last_val[1], abs=6e-4)


# ------------------------------------------------------------------------------------------------ test.py scores
@pytest.fixture(scope="module")
def scored_copy(tiny_run, tmp_path_factory):
    """test.py on a copy of the tiny run (its files linked, so nothing is copied and the shared run stays as it
    was): 2 validation images, 50 bootstrap samples, no pictures."""
    folder = linked_run_copy(tiny_run["folder"], tmp_path_factory.mktemp("scored_copy"))
    run_script("test.py", "--traindir", folder, "--num_images", "2", "--bootstrap", "50", "--last2viz", "-1")
    (results,) = glob.glob(os.path.join(folder, "test_validation_6", "results.json"))
    return {"folder": folder, "results": json.load(open(results))}


def test_test_py_writes_its_scores_as_scalars_at_the_scored_step(scored_copy):
    results = scored_copy["results"]
    events = os.path.join(scored_copy["folder"], score_events.SCORES_DIR)
    accumulator = event_accumulator.EventAccumulator(events)
    accumulator.Reload()

    def scalar(tag):
        (point,) = accumulator.Scalars("test_validation/" + tag)
        assert point.step == results["step"] == 6, tag
        return point.value

    assert scalar("mIoU") == pytest.approx(results["mIoU"], abs=1e-6)
    assert [scalar("mIoU_ci_low"), scalar("mIoU_ci_high")] == pytest.approx(results["mIoU_ci"], abs=1e-6)
    assert scalar("fwIoU") == pytest.approx(results["fwIoU"], abs=1e-6)
    assert scalar("ECE") == pytest.approx(results["ECE"], abs=1e-6)
    per_class = {tag.split("/", 2)[2]: tag for tag in accumulator.Tags()["scalars"] if "/IoU/" in tag}
    assert sorted(per_class) == sorted(name for name, iou in results["per_class_iou"].items() if iou is not None)
    for name in per_class:
        assert scalar("IoU/" + name) == pytest.approx(results["per_class_iou"][name], abs=1e-6)


@pytest.mark.parametrize("recorded, model_tag, prefix", [
    ({}, None, "test_validation"),
    ({"split": "test", "precision": "bf16"}, None, "test_test_bf16"),
    ({"model": "/deploy/int8/model.tflite", "precision": "int8"}, "tflite_int8", "test_validation_tflite_int8"),
    ({"pixels": 128, "scales": [0.75, 1.0], "flip": True}, None, "test_validation_px128_scales0.75-1_flip"),
    ({"tile": [32, 32], "tile_overlap": 0.25}, None, "test_validation_tile32x32"),
])
def test_score_tags_are_named_like_the_result_folder_without_its_step(recorded, model_tag, prefix):
    results = dict({"split": "validation", "precision": "fp32", "pixels": 64, "scales": [1.0], "flip": False,
                    "tile": None, "tile_overlap": None, "model": None}, **recorded)
    assert score_events.tag_prefix(results, 64, model_tag) == prefix

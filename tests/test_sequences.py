"""Sequence-aware validation (issue 32): each record names its recording, scores say whether training saw it,
and --holdout_sequence sets whole recordings aside for a validation on new scenes."""
import json
import os

import pytest

from tests.conftest import SAMPLE, TINY_TRAIN_ARGS, run_script
from tests.test_dataset_layouts import make_cityscapes, make_kitti_road, records, run_cli
from tests.test_datasets import make_folder_dataset
from tests.test_test_script import test_script
from utils.data import convert, families, sequences
from utils.data.families.base import DatasetError
from utils.data.records import find_record_files
from utils.study import table
from utils.training.config import RunConfig


def sample_names(split_listing, prefix=None):
    """The image file names a sample list file names (optionally only those of one drive)."""
    names = [os.path.basename(line.split()[0]) for line in open(os.path.join(SAMPLE, split_listing)) if line.strip()]
    return sorted(n for n in names if prefix is None or n.startswith(prefix))


def convert_sample(out, holdout=None):
    family = families.create("camvid", datapath=str(out), camvid_path=SAMPLE)
    return convert.convert(family, os.path.join(str(out), "camvid"), progress=False, holdout_sequences=holdout)


@pytest.fixture(scope="module")
def holdout_data(tmp_path_factory):
    """The sample converted with its drive 0006R0 held out: <datapath>/camvid/{training,validation,holdout}."""
    out = tmp_path_factory.mktemp("holdout_data")
    return {"datapath": str(out), "summary": convert_sample(out, ["0006R0"])}


# --- sequences in the records and dataset.json ---------------------------------------------------------------
def test_camvid_records_carry_their_drive_and_dataset_json_counts_them(sample_datapath):
    info = json.load(open(os.path.join(sample_datapath, "camvid", "dataset.json")))
    for split in ("training", "validation"):
        examples = records(os.path.join(sample_datapath, "camvid"), split)
        assert [e["sequence"] for e in examples] == [e["filename"].split("_")[0] for e in examples]
        assert info["splits"][split]["sequences"] == sequences.counts(e["sequence"] for e in examples)
    assert info["splits"]["training"]["sequences"] == {"0001TP": 8, "0006R0": 8, "0016E5": 8}
    assert info["splits"]["validation"]["sequences"] == {"0016E5": 8} and info["holdout_sequences"] is None


def test_cityscapes_records_carry_their_city(tmp_path):
    truth = make_cityscapes(str(tmp_path / "cs"))
    summary = convert.convert(families.create("cityscapes", cityscapes_path=str(tmp_path / "cs")),
                              str(tmp_path / "out"), progress=False)
    written = {e["filename"]: e["sequence"] for split in ("training", "validation")
               for e in records(summary.outdir, split)}
    assert written == {name: name.split("_")[0] for name in truth} and set(written.values()) == {"aachen", "bochum"}
    info = json.load(open(summary.json_path))
    assert info["splits"]["training"]["sequences"] == {"aachen": 1, "bochum": 1}


def test_kitti_category_is_its_sequence_and_per_category_stays(tmp_path):
    make_kitti_road(str(tmp_path / "kitti"))
    family = families.create("kitti_road", kitti_path=str(tmp_path / "kitti"), val_fraction=0)
    summary = convert.convert(family, str(tmp_path / "out"), progress=False)
    examples = records(summary.outdir, "training")
    expected = ["um"] * 2 + ["umm"] * 2 + ["uu"] * 2
    assert [e["sequence"] for e in examples] == [e["category"] for e in examples] == expected
    assert json.load(open(summary.json_path))["splits"]["training"]["categories"] == {"um": 2, "umm": 2, "uu": 2}


def test_folder_groups_come_from_groups_txt_or_a_pattern_not_both(tmp_path):
    root = make_folder_dataset(str(tmp_path), count=4)
    with open(os.path.join(root, "groups.txt"), "w") as handle:
        handle.write("# image group\nimg0.jpg drive_a\nimg1 drive_a\nimg2.jpg drive_b\n")
    family = families.create("folder", folder_path=root, val_fraction=0)
    assert {e.name: e.sequence for e in family.examples("training")} == {
        "img0.jpg": "drive_a", "img1.jpg": "drive_a", "img2.jpg": "drive_b", "img3.jpg": None}
    with pytest.raises(DatasetError, match="groups.txt and --group_pattern both"):
        families.create("folder", folder_path=root, val_fraction=0, group_pattern="img")
    os.remove(os.path.join(root, "groups.txt"))
    family = families.create("folder", folder_path=root, val_fraction=0, group_pattern=r"^img(\d)")
    assert [e.sequence for e in family.examples("training")] == ["0", "1", "2", "3"]


# --- --holdout_sequence -------------------------------------------------------------------------------------
def test_holdout_sequence_moves_exactly_that_drive(holdout_data):
    outdir = holdout_data["summary"].outdir
    training = {e["filename"] for e in records(outdir, "training")}
    holdout = [e for e in records(outdir, "holdout")]
    assert sorted(e["filename"] for e in holdout) == sample_names("train.txt", "0006R0")
    assert {e["sequence"] for e in holdout} == {"0006R0"}
    assert sorted(training) == [n for n in sample_names("train.txt") if not n.startswith("0006R0")]
    assert [e["filename"] for e in records(outdir, "validation")] == sample_names("val.txt")
    info = json.load(open(os.path.join(outdir, "dataset.json")))
    assert info["holdout_sequences"] == ["0006R0"] and info["total_train_images"] == 16
    assert info["splits"]["holdout"]["sequences"] == {"0006R0": 8}
    assert "holdout" in " ".join(holdout_data["summary"].lines())


def test_converting_again_without_holdout_removes_the_old_holdout_split(tmp_path):
    outdir = convert_sample(tmp_path, ["0006R0", "0001TP"]).outdir
    assert len(records(outdir, "holdout")) == 16 and len(records(outdir, "training")) == 8
    convert_sample(tmp_path)
    assert find_record_files(outdir, "holdout") == [] and len(records(outdir, "training")) == 24
    info = json.load(open(os.path.join(outdir, "dataset.json")))
    assert "holdout" not in info["splits"] and info["holdout_sequences"] is None


def test_an_unknown_holdout_sequence_is_refused_listing_the_known_ones(tmp_path, capsys):
    with pytest.raises(sequences.UnknownSequenceError,
                       match=r"Seq05VD is not a training sequence of camvid; training sequences \(images\): "
                             r"0001TP \(8\), 0006R0 \(8\), 0016E5 \(8\)"):
        convert_sample(tmp_path, ["0006R0", "Seq05VD"])
    assert not os.path.exists(os.path.join(str(tmp_path), "camvid", "training.tfrecords"))
    code, _, err = run_cli(capsys, "--dataset_family", "camvid", "--camvid_path", SAMPLE, "--outdir",
                           tmp_path / "cli", "--holdout_sequence", "0001TP,0006R0,0016E5")
    assert code == 1 and "would leave no training images" in err
    code, _, err = run_cli(capsys, "--dataset_family", "camvid", "--camvid_path", SAMPLE, "--outdir",
                           tmp_path / "cli", "--splits", "validation", "--holdout_sequence", "0006R0")
    assert code == 1 and "convert the training split too" in err


# --- the contamination report ---------------------------------------------------------------------------------
def test_contamination_counts_the_scored_images_from_training_sequences():
    training = {"0001TP": 62, "0006R0": 101, "0016E5": 204}
    test = sequences.contamination(["0001TP"] * 2 + ["Seq05VD"] * 3, training, "test")
    assert (test["shared"], test["shared_images"], test["num_images"], test["optimistic"]) == (
        {"0001TP": 2}, 2, 5, True)
    assert sequences.describe(test) == ("test: 2 of 5 images from 0001TP, a training sequence: this score is "
                                        "optimistic for new scenes; the other 3 from Seq05VD, which training did "
                                        "not see")
    new = sequences.contamination(["Seq05VD"] * 3, training, "test")
    assert not new["optimistic"] and "none of its 3 images" in sequences.describe(new)
    assert sequences.contamination(["0016E5"], None, "validation") is None          # sequences unknown
    assert sequences.contamination([None, None], training, "validation") is None
    assert sequences.contamination(["0016E5"], training, "training") is None


def test_train_warns_once_when_validation_shares_training_sequences(tiny_run):
    warnings = [line for line in tiny_run["stdout"].splitlines() if "which training holds too" in line]
    assert len(warnings) == 1 and "8 of the 8 validation images come from 0016E5" in warnings[0]
    data = RunConfig.load(tiny_run["folder"]).data
    assert data.val_training_sequences == {"0016E5": 8} and data.val_split == "validation"


def test_test_py_reports_a_validation_from_a_training_sequence(tiny_run, tmp_path, capsys):
    outdir = str(tmp_path / "val")
    assert test_script.main(["--traindir", tiny_run["folder"], "--bootstrap", "0", "--last2viz", "-1",
                             "--outdir", outdir]) == 0
    assert ("sequences: validation: 8 of 8 images from 0016E5, a training sequence: this score is optimistic for "
            "new scenes") in capsys.readouterr().out
    report = json.load(open(os.path.join(outdir, "results.json")))["sequences"]
    assert report["shared"] == {"0016E5": 8} and report["optimistic"] is True


def test_a_run_validating_on_the_holdout_never_trains_on_it(holdout_data, tmp_path, capsys):
    """train.py --val_split holdout: the monitor and --keep_best score the held-out drive, no warning; test.py
    --split holdout says the score is on new scenes, while the ordinary validation still shares 0016E5."""
    runs = tmp_path / "runs"
    proc = run_script("train.py", *TINY_TRAIN_ARGS, "--datapath", holdout_data["datapath"], "--runs_root", runs,
                      "--max_steps", "2", "--val_every", "2", "--save_every", "2", "--log_every", "1",
                      "--val_split", "holdout", "--keep_best")
    assert "which training holds too" not in proc.stdout and "full-val mIoU" in proc.stdout
    folder = os.path.join(str(runs), os.listdir(str(runs))[0])
    data = RunConfig.load(folder).data
    assert (data.val_split, data.num_val_images, data.holdout_sequences) == ("holdout", 8, ("0006R0",))
    assert data.val_training_sequences == {} and data.training_sequences == {"0001TP": 8, "0016E5": 8}
    for split, shared in (("holdout", {}), ("validation", {"0016E5": 8})):
        outdir = str(tmp_path / split)
        assert test_script.main(["--traindir", folder, "--split", split, "--bootstrap", "0", "--last2viz", "-1",
                                 "--outdir", outdir]) == 0
        report = json.load(open(os.path.join(outdir, "results.json")))["sequences"]
        assert report["shared"] == shared and report["per_sequence"] == ({"0006R0": 8} if split == "holdout"
                                                                         else {"0016E5": 8})
    assert "holdout: none of its 8 images comes from a training sequence (0006R0 is new)" in capsys.readouterr().out


def test_the_study_table_flags_cells_scored_on_training_sequences():
    shared = sequences.contamination(["0016E5"] * 4, {"0016E5": 9}, "validation")
    new = sequences.contamination(["0006R0"] * 4, {"0016E5": 9}, "holdout")
    assert [table.training_sequences_flag({"sequences": report}) for report in (shared, new, None)] == [
        "4/4", "none", "?"]

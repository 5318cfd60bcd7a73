"""The label checker: every pixel validated, bad records named, overlays written."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.test_datasets import convert_camvid, make_camvid_layout
from tests.test_input_pipeline import write_records
from utils.data import families, label_checker


def camvid_meta():
    family = families.get("camvid")
    return family.class_names, family.palette, family.ignore_label


def records_with_a_bad_pixel(directory):
    rng = np.random.RandomState(0)
    examples = []
    for i in range(4):
        label = rng.randint(0, 12, (12, 16)).astype(np.uint8)
        if i == 2:
            label[3, 4] = 17  # one stray value in one record
        examples.append(("frame_%d.png" % i, rng.randint(0, 256, (12, 16, 3)).astype(np.uint8), label))
    return write_records(directory, "training", examples)


def test_bad_pixel_is_found_and_the_record_named(tmp_path):
    files = records_with_a_bad_pixel(tmp_path)
    report = label_checker.check_records(files, *camvid_meta(), num=2, outdir=str(tmp_path / "viz"))
    assert report.records == 4 and not report.ok
    assert [name for name, _ in report.bad] == ["frame_2.png"]
    assert "[17]" in report.bad[0][1]
    assert report.pixel_counts[17] == 1 and report.pixel_counts.sum() == 4 * 12 * 16
    assert "INVALID" in "\n".join(report.lines(camvid_meta()[0], 11))


def test_clean_records_pass_and_overlays_are_written(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 3, "val": 1})
    summary = convert_camvid(src, tmp_path / "out")
    report = label_checker.check_records(os.path.join(summary.outdir, "training.tfrecords"), *camvid_meta(),
                                         num=2, outdir=str(tmp_path / "viz"))
    assert report.ok and report.records == 3 and len(report.overlays) == 2
    picture = np.asarray(Image.open(report.overlays[0]))
    assert picture.shape[0] >= 24 and picture.shape[1] > 2 * 32  # overlay | label | legend
    palette = {tuple(c) for c in camvid_meta()[1]}
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    assert len(palette & colours) >= 5  # label panel and legend swatches use the palette


def test_size_mismatch_inside_a_record_is_reported(tmp_path):
    files = write_records(tmp_path, "validation", [("odd.png", np.zeros((8, 8, 3), np.uint8),
                                                    np.zeros((6, 8), np.uint8))])
    report = label_checker.check_records(files, *camvid_meta(), num=1, outdir=str(tmp_path / "viz"))
    assert report.bad and report.bad[0][0] == "odd.png" and "differ in size" in report.bad[0][1]
    assert report.overlays == []


def test_class_metadata_comes_from_dataset_json_beside_the_records(tmp_path):
    files = records_with_a_bad_pixel(tmp_path)
    with open(tmp_path / "dataset.json", "w") as handle:
        json.dump({"family": "folder", "class_names": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]],
                   "ignore_label": 255}, handle)
    assert label_checker.class_metadata(files) == (("a", "b"), [(1, 2, 3), (4, 5, 6)], 255)
    assert label_checker.class_metadata(files, "camvid")[2] == 11  # json is for another family
    os.remove(tmp_path / "dataset.json")
    with pytest.raises(ValueError, match="dataset.json"):
        label_checker.class_metadata(files, "folder")


def test_cli_exit_status_and_output(tmp_path, capsys):
    files = records_with_a_bad_pixel(tmp_path)
    code = label_checker.main(["--tfrecords", str(tmp_path), "--dataset_family", "camvid", "--num", "3",
                               "--outdir", str(tmp_path / "viz")])
    out = capsys.readouterr().out
    assert code == 1 and "BAD frame_2.png" in out and "4 records checked, 1 bad" in out
    assert len(os.listdir(tmp_path / "viz")) == 3
    assert label_checker.main(["--tfrecords", str(tmp_path / "none.tfrecords")]) == 2


def test_cli_runs_as_a_script(tmp_path):
    src = make_camvid_layout(str(tmp_path / "src"), {"train": 2, "val": 1})
    summary = convert_camvid(src, tmp_path / "out")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "utils", "label_checker.py"), "--tfrecords",
                             os.path.join(summary.outdir, "validation.tfrecords"), "--dataset_family", "camvid",
                             "--num", "1", "--outdir", str(tmp_path / "viz")],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 records checked, 0 bad" in result.stdout and len(os.listdir(tmp_path / "viz")) == 1

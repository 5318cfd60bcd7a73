"""test.py's scores as TensorBoard scalars in the run folder, at the step of the checkpoint scored.

They go to an events subfolder of their own, <run>/tb_scores/ (TensorBoard shows it as the run
`<run>/tb_scores`, and the HParams tab as the metric group `tb_scores` of the run): a training that is
still writing its event file in <run>/ is never appended to by another process.  Tags are named like the
result folder without its step, so the same settings scored at other checkpoints make one curve:

    test_validation/mIoU  test_validation/mIoU_ci_low  test_validation/mIoU_ci_high
    test_validation/fwIoU  test_validation/ECE  test_validation/mean_F1  test_validation/pixel_accuracy
    test_validation/mean_class_accuracy  test_validation/IoU/<class>
    test_validation_tflite_int8/mIoU ...   (an exported model), test_validation_px128_flip/... (other geometry)
"""
import os

from utils.compat import tf
from utils.inference import result_folders, runtimes
from utils.training.config import RunConfig

SCORES_DIR = "tb_scores"
# results.json numbers written as they are (a None, e.g. ECE without calibration, is left out)
HEADLINES = ("mIoU", "fwIoU", "ECE", "mean_F1", "pixel_accuracy", "mean_class_accuracy")
INTERVALS = ("mIoU", "fwIoU", "ECE", "mean_F1")  # their bootstrap CIs, as <name>_ci_low / <name>_ci_high


def tag_prefix(results, trained_pixels, model_tag=None):
    """'test_<split>[_<model tag> | _<precision>][_px..][_scales..][_flip][_tile..]': test.py's result folder
    name without the step, from what one results.json records.  model_tag: runtimes.model_tag of an exported
    model ('tflite_int8'); trained_pixels: the run's --pixels (another net input size is named)."""
    what = results["split"]
    if model_tag:
        what += "_" + model_tag
    elif results.get("precision") not in (None, "fp32"):
        what += "_" + results["precision"]
    pixels = results["pixels"] if results.get("pixels") not in (None, trained_pixels) else None
    return result_folders.folder_name("test", what, results.get("scales") or (1.0,), bool(results.get("flip")),
                                      results.get("tile"), results.get("tile_overlap") or
                                      result_folders.DEFAULT_OVERLAP, pixels)


def score_values(results):
    """{tag suffix: number} of one results.json: the headline scores, their CI bounds, per-class IoU."""
    values = {name: results[name] for name in HEADLINES if results.get(name) is not None}
    for name in INTERVALS:
        interval = results.get(name + "_ci")
        if interval and None not in interval:
            values[name + "_ci_low"], values[name + "_ci_high"] = interval
    for name, iou in (results.get("per_class_iou") or {}).items():
        if iou is not None:
            values["IoU/%s" % name] = iou
    return values


def write_scores(segmenter, results):
    """Write one scored checkpoint's numbers into <run>/tb_scores at its step; returns the events folder, or
    None when the results name no step (an exported model that does not record its checkpoint) or the run
    folder is not writable (said in one note; the scores are in results.json all the same)."""
    step = results.get("step")
    if not isinstance(step, int):
        return None
    folder = os.path.join(results["run"], SCORES_DIR)
    prefix = tag_prefix(results, RunConfig.load(results["run"]).data.pixels,
                        runtimes.model_tag(segmenter) if results.get("model") else None)
    summary = tf.Summary(value=[tf.Summary.Value(tag="%s/%s" % (prefix, name), simple_value=float(value))
                                for name, value in sorted(score_values(results).items())])
    try:
        writer = tf.summary.FileWriter(folder)
    except (OSError, tf.errors.OpError) as error:  # a run folder this user cannot write (--outdir elsewhere)
        print("note: scores not written for TensorBoard into %s (%s)" % (folder, str(error).splitlines()[0][:150]))
        return None
    try:
        writer.add_summary(summary, step)
    finally:
        writer.close()
    return folder

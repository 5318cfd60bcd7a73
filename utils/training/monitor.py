"""What a researcher watches while training: runlog, console progress bar, TensorBoard (its HParams tab too).

The quarter-validation monitor (seg-mentor's "noisy but honest" test-mIoU
curve) runs every --val_every steps on a random --val_fraction of the
validation set through the same graph, switching the feedable iterator's
handle and turning `is_training` off.  Its noise across checkpoints and
subsets is a rough error bar on the final number.
"""
import io
import math
import os
import sys
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

import nets
from nets import preprocessing
from utils import metrics, viz
from utils.compat import tf
from utils.data import sequences
from utils.training import hparams, runfolder


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def monitor_batches(config):
    """Batches the quarter-validation monitor scores each time: --val_fraction of the validation set."""
    return max(1, int(math.ceil(config.data.num_val_images * config.train.val_fraction / config.train.batch_size)))


class LogWindow:
    """The steps since the last runlog line (their summed loss, seconds and confusion) and the last quarter-val
    mIoU: the runlog's state between two lines.  It is also kept in graph variables, stored before every full
    checkpoint, so a resumed run's first line averages the same steps as the uninterrupted run's line and
    names the same quarter-val mIoU.  Build it before the savers; `device`: the host's CPU."""

    def __init__(self, num_classes, device="/device:CPU:0"):
        self.num_classes = num_classes
        with tf.device(device), tf.name_scope("runlog_window"):
            initial = {"loss": np.float64(0), "steps": np.int64(0), "seconds": np.float64(0),
                       "confusion": np.zeros((num_classes, num_classes), np.int64), "val_miou": np.float64(-1)}
            self._variables = {name: tf.Variable(value, trainable=False, name=name) for name, value in initial.items()}
            self._feeds = {name: tf.placeholder(variable.dtype.base_dtype, variable.shape, name=name + "_value")
                           for name, variable in self._variables.items()}
            self._store = tf.group(*[variable.assign(self._feeds[name]) for name, variable in self._variables.items()])
        self.reset()
        self.last_val_miou = None

    @property
    def variables(self):
        return list(self._variables.values())

    def reset(self):
        self.loss, self.steps, self.seconds = 0.0, 0, 0.0
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, loss, seconds, confusion):
        self.loss += loss
        self.steps += 1
        self.seconds += seconds
        self.confusion += confusion

    def store(self, sess):
        """Into the variables, before a checkpoint saves them."""
        values = {"loss": self.loss, "steps": self.steps, "seconds": self.seconds, "confusion": self.confusion,
                  "val_miou": -1.0 if self.last_val_miou is None else self.last_val_miou}
        sess.run(self._store, {self._feeds[name]: value for name, value in values.items()})

    def load(self, sess):
        """From the variables, after a checkpoint restored them (a new run's are empty)."""
        values = sess.run(self._variables)
        self.loss, self.steps, self.seconds = float(values["loss"]), int(values["steps"]), float(values["seconds"])
        self.confusion = np.array(values["confusion"], np.int64)
        self.last_val_miou = None if values["val_miou"] < 0 else float(values["val_miou"])


class Monitor:
    """Runlog, progress bar and TensorBoard events of one run.

    config: the run's RunConfig; handle, is_training: the graph's feedable-iterator handle and
    is_training placeholder; view: the step's MonitorView (what validation runs); window: the graph's
    LogWindow.  --log_every (config.train.log_every): steps between runlog lines.
    """

    def __init__(self, folder, config, handle, is_training, view, window):
        self.folder, self.config, self.view, self.window = folder, config, view, window
        self.feed_handle, self.is_training, self.log_every = handle, is_training, config.train.log_every
        self.num_classes = config.model.num_classes
        self.class_names = list(config.data.class_names)[:self.num_classes]
        self.runlog = open(os.path.join(folder, runfolder.RUNLOG), "a", buffering=1)
        self.writer = tf.summary.FileWriter(folder)
        self.writer.add_graph(tf.get_default_graph())  # graph tab; no meta graph (it doubles the file)
        self.bar = tqdm(total=config.train.total_steps, unit="step", dynamic_ncols=True,
                        disable=not sys.stderr.isatty(), file=sys.stderr)
        self.val_batches = monitor_batches(config)

    # ---------------------------------------------------------------- logging
    def log(self, message):
        line = "%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), message)
        self.runlog.write(line + "\n")
        self.bar.write(line, file=sys.stdout)

    def log_names(self, prefix, names):
        """Long name lists go to the runlog only (the console gets the count)."""
        for name in names:
            self.runlog.write("%s%s\n" % (prefix, name))
        self.bar.write("%s%d variables (listed in runlog)" % (prefix, len(names)), file=sys.stdout)

    def scalars(self, step, values):
        summary = tf.Summary(value=[tf.Summary.Value(tag=tag, simple_value=float(value))
                                    for tag, value in values.items()])
        self.writer.add_summary(summary, step)

    def images(self, step, named_arrays):
        values = [tf.Summary.Value(tag=tag, image=tf.Summary.Image(
            encoded_image_string=_png_bytes(array), height=array.shape[0], width=array.shape[1], colorspace=3))
            for tag, array in named_arrays]
        self.writer.add_summary(tf.Summary(value=values), step)

    def resumed(self, step, checkpoint, dropped_lines):
        """Say where a resumed run continues; TensorBoard forgets what the interrupted process logged after it."""
        self.log("resumed from %s at step %d%s" % (checkpoint, step, "" if not dropped_lines else
                                                   " (%d runlog lines of later steps, written by the interrupted "
                                                   "process, removed)" % dropped_lines))
        self.writer.add_session_log(tf.SessionLog(status=tf.SessionLog.START), step + 1)

    # ---------------------------------------------------------------- training
    def start(self, sess, val_handle, start_step):
        self.sess, self.val_handle = sess, val_handle
        self.window.load(sess)  # a resumed run goes on with the checkpoint's window
        self.bar.n = start_step
        self.bar.refresh()
        if start_step == 0:  # a resumed run wrote its settings when it began
            hparams.write_session_start(self.writer, self.config)
        train, images = self.config.train, self.config.data.total_train_images
        self.log("run folder %s: %s, %d classes, %d steps of batch %d (%.1f epochs of %d images), from step %d"
                 % (self.folder, self.config.net_name, self.num_classes, train.total_steps, train.batch_size,
                    train.total_steps * train.batch_size / images, images, start_step))
        data = self.config.data
        warning = sequences.overlap_warning(data.val_split, data.val_training_sequences, data.num_val_images)
        if warning:
            self.log(warning)

    def epoch(self, step):
        return step * self.config.train.batch_size / float(self.config.data.total_train_images)

    def after_step(self, sess, step, loss, lr, confusion, seconds):
        window = self.window
        window.add(loss, seconds, confusion)
        images_per_sec = self.config.train.batch_size * window.steps / max(window.seconds, 1e-9)
        self.bar.set_postfix(loss="%.4f" % loss, img_s="%.1f" % images_per_sec, refresh=False)
        self.bar.update(step - self.bar.n)
        regular = step % self.log_every == 0
        if not regular and step != self.config.train.total_steps:
            return
        mean_loss = window.loss / window.steps
        train_miou = metrics.mean_iou(window.confusion)
        self.log("step %d | epoch %.2f | loss %.4f | lr %.2e | %.1f img/s | train mIoU %.3f%s" % (
            step, self.epoch(step), mean_loss, lr, images_per_sec, train_miou,
            "" if window.last_val_miou is None else " | quarter-val mIoU %.3f" % window.last_val_miou))
        self.scalars(step, {"loss": mean_loss, "learning_rate": lr, "images_per_sec": images_per_sec,
                            "train_mIoU": train_miou, "epoch": self.epoch(step)})
        # The run's last step off the --log_every grid gets a line but keeps its window, so a --resume with a
        # longer --max_steps logs the same lines as a run that was that long from the start.
        if regular:
            window.reset()

    # -------------------------------------------------------------- validation
    def validate(self, sess, step):
        """mIoU on a random quarter of the validation set (the val iterator is shuffled and repeats)."""
        g = self.view
        feed = {self.feed_handle: self.val_handle, self.is_training: False}
        confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        tic = time.time()
        for i in range(self.val_batches):
            if i == 0:
                batch_confusion, images, labels, predictions = sess.run(
                    [g.confusion, g.images, g.labels, g.predictions], feed)
            else:
                batch_confusion = sess.run(g.confusion, feed)
            confusion += batch_confusion
        miou = metrics.mean_iou(confusion)
        self.window.last_val_miou = miou
        values = {"val_mIoU": miou, "val_pixel_accuracy": metrics.pixel_accuracy(confusion)}
        for name, iou in zip(self.class_names, metrics.per_class_iou(confusion)):
            if np.isfinite(iou):
                values["val_IoU/%s" % name] = iou
        self.scalars(step, values)
        encoder = nets.get(self.config.model.encoder)
        pictures = []
        for k in range(min(2, len(images))):
            rgb = preprocessing.undo(encoder.preprocessing, images[k]).astype(np.uint8)
            palette, ignore = self.config.data.palette, self.config.data.ignore_label
            pictures.append(("val/%d/image_prediction_truth" % k, np.concatenate([
                rgb, viz.overlay(rgb, predictions[k], palette, ignore_label=ignore),
                viz.overlay(rgb, labels[k], palette, ignore_label=ignore)], axis=1)))
        self.images(step, pictures)
        self.writer.flush()
        self.log("step %d | quarter-val mIoU %.3f on %d batches (%.1fs)" % (step, miou, self.val_batches,
                                                                          time.time() - tic))
        return miou

    def validate_full(self, sess, handle, initializer, step):
        """(mIoU, images) on the whole validation set, one pass in file order (--keep_best)."""
        sess.run(initializer)
        feed = {self.feed_handle: handle, self.is_training: False}
        confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        tic = time.time()
        while True:
            try:
                confusion += sess.run(self.view.confusion, feed)
            except tf.errors.OutOfRangeError:
                break
        miou = metrics.mean_iou(confusion)
        images = self.config.data.num_val_images
        self.scalars(step, {"full_val_mIoU": miou})
        self.log("step %d | full-val mIoU %.3f on %d images (%.1fs)" % (step, miou, images, time.time() - tic))
        return miou, images

    def close(self):
        self.bar.close()
        self.writer.close()
        self.runlog.close()

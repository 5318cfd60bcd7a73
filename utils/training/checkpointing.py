"""What a run saves, and where: latest/ (full, rolling), the milestones (full or weights only), best/.

    latest/model.ckpt-<step>  everything --resume needs: the weights, the optimizer's slots, the step and the
                              runlog's window; every --val_every steps, at each milestone and at the end
    model.ckpt-<step>         a milestone: every --save_every steps and at the step each training process ends at
                              (finished or stopped by a signal), so the run's last step can always be scored
        --milestones full     latest/'s files of that step under a second name: hard links, no bytes copied
                              (a copy where the filesystem has none); each name outlives the other's deletion
        --milestones weights  only what test.py restores: a third of an Adam checkpoint, no optimizer state, so
                              --resume passes them over (latest/ stays full)
    best/model.ckpt-<step>    --keep_best's: latest/'s files of that step too, the previous best's removed

Nothing non-finite is ever saved: each save first checks every variable (NonFiniteWeights).
"""
import os

import arch
from utils.compat import tf
from utils.training import runfolder


class NonFiniteWeights(RuntimeError):
    pass


def inference_variable_names(config):
    """Names of the variables test.py's graph holds (the model built for inference, and the step counter): what
    a weights-only milestone keeps."""
    size = config.data.pixels or 256
    with tf.Graph().as_default():
        arch.build_model(config.model, is_training=False).build(tf.placeholder(tf.float32, [1, size, size, 3]))
        return {variable.op.name for variable in tf.global_variables()} | {"global_step"}


class Checkpoints:
    """The savers of one training graph and what each save writes.  Build it after every variable (`window`: the
    graph's LogWindow, stored before each full save); `begin` binds it to the run folder."""

    def __init__(self, config, window):
        self.window = window
        self.all_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in tf.global_variables()
                                         if v.dtype.base_dtype.is_floating], name="all_variables_finite")
        self.latest_saver = tf.train.Saver(max_to_keep=1, name="latest_saver")
        self.weights_saver, self.marker = None, None
        if config.train.milestones == "weights":
            names = inference_variable_names(config)
            weights = [v for v in tf.global_variables() if v.op.name in names]
            missing = names - {v.op.name for v in weights}
            if missing:
                raise RuntimeError("the training graph lacks variables test.py restores: %s" % sorted(missing)[:5])
            self.marker = tf.Variable(True, trainable=False, name=runfolder.WEIGHTS_ONLY, collections=[])
            self.weights_saver = tf.train.Saver(weights + [self.marker], max_to_keep=None, name="weights_saver")
        self.folder, self.run_state, self.log = None, None, print
        self.latest = None  # (step, path) of latest/'s newest checkpoint

    def restore(self, sess, path):
        """Restore a full checkpoint.  One saved before the runlog window was (older run folders) leaves the
        window empty: the first runlog line after the resume then averages only the later steps."""
        held = tf.train.load_checkpoint(path).get_variable_to_shape_map()
        window = {variable.op.name for variable in self.window.variables}
        if window <= set(held):
            self.latest_saver.restore(sess, path)
        else:
            tf.train.Saver([v for v in tf.global_variables() if v.op.name not in window]).restore(sess, path)

    def begin(self, sess, folder, run_state, log, restored_from=None):
        """Bind to the run folder; `restored_from`: the checkpoint the session holds (--resume)."""
        self.folder, self.run_state, self.log = folder, run_state, log
        if self.marker is not None:
            sess.run(self.marker.initializer)
        if restored_from and os.path.dirname(restored_from) == os.path.join(folder, runfolder.LATEST_DIR):
            self.latest = (runfolder.checkpoint_step(restored_from), restored_from)
        # latest/'s checkpoints of earlier processes: the rolling saver deletes them at its first save, as its own
        self.latest_saver.recover_last_checkpoints([runfolder.latest_prefix(folder, step)
                                                    for step in runfolder.latest_steps(folder)])

    def _check_finite(self, sess, step):
        if not sess.run(self.all_finite):
            raise NonFiniteWeights("weights are not finite after step %d" % step)

    def save_latest(self, sess, step):
        """latest/ after `step`, once per step; returns its path."""
        if self.latest and self.latest[0] == step:
            return self.latest[1]
        self._check_finite(sess, step)
        self.window.store(sess)
        directory = os.path.join(self.folder, runfolder.LATEST_DIR)
        os.makedirs(directory, exist_ok=True)
        path = self.latest_saver.save(sess, os.path.join(directory, runfolder.CKPT_PREFIX), global_step=step,
                                      write_meta_graph=False)
        self.latest = (step, path)
        self.run_state["saved"] = True
        return path

    def save_milestone(self, sess, step):
        """The milestone model.ckpt-<step>, once (latest/ of that step first); returns latest/'s path, the
        checkpoint --resume continues from."""
        latest = self.save_latest(sess, step)
        if step in runfolder.milestone_steps(self.folder):
            return latest
        prefix = os.path.join(self.folder, runfolder.CKPT_PREFIX)
        if self.weights_saver is not None:
            self.weights_saver.save(sess, prefix, global_step=step, write_meta_graph=False, write_state=False)
        elif runfolder.share_checkpoint(latest, "%s-%d" % (prefix, step)) == "copied" and not self.run_state.get(
                "copies_said"):
            self.run_state["copies_said"] = True
            self.log("note: no hard links in %s: milestones are copies of latest/'s files" % self.folder)
        return latest

    def save_best(self, sess, step):
        """best/ after `step` (--keep_best): latest/'s checkpoint of that step shared, the previous best removed;
        returns its path."""
        latest = self.save_latest(sess, step)
        directory = os.path.join(self.folder, runfolder.BEST_DIR)
        os.makedirs(directory, exist_ok=True)
        previous = runfolder.milestone_steps(directory)
        path = os.path.join(directory, "%s-%d" % (runfolder.CKPT_PREFIX, step))
        runfolder.share_checkpoint(latest, path)
        for old in previous:
            if old != step:
                runfolder.remove_checkpoint(os.path.join(directory, "%s-%d" % (runfolder.CKPT_PREFIX, old)))
        return path

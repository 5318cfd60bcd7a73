"""Segment numpy images with a trained run: load the run folder once, then `segment()` as often as you like.

    seg = Segmenter("tmp/20250101_resnet_v1_18_LinkNet__1")          # runargs + latest checkpoint
    maps = seg.segment([image_a, image_b])          # HxW class maps at each image's own size
    maps, probs = seg.segment(images, probabilities=True, scales=(0.75, 1, 1.25), flip=True)
    seg.class_names, seg.palette, seg.ignore_label, seg.step
    seg.restore(step=3000)                          # another milestone, same graph and session

Why this shape: test.py, the notebook, movies and media/ all need the same
thing - the net exactly as trained (is_training=False, the net's input
normalisation inside the graph) fed the way training fed it - and building a
graph or restoring a checkpoint per image would dominate the run time.

The geometry is the input pipeline's run forwards and then backwards inside
the graph (utils/inference/geometry.py), so class maps and probabilities
always come back at the original resolution.  Multi-scale / flip testing
averages the softmax probabilities over `scales` (factors on `pixels`) and
horizontal flips.

Images of one size are batched together (`batch_size`).  Each set of test
settings is one graph call: a copy of the net per (scale, flip), static input
shapes, variables shared, averaging and argmax inside the graph, so only the
class maps travel back to numpy unless probabilities are asked for.  Copies are
built once, on first use (the configured settings when the run is loaded).
By default what runs is a frozen twin of that graph with batch norm folded into
the convolutions (the graph `test.py --export` writes), remade after each
restore: faster at equal results (utils/inference/folding.py).
"""
import numpy as np

import arch
import nets
from utils import viz
from utils.compat import tf
from utils.compat.session import session_config
from utils.inference.folding import freeze_and_fold
from utils.inference.geometry import net_probabilities, parse_scales, same_size_batches, scaled_canvas
from utils.training import checkpoint_check, runfolder
from utils.training.config import RunConfig


class _Ensemble:
    """One graph call: probabilities averaged over test scales (and flips) at the input size, plus the argmax.

    One net copy per (scale, flip), all sharing the variables; a single scale without flip is an ensemble of one.
    `session` runs it; `folded` is its frozen, batch-norm-folded twin for the restored weights (or None).
    """

    def __init__(self, logits_fn, preprocess, canvases, flip, session):
        self.session, self.folded = session, None
        self.images = tf.placeholder(tf.float32, [None, None, None, 3], name="images")
        self.resized_sizes = [tf.placeholder(tf.int32, [2], name="resized_size") for _ in canvases]
        total = []
        for canvas, resized_size in zip(canvases, self.resized_sizes):
            total.append(net_probabilities(logits_fn, preprocess, self.images, resized_size, canvas))
            if flip:  # mirror the input, mirror the answer back
                mirrored = net_probabilities(logits_fn, preprocess, tf.reverse(self.images, [2]), resized_size,
                                             canvas)
                total.append(tf.reverse(mirrored, [2]))
        self.probabilities = tf.add_n(total) / float(len(total)) if len(total) > 1 else total[0]
        self.classes = tf.argmax(self.probabilities, axis=-1, output_type=tf.int32)


class _FoldedEnsemble:
    """An _Ensemble frozen with the weights its session holds now, batch norm folded into the convolutions
    (utils/inference/folding.py, as `test.py --export` writes it), in a graph and session of its own.

    Same feeds and outputs as the _Ensemble; fewer nodes, no variable reads, no
    batch-norm passes over the feature maps: faster at equal results (~1e-6).
    """

    def __init__(self, ensemble, config):
        inputs = [ensemble.images] + list(ensemble.resized_sizes)
        graph_def = freeze_and_fold(ensemble.session, inputs, [ensemble.classes, ensemble.probabilities])
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.images = graph.get_tensor_by_name(ensemble.images.name)
        self.resized_sizes = [graph.get_tensor_by_name(t.name) for t in ensemble.resized_sizes]
        self.classes = graph.get_tensor_by_name(ensemble.classes.name)
        self.probabilities = graph.get_tensor_by_name(ensemble.probabilities.name)
        self.session = tf.Session(graph=graph, config=config)


class Segmenter:
    """A trained run (or any logits function) ready to segment numpy RGB images of any size."""

    def __init__(self, traindir, step=None, pixels=None, batch_size=None, scales=(1.0,), flip=False,
                 checkpoint=None, threads=0, xla=False, mixed_precision=False, fold_batch_norms=True):
        """traindir: run folder; step: milestone (None = newest checkpoint); pixels: None = as trained, 0 = native.

        checkpoint: a checkpoint prefix to restore instead of the run's (rare).
        threads: TF intra/inter-op threads (0 = TF default).
        xla, mixed_precision: the fast paths train.py has (utils/compat/session.py).
        fold_batch_norms: run a frozen copy with batch norm folded into the convolutions (the
        exported graph; faster, equal within ~1e-6); False runs the variable graph as trained.
        """
        self.traindir = traindir
        self.config = RunConfig.load(traindir)
        spec, data = self.config.model, self.config.data
        model = arch.build_model(spec, is_training=False)
        self._setup(model.build, nets.get(spec.encoder).preprocess, num_classes=spec.num_classes,
                    class_names=data.class_names, palette=data.palette, ignore_label=data.ignore_label,
                    pixels=data.pixels if pixels is None else pixels,
                    batch_size=batch_size or self.config.train.batch_size or 8, scales=scales, flip=flip,
                    threads=threads, xla=xla, mixed_precision=mixed_precision, fold_batch_norms=fold_batch_norms,
                    static_shapes=spec.decoder_class.needs_static_shapes)
        self.name = self.config.net_name
        self.restore(step=step, checkpoint=checkpoint)

    @classmethod
    def from_logits_fn(cls, logits_fn, num_classes, pixels, preprocess=None, batch_size=8, scales=(1.0,),
                       flip=False, class_names=None, palette=None, ignore_label=None, static_shapes=False):
        """A Segmenter around any `logits_fn(preprocessed [N, H, W, 3]) -> logits [N, H, W, C]` (no checkpoint).

        For tests and experiments: the same resize / pad / crop / resize-back path with a known model.
        static_shapes: logits_fn needs static spatial shapes (one graph per image size at native resolution).
        """
        self = cls.__new__(cls)
        self.traindir, self.config, self.name = None, None, "custom"
        self._setup(logits_fn, preprocess or (lambda images: images), num_classes, class_names, palette,
                    ignore_label, pixels, batch_size, scales, flip, threads=0, static_shapes=static_shapes)
        with self.graph.as_default():
            self._build_configured_nets()
            self.session.run(tf.global_variables_initializer())
        self.checkpoint, self.step = None, None
        return self

    def _setup(self, logits_fn, preprocess, num_classes, class_names, palette, ignore_label, pixels,
               batch_size, scales, flip, threads, xla=False, mixed_precision=False, fold_batch_norms=False,
               static_shapes=False):
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.palette = [tuple(c) for c in palette] if palette else viz.voc_colormap(self.num_classes)
        self.ignore_label = ignore_label
        self.pixels = int(pixels or 0)
        if self.pixels < 0:
            raise ValueError("pixels must be >= 0 (0 = native resolution), got %d" % self.pixels)
        self.batch_size = int(batch_size)
        self.scales = parse_scales(scales)
        self.flip = bool(flip)
        self._logits_fn, self._preprocess = logits_fn, preprocess
        self._ensembles = {}
        self.static_shapes = bool(static_shapes)
        self.fold_batch_norms = bool(fold_batch_norms)
        self.mixed_precision = bool(mixed_precision)
        self.graph = tf.Graph()
        self._config = session_config(threads, xla, mixed_precision)
        self.session = tf.Session(graph=self.graph, config=self._config)
        self._saver = None

    # ------------------------------------------------------------------ graph
    def _ensemble(self, scales, flip, size):
        """The _Ensemble for these test settings and image size (h, w), built on first use.

        With pixels > 0 the canvases depend only on the scales; at native
        resolution the net input is dynamic, unless the decoder declares it needs
        static shapes (`needs_static_shapes`, e.g. DeepLab's true stride): then
        one copy per image size.
        """
        if self.pixels:
            canvases = tuple(scaled_canvas(1, 1, self.pixels, scale)[1] for scale in scales)
        elif not self.static_shapes:
            canvases = (None,) * len(scales)
        else:
            canvases = tuple(scaled_canvas(size[0], size[1], 0, scale)[1] for scale in scales)
        key = (canvases, bool(flip))
        if key not in self._ensembles:
            with self.graph.as_default(), tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
                before = len(tf.global_variables())
                with tf.name_scope("ensemble"):
                    self._ensembles[key] = _Ensemble(self._logits_fn, self._preprocess, canvases, flip, self.session)
                if before and len(tf.global_variables()) != before:
                    raise RuntimeError("a second copy of the net created new variables instead of sharing them")
        return self._ensembles[key]

    def _build_configured_nets(self):
        """Create the variables and the configured ensemble now (not later, mid-timing)."""
        self._ensemble(self.scales, self.flip, (32, 32))

    def restore(self, step=None, checkpoint=None):
        """Load the weights of milestone `step` (None: the newest intact checkpoint, 'best': --keep_best's) into
        the graph; returns the path.  A damaged or non-finite checkpoint asked for is refused
        (checkpoint_check.DamagedCheckpoint); a damaged newest one is skipped, saying so."""
        if checkpoint or step is not None:
            path = checkpoint_check.check(checkpoint or runfolder.checkpoint_path(self.traindir, step))
        else:
            path = checkpoint_check.newest_intact(self.traindir)
        with self.graph.as_default():
            if self._saver is None:
                self._build_configured_nets()
                self._saver = tf.train.Saver(var_list=tf.global_variables(), name="inference_saver")
            self._saver.restore(self.session, path)
        self._drop_folded()
        if self.fold_batch_norms and (self.pixels or not self.static_shapes):
            self._runnable(self._ensemble(self.scales, self.flip, (32, 32)))  # freeze now, not mid-timing
        self.checkpoint = path
        self.step = runfolder.checkpoint_step(path)
        return path

    def _drop_folded(self):
        """Forget the folded copies: they hold the previous weights as constants."""
        for ensemble in self._ensembles.values():
            if ensemble.folded is not None:
                ensemble.folded.session.close()
                ensemble.folded = None

    def _runnable(self, ensemble):
        """What runs `ensemble`: its folded twin (made on first use per checkpoint) or the ensemble itself."""
        if not self.fold_batch_norms:
            return ensemble
        if ensemble.folded is None:
            ensemble.folded = _FoldedEnsemble(ensemble, self._config)
        return ensemble.folded

    # ---------------------------------------------------------------- running
    def _run(self, batch, scales, flip, probabilities):
        """One same-size batch [N, H, W, 3] -> classes [N, H, W] (and probabilities [N, H, W, C]) at H x W."""
        height, width = batch.shape[1:3]
        ensemble = self._runnable(self._ensemble(scales, flip, (height, width)))
        feed = {ensemble.images: batch.astype(np.float32, copy=False)}
        for placeholder, scale in zip(ensemble.resized_sizes, scales):
            feed[placeholder] = scaled_canvas(height, width, self.pixels, scale)[0]
        if probabilities:
            return ensemble.session.run([ensemble.classes, ensemble.probabilities], feed)
        return ensemble.session.run(ensemble.classes, feed), None

    def segment(self, images, probabilities=False, scales=None, flip=None):
        """Class maps (uint8 when the classes fit, else int32) at each image's own size.

        images: one HxWx3 RGB array, an [N, H, W, 3] array, or a list of HxWx3
        arrays of any sizes (uint8 or float in [0, 255]).  Returns the same
        structure: one map, or a list of maps.  probabilities=True also returns
        the softmax probabilities (float32 HxWxC) alongside.  scales / flip
        override the Segmenter's defaults for this call.
        """
        single = isinstance(images, np.ndarray) and images.ndim == 3
        items = [images] if single else list(images)
        for item in items:
            if np.ndim(item) != 3 or np.shape(item)[-1] != 3:
                raise ValueError("expected HxWx3 RGB images, got shape %s" % (np.shape(item),))
        scales = self.scales if scales is None else parse_scales(scales)
        flip = self.flip if flip is None else bool(flip)
        maps, probs = [None] * len(items), [None] * len(items)
        for indices in same_size_batches([np.shape(item)[:2] for item in items], self.batch_size):
            batch = np.stack([np.asarray(items[i]) for i in indices])
            classes, batch_probs = self._run(batch, scales, flip, probabilities)
            for j, i in enumerate(indices):
                maps[i] = classes[j].astype(np.uint8 if self.num_classes <= 256 else np.int32)
                if probabilities:
                    probs[i] = batch_probs[j]
        if single:
            return (maps[0], probs[0]) if probabilities else maps[0]
        return (maps, probs) if probabilities else maps

    def close(self):
        self._drop_folded()
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def runtime(self):
        """What runs the net, for results.json (an exported model's ExportedSegmenter names its runtime alike)."""
        return "tensorflow %s (%s)" % (tf.__version__, "frozen graph, batch norm folded" if self.fold_batch_norms
                                       else "variable graph")

    @property
    def precision(self):
        return "mixed bf16/fp16" if self.mixed_precision else "fp32"

    def describe(self):
        """One line: which net, checkpoint and test settings."""
        return "%s step %s, pixels %s, scales %s%s%s" % (
            self.name, self.step, self.pixels or "native", ",".join("%g" % s for s in self.scales),
            ", flip" if self.flip else "", ", batch norm folded" if self.fold_batch_norms else "")



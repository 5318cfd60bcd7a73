"""Segment numpy images with a trained run: load the run folder once, then `segment()` as often as you like.

    seg = Segmenter("tmp/20250101_resnet_v1_18_LinkNet__1")          # runargs + latest checkpoint
    maps = seg.segment([image_a, image_b])          # HxW class maps at each image's own size
    maps, probs = seg.segment(images, probabilities=True, scales=(0.75, 1, 1.25), flip=True)
    maps, confidence = seg.segment(images, confidence=True)   # + the softmax's top probability per pixel
    maps = seg.segment(big_images, tile=(256, 256))  # sliding windows of 256x256 net-input pixels
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

Tiling (`tile=(h, w)`, `tile_overlap`) is for images whose net input is
large (native resolution of 4K drone or medical images): the net input the
untiled path would make is cut into overlapping windows of h x w net-input
pixels, same scale factor, each window goes through the same ensemble
(scales and flips included) as if it were an image, and the probabilities
are blended with a raised-cosine cross-fade where windows overlap
(utils/inference/geometry.py).  Windows are taken one row of tiles at a time
and rows above the next window row are finished and dropped, so beyond the
image and its class map the memory is one band: window height x image width
x classes float32 (256 x 3840 x 11 classes: 43 MB for a 4K frame), plus one
batch of windows in the net.  Only `probabilities=True` returns the whole
H x W x C float32 (it was asked for); `confidence=True` is H x W float32.
An image whose net input fits in one window is not tiled (same result).
"""
import numpy as np

import arch
import nets
from utils import viz
from utils.compat import precision
from utils.compat import tf
from utils.compat.session import session_config
from utils.inference.folding import freeze_and_fold
from utils.inference.geometry import (axis_window, check_overlap, net_probabilities, parse_scales, parse_tile,
                                      same_size_batches, scaled_canvas, tile_grid)
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
        self.confidence = tf.reduce_max(self.probabilities, axis=-1)


class _FoldedEnsemble:
    """An _Ensemble frozen with the weights its session holds now, batch norm folded into the convolutions
    (utils/inference/folding.py, as `test.py --export` writes it), in a graph and session of its own.

    Same feeds and outputs as the _Ensemble; fewer nodes, no variable reads, no
    batch-norm passes over the feature maps: faster at equal results (~1e-6).
    """

    def __init__(self, ensemble, config):
        inputs = [ensemble.images] + list(ensemble.resized_sizes)
        graph_def = freeze_and_fold(ensemble.session, inputs,
                                    [ensemble.classes, ensemble.probabilities, ensemble.confidence])
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        self.images = graph.get_tensor_by_name(ensemble.images.name)
        self.resized_sizes = [graph.get_tensor_by_name(t.name) for t in ensemble.resized_sizes]
        self.classes = graph.get_tensor_by_name(ensemble.classes.name)
        self.probabilities = graph.get_tensor_by_name(ensemble.probabilities.name)
        self.confidence = graph.get_tensor_by_name(ensemble.confidence.name)
        self.session = tf.Session(graph=graph, config=config)


class Segmenter:
    """A trained run (or any logits function) ready to segment numpy RGB images of any size."""

    def __init__(self, traindir, step=None, pixels=None, batch_size=None, scales=(1.0,), flip=False,
                 checkpoint=None, threads=0, xla=False, mixed_precision=False, fold_batch_norms=True, tile=None,
                 tile_overlap=0.25):
        """traindir: run folder; step: milestone (None = newest checkpoint); pixels: None = as trained, 0 = native.

        tile: (h, w) or 'HxW' net-input pixels per sliding window (None: whole images); tile_overlap: the share
        of a window its neighbour also covers, in [0, 1).

        checkpoint: a checkpoint prefix to restore instead of the run's (rare).
        threads: TF intra/inter-op threads (0 = TF default).
        xla, mixed_precision: the fast paths train.py has (utils/compat/session.py); mixed_precision is a
        --mixed_precision mode, as train.py's (auto|bf16|fp16|fp32, utils/compat/precision.py; True / False as in
        old runargs: True is the device's 16-bit mode).
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
                    static_shapes=spec.decoder_class.needs_static_shapes, tile=tile, tile_overlap=tile_overlap)
        self.name = self.config.net_name
        self.restore(step=step, checkpoint=checkpoint)

    @classmethod
    def from_logits_fn(cls, logits_fn, num_classes, pixels, preprocess=None, batch_size=8, scales=(1.0,),
                       flip=False, class_names=None, palette=None, ignore_label=None, static_shapes=False,
                       tile=None, tile_overlap=0.25):
        """A Segmenter around any `logits_fn(preprocessed [N, H, W, 3]) -> logits [N, H, W, C]` (no checkpoint).

        For tests and experiments: the same resize / pad / crop / resize-back path with a known model.
        static_shapes: logits_fn needs static spatial shapes (one graph per image size at native resolution).
        """
        self = cls.__new__(cls)
        self.traindir, self.config, self.name = None, None, "custom"
        self._setup(logits_fn, preprocess or (lambda images: images), num_classes, class_names, palette,
                    ignore_label, pixels, batch_size, scales, flip, threads=0, static_shapes=static_shapes,
                    tile=tile, tile_overlap=tile_overlap)
        with self.graph.as_default():
            self._build_configured_nets()
            self.session.run(tf.global_variables_initializer())
        self.checkpoint, self.step = None, None
        return self

    def _setup(self, logits_fn, preprocess, num_classes, class_names, palette, ignore_label, pixels,
               batch_size, scales, flip, threads, xla=False, mixed_precision=False, fold_batch_norms=False,
               static_shapes=False, tile=None, tile_overlap=0.25):
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
        self.tile = parse_tile(tile)
        self.tile_overlap = check_overlap(tile_overlap)
        self._logits_fn, self._preprocess = logits_fn, preprocess
        self._ensembles = {}
        self.static_shapes = bool(static_shapes)
        self.fold_batch_norms = bool(fold_batch_norms)
        self.arithmetic = precision.resolve(mixed_precision)
        self.graph = tf.Graph()
        self._config = session_config(threads, xla, self.arithmetic.mode)
        self.session = tf.Session(graph=self.graph, config=self._config)
        self._saver = None

    # ------------------------------------------------------------------ graph
    def _ensemble(self, scales, flip, resized, padded):
        """The _Ensemble for these test settings and per-scale net input sizes `resized`, built on first use.

        padded (whole images with pixels > 0): the input goes on the square
        canvas of its scale, which depends only on the scales.  Otherwise
        (native resolution, tiles) the net input is dynamic, unless the decoder
        declares it needs static shapes (`needs_static_shapes`, e.g. DeepLab's
        true stride): then one copy per input size.
        """
        if padded:
            canvases = tuple(scaled_canvas(1, 1, self.pixels, scale)[1] for scale in scales)
        elif not self.static_shapes:
            canvases = (None,) * len(scales)
        else:
            canvases = tuple(tuple(size) for size in resized)
        key = (canvases, bool(flip))
        if key not in self._ensembles:
            with self.graph.as_default(), tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
                before = len(tf.global_variables())
                with tf.name_scope("ensemble"):
                    self._ensembles[key] = _Ensemble(self._logits_fn, self._preprocess, canvases, flip, self.session)
                if before and len(tf.global_variables()) != before:
                    raise RuntimeError("a second copy of the net created new variables instead of sharing them")
        return self._ensembles[key]

    def _configured_ensembles(self):
        """The ensembles the configured settings will run whatever the image size: built (and folded) up front,
        not later, mid-timing."""
        padded = bool(self.pixels)
        ensembles = []
        if padded or not self.static_shapes:
            ensembles.append(self._ensemble(self.scales, self.flip, [(32, 32)] * len(self.scales), padded))
        if self.tile and padded and not self.static_shapes:
            ensembles.append(self._ensemble(self.scales, self.flip, [self.tile] * len(self.scales), False))
        return ensembles

    def _build_configured_nets(self):
        """Create the variables and the configured ensembles now; at least one, so the variables exist."""
        if not self._configured_ensembles():
            self._ensemble(self.scales, self.flip, [(32, 32)] * len(self.scales), False)

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
        if self.fold_batch_norms:
            for ensemble in self._configured_ensembles():
                self._runnable(ensemble)  # freeze now, not mid-timing
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
    def _run(self, batch, scales, flip, outputs, resized=None):
        """One same-size batch [N, H, W, 3] -> {output name: array at H x W}; outputs from 'classes',
        'probabilities', 'confidence'.  resized: per-scale net input sizes of a batch of tiles (unpadded);
        None for whole images (the pipeline's geometry)."""
        height, width = batch.shape[1:3]
        padded = resized is None and bool(self.pixels)
        if resized is None:
            resized = [scaled_canvas(height, width, self.pixels, scale)[0] for scale in scales]
        ensemble = self._runnable(self._ensemble(scales, flip, resized, padded))
        feed = {ensemble.images: batch.astype(np.float32, copy=False)}
        feed.update(zip(ensemble.resized_sizes, resized))
        values = ensemble.session.run([getattr(ensemble, name) for name in outputs], feed)
        return dict(zip(outputs, values))

    def _class_map(self, classes):
        return classes.astype(np.uint8 if self.num_classes <= 256 else np.int32)

    def segment(self, images, probabilities=False, scales=None, flip=None, tile=None, confidence=False):
        """Class maps (uint8 when the classes fit, else int32) at each image's own size.

        images: one HxWx3 RGB array, an [N, H, W, 3] array, or a list of HxWx3
        arrays of any sizes (uint8 or float in [0, 255]).  Returns the same
        structure: one map, or a list of maps.  probabilities=True also returns
        the softmax probabilities (float32 HxWxC) alongside; confidence=True the
        top probability per pixel (float32 HxW), after them.  scales / flip /
        tile override the Segmenter's defaults for this call (tile=0: untiled).
        """
        single = isinstance(images, np.ndarray) and images.ndim == 3
        items = [images] if single else list(images)
        for item in items:
            if np.ndim(item) != 3 or np.shape(item)[-1] != 3:
                raise ValueError("expected HxWx3 RGB images, got shape %s" % (np.shape(item),))
        scales = self.scales if scales is None else parse_scales(scales)
        flip = self.flip if flip is None else bool(flip)
        tile = self.tile if tile is None else parse_tile(tile)
        outputs = ["classes"] + ["probabilities"] * bool(probabilities) + ["confidence"] * bool(confidence)
        results = {name: [None] * len(items) for name in outputs}
        grids = [self._grid(np.shape(item)[:2], tile) for item in items]
        whole = [i for i, grid in enumerate(grids) if grid is None]
        for batch_indices in same_size_batches([np.shape(items[i])[:2] for i in whole], self.batch_size):
            indices = [whole[j] for j in batch_indices]
            values = self._run(np.stack([np.asarray(items[i]) for i in indices]), scales, flip, outputs)
            for name in outputs:
                for j, i in enumerate(indices):
                    results[name][i] = values[name][j]
        for i, grid in enumerate(grids):
            if grid is not None:
                for name, value in self._segment_tiled(np.asarray(items[i]), grid, scales, flip, outputs).items():
                    results[name][i] = value
        results["classes"] = [self._class_map(classes) for classes in results["classes"]]
        returned = [results[name][0] if single else results[name] for name in outputs]
        return returned[0] if len(returned) == 1 else tuple(returned)

    # ---------------------------------------------------------------- tiling
    def _grid(self, size, tile):
        """The sliding windows over an image of `size` (h, w), or None: untiled, or its net input fits one tile."""
        if not tile:
            return None
        return tile_grid(size, scaled_canvas(size[0], size[1], self.pixels)[0], tile, self.tile_overlap)

    def _segment_tiled(self, image, grid, scales, flip, outputs):
        """One image through sliding windows, one row of windows at a time: {output name: array at H x W}.

        Each window's probabilities (all scales and flips averaged, at the
        window's original size) are weighted by its cross-fade window and
        summed into a band of rows; rows no later window row reaches are
        normalised, argmaxed and dropped before the next row of windows runs.
        """
        height, width = image.shape[:2]
        (tile_h, tile_w), last_row = grid.size, len(grid.rows) - 1
        factor_h, factor_w = (n / float(o) for n, o in zip(scaled_canvas(height, width, self.pixels)[0],
                                                            (height, width)))
        resized = [(max(1, int(round(tile_h * factor_h * scale))), max(1, int(round(tile_w * factor_w * scale))))
                   for scale in scales]
        col_windows = [axis_window(tile_w, grid.ramps[1], c > 0, c < len(grid.cols) - 1)
                       for c in range(len(grid.cols))]
        finished = {"classes": np.empty((height, width), np.int32)}
        if "probabilities" in outputs:
            finished["probabilities"] = np.empty((height, width, self.num_classes), np.float32)
        if "confidence" in outputs:
            finished["confidence"] = np.empty((height, width), np.float32)
        band_start, band, weights = 0, None, None

        def finish(stop):
            """Normalise rows [band_start, stop) of the band into the finished maps."""
            rows = stop - band_start
            probabilities = band[:rows] / weights[:rows, :, None]
            finished["classes"][band_start:stop] = np.argmax(probabilities, axis=-1)
            if "probabilities" in finished:
                finished["probabilities"][band_start:stop] = probabilities
            if "confidence" in finished:
                finished["confidence"][band_start:stop] = probabilities.max(-1)

        for r, top in enumerate(grid.rows):
            new_band = np.zeros((tile_h, width, self.num_classes), np.float32)
            new_weights = np.zeros((tile_h, width), np.float32)
            if band is not None:  # finish the rows this window row does not reach, carry the overlap
                finish(top)
                kept = band_start + len(band) - top
                new_band[:kept], new_weights[:kept] = band[top - band_start:], weights[top - band_start:]
            band_start, band, weights = top, new_band, new_weights
            row_window = axis_window(tile_h, grid.ramps[0], r > 0, r < last_row)
            for start in range(0, len(grid.cols), self.batch_size):
                lefts = grid.cols[start:start + self.batch_size]
                crops = np.stack([image[top:top + tile_h, left:left + tile_w] for left in lefts])
                probabilities = self._run(crops, scales, flip, ["probabilities"], resized)["probabilities"]
                for c, (left, tile_probabilities) in enumerate(zip(lefts, probabilities), start):
                    window = row_window[:, None] * col_windows[c][None, :]
                    band[:, left:left + tile_w] += tile_probabilities * window[:, :, None]
                    weights[:, left:left + tile_w] += window
        finish(height)
        return finished

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
        return self.arithmetic.mode

    def describe(self):
        """One line: which net, checkpoint and test settings."""
        return "%s step %s, pixels %s, scales %s%s%s%s" % (
            self.name, self.step, self.pixels or "native", ",".join("%g" % s for s in self.scales),
            ", flip" if self.flip else "",
            ", tiles %s" % describe_tile(self.tile, self.tile_overlap) if self.tile else "",
            ", batch norm folded" if self.fold_batch_norms else "")


def describe_tile(tile, overlap):
    """'256x256 overlap 0.25'."""
    return "%dx%d overlap %g" % (tile[0], tile[1], overlap)



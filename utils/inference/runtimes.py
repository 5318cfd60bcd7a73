"""Exported models (TFLite, ONNX, SavedModel) behind the Segmenter's interface, so test.py scores them the same way.

    with ExportedSegmenter("deploy/int8/model.tflite", "tmp/<run>") as seg:
        maps = seg.segment(images)          # class maps at each image's own size, as Segmenter.segment
        seg.runtime, seg.precision          # 'tflite (LiteRT 2.3.0, XNNPACK, 2 threads)', 'int8'

Why the Segmenter inside: the exported TFLite / ONNX file is the net alone
at one static input shape (utils/inference/deploy.py); the resize, padding,
crop, resize back, softmax and argmax around it are the Segmenter's own
(utils/inference/geometry.py), with the runtime called where the TensorFlow
net would run (a numpy function in the graph).  So an fp32 export scores
what the checkpoint scores, to float rounding, and any difference an int8
export shows is the quantization's.  A SavedModel (test.py --export) holds
that geometry itself and is run as it is.
"""
import json
import os

import ai_edge_litert
import numpy as np
import onnxruntime
from ai_edge_litert.interpreter import Interpreter

from utils import viz
from utils.compat import quiet, tf
from utils.compat.session import session_config
from utils.inference.deploy import RECORD, pad_value
from utils.inference.export import INPUT, OUTPUTS, SIGNATURE
from utils.inference.geometry import parse_scales, same_size_batches
from utils.inference.segmenter import Segmenter
from utils.training import runfolder
from utils.training.config import RunConfig

MODEL_KINDS = "a .tflite or .onnx file, or a SavedModel folder (test.py --export)"


class ModelFileError(ValueError):
    """--model names something that is not a loadable exported model."""


class ShapeMismatch(ValueError):
    """The exported model and the run (or the images) disagree on a shape."""


def _threads(threads):
    return int(threads) if threads else (os.cpu_count() or 1)


class TFLiteRunner:
    """One .tflite file on the LiteRT interpreter (XNNPACK delegate): float32 canvases in, float outputs back."""
    kind = "tflite"

    def __init__(self, path, threads=0):
        try:
            with quiet.stderr_hidden():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter = Interpreter(model_path=path, num_threads=_threads(threads))
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise ModelFileError("--model %s: not a loadable TFLite model (%s)" % (path, str(error).strip()[:200])) \
                from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape = tuple(int(v) for v in self.input["shape"][1:3])
        self.num_classes = int(self.output["shape"][-1]) if len(self.output["shape"]) == 4 else None
        types = {detail["dtype"] for detail in self.interpreter.get_tensor_details()}
        self.precision = ("int16x8" if np.int16 in types else "int8" if np.int8 in types
                          else "fp16" if np.float16 in types else "fp32")
        kernels = "TFLite's kernels (XNNPACK runs no 16x8 op)" if self.precision == "int16x8" else "XNNPACK"
        self.runtime = "tflite (LiteRT %s, %s, %d threads)" % (ai_edge_litert.__version__, kernels, _threads(threads))

    def __call__(self, batch):
        outputs = []
        for canvas in batch:
            self.interpreter.set_tensor(self.input["index"], _quantize(canvas[None], self.input))
            self.interpreter.invoke()
            outputs.append(_dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)[0])
        return np.stack(outputs)


def _quantize(values, detail):
    """float32 -> the tensor's type (int8 with its scale / zero point, or as it is)."""
    if detail["dtype"] != np.int8:
        return values.astype(detail["dtype"], copy=False)
    scale, zero_point = detail["quantization"]
    return np.clip(np.round(values / scale) + zero_point, -128, 127).astype(np.int8)


def _dequantize(values, detail):
    if detail["dtype"] != np.int8:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


class OnnxRunner:
    """One .onnx file on onnxruntime's CPU provider."""
    kind = "onnx"

    def __init__(self, path, threads=0):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)
        try:
            self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf / RuntimeException types
            raise ModelFileError("--model %s: not a loadable ONNX model (%s)" % (path, str(error).strip()[:200])) \
                from None
        self.input = self.session.get_inputs()[0]
        output = self.session.get_outputs()[0]
        self.shape = tuple(int(v) for v in self.input.shape[1:3])
        self.num_classes = int(output.shape[-1]) if len(output.shape) == 4 else None
        self.precision = "fp32"
        self.runtime = "onnxruntime %s (CPU, %s threads)" % (onnxruntime.__version__, threads or "default")

    def __call__(self, batch):
        return np.concatenate([self.session.run(None, {self.input.name: canvas[None]})[0] for canvas in batch])


def load_runner(path, threads=0):
    """The runner for an exported file: TFLiteRunner or OnnxRunner by its extension."""
    if not os.path.exists(path):
        raise ModelFileError("--model %s: no such file" % path)
    if path.endswith(".tflite"):
        return TFLiteRunner(path, threads)
    if path.endswith(".onnx"):
        return OnnxRunner(path, threads)
    raise ModelFileError("--model %s: expected %s" % (path, MODEL_KINDS))


def read_record(path):
    """The export.json beside an exported model (or inside a SavedModel folder); {} when there is none."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    record = os.path.join(folder, RECORD)
    if not os.path.isfile(record):
        return {}
    with open(record) as handle:
        return json.load(handle)


def model_tag(segmenter):
    """'tflite_int8', 'onnx_fp32', 'savedmodel_fp32': names test.py's output folder for an exported model."""
    kind = "savedmodel" if segmenter.shape is None else segmenter.runner.kind
    return "%s_%s" % (kind, segmenter.precision)


class ExportedSegmenter:
    """An exported model of a run, segmenting numpy images like Segmenter (same attributes test.py reads)."""

    def __init__(self, model_path, traindir, pixels=None, batch_size=None, scales=(1.0,), flip=False, threads=0):
        config = RunConfig.load(traindir)
        data = config.data
        self.traindir, self.model_path, self.name = traindir, model_path, config.net_name
        self.record = read_record(model_path)
        self.checkpoint = self.record.get("checkpoint")
        self.step = runfolder.checkpoint_step(self.checkpoint) if self.checkpoint else None
        self.num_classes = config.model.num_classes
        self.class_names = list(data.class_names) if data.class_names else [str(i) for i in range(self.num_classes)]
        self.batch_size = int(batch_size or config.train.batch_size or 8)
        self.scales, self.flip = parse_scales(scales), bool(flip)
        self.tile, self.tile_overlap = None, None  # a static-shape export is never tiled (test.py refuses --tile)
        if self.scales != (1.0,):
            raise ShapeMismatch("--scales %s: an exported model has one input shape; multi-scale testing needs the "
                                "checkpoint (drop --model)" % ",".join("%g" % s for s in self.scales))
        if os.path.isdir(model_path):
            self._open_saved_model(model_path, config, pixels, threads)
        else:
            self._open_runner(model_path, config, pixels, threads)
        self.palette = [tuple(c) for c in data.palette] if data.palette else viz.voc_colormap(self.num_classes)
        self.ignore_label = data.ignore_label

    # -------------------------------------------------------------- TFLite / ONNX: the net inside the geometry
    def _open_runner(self, path, config, pixels, threads):
        runner = load_runner(path, threads)
        height, width = runner.shape
        if runner.num_classes is not None and runner.num_classes != self.num_classes:
            raise ShapeMismatch("--model %s returns %d classes, the run %s has %d: a model of another run?"
                                % (path, runner.num_classes, self.traindir, self.num_classes))
        square = height == width
        if pixels and (not square or pixels != height):
            raise ShapeMismatch("--pixels %d: %s takes %dx%d inputs; export it again with --pixels %d (or leave "
                                "--pixels out)" % (pixels, path, height, width, pixels))
        self.runner, self.shape = runner, (height, width)
        self.pixels = height if square else 0  # HxW: images of exactly that size, fed as they are
        self.runtime, self.precision = runner.runtime, runner.precision
        pad = pad_value(config.model.encoder)
        classes = self.num_classes

        def net_outputs(canvases):
            out = runner(canvases)
            if out.ndim == 3:  # a class-map export: one-hot votes, resized back like logits
                out = np.eye(classes, dtype=np.float32)[out]
            return out.astype(np.float32, copy=False)

        def logits_fn(net_input):
            # the geometry pads with zeros after `preprocess`; this model normalises inside, so the
            # shift by `pad` makes those zeros the pad colour test.py's padding maps to
            logits = tf.numpy_function(net_outputs, [net_input + pad], tf.float32, stateful=True)
            logits.set_shape([None, height, width, classes])
            return logits

        self._inner = Segmenter.from_logits_fn(logits_fn, classes, self.pixels, preprocess=lambda images: images - pad,
                                               batch_size=self.batch_size, flip=self.flip)

    def _segment_runner(self, items, probabilities, confidence):
        if not self.pixels:
            for item in items:
                if tuple(np.shape(item)[:2]) != self.shape:
                    raise ShapeMismatch("%s takes %dx%d images, got one of %dx%d: export it with --export_shape "
                                        "%dx%d, or square with --pixels" % ((self.model_path,) + self.shape
                                                                            + tuple(np.shape(item)[:2]) * 2))
        return self._inner.segment(items, probabilities=probabilities, confidence=confidence)

    # -------------------------------------------------------------- SavedModel: geometry inside
    def _open_saved_model(self, path, config, pixels, threads):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ModelFileError("--model %s: a folder without saved_model.pb; expected %s" % (path, MODEL_KINDS))
        exported_pixels = self.record.get("pixels", config.data.pixels)
        if pixels and pixels != exported_pixels:
            raise ShapeMismatch("--pixels %d: the SavedModel %s resizes to %s pixels inside; export it again with "
                                "--pixels %d" % (pixels, path, exported_pixels, pixels))
        self._graph = tf.Graph()
        self._session = tf.Session(graph=self._graph, config=session_config(threads))
        with self._graph.as_default():
            meta = tf.saved_model.loader.load(self._session, [tf.saved_model.tag_constants.SERVING], path)
        signature = meta.signature_def[SIGNATURE]
        self._feed = signature.inputs[INPUT].name
        self._fetch = [signature.outputs[name].name for name in OUTPUTS]
        self.pixels, self.shape = exported_pixels, None
        self.runtime, self.precision = "tensorflow %s (SavedModel)" % tf.__version__, "fp32"

    def _segment_saved_model(self, items, probabilities, confidence):
        maps, probs = [None] * len(items), [None] * len(items)
        for indices in same_size_batches([np.shape(item)[:2] for item in items], self.batch_size):
            batch = np.stack([np.asarray(items[i], np.float32) for i in indices])
            classes, batch_probs = self._session.run(self._fetch, {self._feed: batch})
            for j, i in enumerate(indices):
                maps[i] = classes[j].astype(np.uint8 if self.num_classes <= 256 else np.int32)
                probs[i] = batch_probs[j]
        returned = [maps] + [probs] * bool(probabilities) + [[p.max(-1) for p in probs]] * bool(confidence)
        return returned[0] if len(returned) == 1 else tuple(returned)

    # -------------------------------------------------------------- the Segmenter's interface
    def segment(self, images, probabilities=False, confidence=False):
        """As Segmenter.segment: one HxWx3 image, an [N, H, W, 3] array or a list -> class maps (then the
        probabilities and the top probability per pixel, when asked for)."""
        single = isinstance(images, np.ndarray) and images.ndim == 3
        items = [images] if single else list(images)
        if self.shape is None:
            result = self._segment_saved_model(items, probabilities, confidence)
        else:
            result = self._segment_runner(items, probabilities, confidence)
        if single:
            return tuple(part[0] for part in result) if isinstance(result, tuple) else result[0]
        return result

    def describe(self):
        return "%s (%s, %s) of %s step %s, pixels %s%s" % (
            self.model_path, self.precision, self.runtime, self.name, self.step, self.pixels or
            "%dx%d as exported" % self.shape, ", flip" if self.flip else "")

    def close(self):
        if self.shape is None:
            self._session.close()
        else:
            self._inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

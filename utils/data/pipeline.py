"""The one tf.data input pipeline: training, validation, testing and benchmarks all use it.

    files = dataset_files(datapath, "camvid", "training")
    info = load_dataset_info(datapath, "camvid")          # num_classes, ignore_label, ...
    train = make_dataset(files, "vgg", pixels=512, batch_size=8, ignore_label=info["ignore_label"],
                         training=True, seed=None)
    val = make_dataset(dataset_files(datapath, "camvid", "validation"), "vgg", pixels=512,
                       batch_size=8, ignore_label=info["ignore_label"], training=False)
    feed = make_feedable_iterator(train, val)              # one graph, a handle switches datasets

Each element is a dict:
    image    float32 [B, P, P, 3]  already normalised for the net (padding = 0 after normalisation)
    label    int32   [B, P, P]     class indices, padding = ignore_label
    height, width  int32 [B]       original size
    scale    float32 [B]           resize factor original -> network input (before augmentation)
    filename string  [B]
With pixels=P the larger image side becomes P and the image sits in the
top-left corner of the PxP canvas: the valid region is scaled_size(h, w, P).
With pixels=0 images keep their native size and a batch is padded to its
largest member.  Everything runs as TF ops inside a parallel map (no py_func).

Augmentation (training): per-axis stretch in scale_range, horizontal flip,
random crop back to PxP (zero/ignore padding first when the stretched image is
smaller).  Randomness is stateless and seeded per element, so with `seed` the
batches are reproducible whatever the parallelism; without it the map runs
non-deterministically (faster).
"""
import os

import nets
from nets import preprocessing as net_preprocessing
from utils.compat import tf
from utils.data import families
from utils.data.dataset_info import dataset_files, load_dataset_info
from utils.data.records import parse_record

AUTOTUNE = -1  # tf.data.AUTOTUNE's value, written out so that importing this module needs no TensorFlow


def _plain_python(fn):
    """fn as tf.data traces it, without AutoGraph: the map functions use tf.cond / tf.where, never Python
    control flow on tensors, and AutoGraph's source transformation costs seconds per pipeline built."""
    return tf.autograph.experimental.do_not_convert(fn)


# --- geometry ---------------------------------------------------------------
def scaled_size(height, width, pixels):
    """(h, w) after scaling the larger side to `pixels` - exactly what the pipeline computes; a side never
    shrinks below 1 pixel (an extreme aspect ratio such as 2000x3)."""
    if not pixels:
        return height, width
    larger = max(height, width)
    return (max(1, (height * pixels + larger // 2) // larger),
            max(1, (width * pixels + larger // 2) // larger))


def _fit_size(height, width, pixels):
    """TF twin of scaled_size (integer arithmetic, identical rounding) + float scale."""
    larger = tf.maximum(height, width)
    new_h = tf.maximum(1, (height * pixels + larger // 2) // larger)
    new_w = tf.maximum(1, (width * pixels + larger // 2) // larger)
    return new_h, new_w, tf.cast(pixels, tf.float32) / tf.cast(larger, tf.float32)


def _pad_to(tensor, height, width, value):
    """Pad bottom/right up to (height, width); never crops."""
    shape = tf.shape(tensor)
    pad_h, pad_w = tf.maximum(height - shape[0], 0), tf.maximum(width - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]] + [[0, 0]] * (len(tensor.shape) - 2)
    return tf.pad(tensor, paddings, constant_values=value)


def resolve_preprocessing(preprocessing):
    """None (keep [0, 255]), a nets.preprocessing key ('vgg', ...), a net name, or a callable."""
    if preprocessing is None:
        return lambda images: images
    if callable(preprocessing):
        return preprocessing
    if preprocessing in net_preprocessing.PREPROCESSORS:
        return net_preprocessing.PREPROCESSORS[preprocessing]
    if preprocessing in nets.NAMES:
        return nets.get(preprocessing).preprocess
    raise ValueError("unknown preprocessing %r; use one of %s, a net name, or a callable"
                     % (preprocessing, sorted(net_preprocessing.PREPROCESSORS)))


# --- the per-example map ------------------------------------------------------
def _resize_nearest(label, height, width):
    """Nearest-neighbour resize of an HxW map by two gathers.

    Same sampling as resize_nearest_neighbor(half_pixel_centers=True) (so it
    stays aligned with the bilinear image resize) at about half the cost.
    """
    def source_index(out_size, in_size):
        position = (tf.cast(tf.range(out_size), tf.float32) + 0.5) * (tf.cast(in_size, tf.float32)
                                                                      / tf.cast(out_size, tf.float32))
        return tf.minimum(tf.cast(tf.floor(position), tf.int32), in_size - 1)

    shape = tf.shape(label)
    rows = source_index(height, shape[0])
    cols = source_index(width, shape[1])
    return tf.gather(tf.gather(label, rows), cols, axis=1)


def jitter_colors(image, strength, seed):
    """Random brightness, contrast, saturation (factors in [1-s, 1+s]) and hue (shift in [-s/4, s/4]) of a
    float RGB image in [0, 255]; `seed` a stateless seed pair."""
    draw = tf.random.stateless_uniform([4], seed=seed, minval=-1.0, maxval=1.0)
    image = image * (1.0 + strength * draw[0])
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = tf.clip_by_value((image - mean) * (1.0 + strength * draw[1]) + mean, 0.0, 255.0) / 255.0
    image = tf.image.adjust_saturation(image, 1.0 + strength * draw[2])
    image = tf.image.adjust_hue(image, 0.25 * strength * draw[3])
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def _make_transform_fn(normalise, pixels, ignore_label, augment, scale_range, flip, jitter=0.0, crop=0):
    """decoded example (parse_record's dict) [+ stateless seed pair] -> network-ready example.

    The training window is crop x crop when set (windows of the frame scaled to `pixels`: e.g. native-resolution
    patches, so thin objects keep their width), else the padded pixels x pixels square."""
    window = crop if (augment and crop) else pixels

    def transform(example, rng=None):
        image, label = example["image"], example["label"]
        seeds = None
        if augment:
            seeds = tf.cast(rng, tf.int64) + tf.constant([[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]], tf.int64)
        if augment and flip:  # on the small uint8 source: cheaper than on the resized float image
            coin = tf.random.stateless_uniform([], seed=seeds[0]) < 0.5
            image, label = tf.cond(coin, lambda: (tf.reverse(image, [1]), tf.reverse(label, [1])),
                                   lambda: (image, label))
        shape = tf.shape(image)
        if pixels:
            height, width, scale = _fit_size(shape[0], shape[1], pixels)
        else:
            height, width, scale = shape[0], shape[1], tf.constant(1.0)
        if augment and scale_range:
            stretch = tf.random.stateless_uniform([2], seed=seeds[1], minval=scale_range[0], maxval=scale_range[1])
            height = tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float32) * stretch[0]), tf.int32))
            width = tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float32) * stretch[1]), tf.int32))
        if pixels or (augment and scale_range):
            image = tf.image.resize_bilinear(image[None], tf.stack([height, width]), half_pixel_centers=True)[0]
            label = _resize_nearest(label, height, width)
        else:
            image = tf.cast(image, tf.float32)
        label = tf.cast(label, tf.int32)
        if window:
            if augment:  # random window; where the image is smaller, the window runs into the padding
                top = tf.random.stateless_uniform([], seed=seeds[2], minval=0,
                                                  maxval=tf.maximum(height - window, 0) + 1, dtype=tf.int32)
                left = tf.random.stateless_uniform([], seed=seeds[3], minval=0,
                                                   maxval=tf.maximum(width - window, 0) + 1, dtype=tf.int32)
                image = image[top:top + window, left:left + window]
                label = label[top:top + window, left:left + window]
            if augment and jitter:
                image = jitter_colors(image, jitter, seeds[4])
            image = _pad_to(normalise(image), window, window, 0.0)
            label = _pad_to(label, window, window, ignore_label)
            image.set_shape([window, window, 3])
            label.set_shape([window, window])
        else:
            if augment and jitter:
                image = jitter_colors(image, jitter, seeds[4])
            image = normalise(image)
            image.set_shape([None, None, 3])
            label.set_shape([None, None])
        return {"image": image, "label": label, "height": example["height"], "width": example["width"],
                "scale": tf.cast(scale, tf.float32), "filename": example["filename"]}
    return transform


def make_dataset(files, preprocessing=None, pixels=512, batch_size=8, ignore_label=255, training=True,
                 augment=None, seed=None, shuffle_buffer=256, repeat=None, num_parallel_calls=AUTOTUNE,
                 prefetch=AUTOTUNE, drop_remainder=None, scale_range=(0.75, 1.25), flip=True, threads=None,
                 cache=False, color_jitter=0.0, skip=0, crop=0):
    """A tf.data.Dataset of batched dicts (see module docstring) from record files.

    training=True: shuffled, repeated forever, augmented, remainder dropped;
    training=False: file order, one pass, no augmentation, last partial batch kept.
    augment / repeat (bool or epoch count) / drop_remainder override those defaults.
    threads: size of tf.data's private thread pool (None: TF's default, all cores).
    cache: keep the decoded images in memory after the first pass (small sets
    only: CamVid train is ~190 MB decoded); skips PNG/JPEG decoding afterwards.
    scale_range, flip, color_jitter, crop: the augmentations (utils/data/spec.py declares their flags);
    crop only shapes augmented examples (validation keeps the whole padded frame).
    skip: elements to pass over before decoding (a resumed run continues the seeded order where it stopped:
    the order, the augmentation draws and the batches are the uninterrupted run's).
    """
    files = [files] if isinstance(files, str) else list(files)
    if not files:
        raise ValueError("make_dataset needs at least one record file")
    if pixels and pixels < 1:
        raise ValueError("pixels must be positive or 0 (native size), got %r" % pixels)
    if crop and crop < 1:
        raise ValueError("crop must be positive or 0 (the pixels square), got %r" % crop)
    augment = training if augment is None else augment
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    deterministic = seed is not None or not training
    transform = _make_transform_fn(resolve_preprocessing(preprocessing), pixels, ignore_label, augment,
                                   tuple(scale_range) if scale_range else None, flip, color_jitter, crop)
    decode = (lambda example: example) if cache else parse_record

    @_plain_python
    def example_fn(element, rng=None):
        return transform(decode(element), rng)

    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training and len(files) > 1:
        dataset = dataset.shuffle(len(files), seed=seed)
    if len(files) > 1:
        dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 4), block_length=1,
                                     num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    else:
        dataset = tf.data.TFRecordDataset(files)
    if cache:
        dataset = dataset.map(_plain_python(parse_record), num_parallel_calls=num_parallel_calls, deterministic=deterministic).cache()
    if training and shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat is True:
        dataset = dataset.repeat()
    elif repeat:
        dataset = dataset.repeat(int(repeat))
    if augment:  # one stateless seed pair per element: reproducible under parallel map
        dataset = tf.data.Dataset.zip((dataset, tf.data.Dataset.random(seed=seed).batch(2)))
    if skip:  # records and seeds only: nothing is decoded for the skipped elements
        dataset = dataset.skip(int(skip))
    dataset = dataset.map(example_fn, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    if pixels or (augment and crop):
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    else:
        dataset = dataset.padded_batch(
            batch_size,
            padded_shapes={"image": [None, None, 3], "label": [None, None], "height": [], "width": [],
                           "scale": [], "filename": []},
            padding_values={"image": 0.0, "label": ignore_label, "height": 0, "width": 0, "scale": 0.0,
                            "filename": ""},
            drop_remainder=drop_remainder)
    if prefetch:
        dataset = dataset.prefetch(prefetch)
    options = tf.data.Options()
    options.deterministic = deterministic
    if threads:
        options.threading.private_threadpool_size = int(threads)
    return dataset.with_options(options)


def dataset_for(datapath, family, split, preprocessing=None, pixels=512, batch_size=8, training=None, **kwargs):
    """make_dataset over <datapath>/<family>/<split>.tfrecords*, ignore label from dataset.json."""
    split = families.canonical_split(split)
    training = (split == "training") if training is None else training
    info = load_dataset_info(datapath, family)
    return make_dataset(dataset_files(datapath, family, split), preprocessing, pixels, batch_size,
                        ignore_label=info["ignore_label"], training=training, **kwargs)


# --- one graph, several datasets ---------------------------------------------
class FeedableIterator:
    """`next_batch` reads from whichever dataset's string handle is fed to `handle`.

        feed = make_feedable_iterator(train, val[, full_val])
        train_h, val_h = feed.start(sess)[:2]                  # inits all, returns their handles
        sess.run(train_op, {feed.handle: train_h})
        sess.run(feed.val_iterator.initializer)                # rewind validation
        sess.run(metrics, {feed.handle: val_h})                # until OutOfRangeError
    """

    def __init__(self, handle, next_batch, iterators):
        self.handle, self.next_batch, self.iterators = handle, next_batch, list(iterators)
        self.string_handles = [iterator.string_handle() for iterator in self.iterators]

    @property
    def train_iterator(self):
        return self.iterators[0]

    @property
    def val_iterator(self):
        return self.iterators[1]

    def start(self, sess):
        sess.run([iterator.initializer for iterator in self.iterators])
        return tuple(sess.run(self.string_handles))


def _merge_shapes(first, second):
    """Most specific shape both are compatible with (dims that differ become None)."""
    if first.ndims != second.ndims:
        raise ValueError("rank differs: %s vs %s" % (first, second))
    return tf.TensorShape([a if a == b else None for a, b in zip(first.as_list(), second.as_list())])


def make_feedable_iterator(*datasets, name="dataset_handle"):
    """One iterator whose batches come from any of `datasets` (train first, then validation sets)."""
    types = tf.data.get_output_types(datasets[0])
    for other in datasets[1:]:
        if tf.data.get_output_types(other) != types:
            raise ValueError("train and val datasets differ in keys/dtypes: %s vs %s"
                             % (types, tf.data.get_output_types(other)))
    shapes = dict(tf.data.get_output_shapes(datasets[0]))
    for other in datasets[1:]:
        other_shapes = tf.data.get_output_shapes(other)
        shapes = {key: _merge_shapes(shapes[key], other_shapes[key]) for key in shapes}
    handle = tf.placeholder(tf.string, shape=[], name=name)
    iterator = tf.data.Iterator.from_string_handle(handle, types, shapes)
    return FeedableIterator(handle, iterator.get_next(),
                            [tf.data.make_initializable_iterator(dataset) for dataset in datasets])

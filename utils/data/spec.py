"""DataSpec: which converted dataset a run reads and how it is fed, with the dataset's own facts.

The command-line settings (`--dataset_family`, `--datapath`, `--pixels`,
`--augment`, `--total_train_images`, `--val_split`) are declared here, next
to the pipeline that uses them; `resolve` fills in what dataset.json knows
(class names, palette, ignore label, image counts, which sequences the
converter held out and which validation sequences training holds too), so a
run folder's runargs describes its data completely even after the records
have moved.
"""
import dataclasses
import os
from typing import Optional

from utils.data import families, sequences
from utils.data.dataset_info import DamagedData, dataset_files, load_dataset_info
from utils.data.records import count_records
from utils.flags import setting


@dataclasses.dataclass(frozen=True)
class DataSpec:
    dataset_family: str = setting("camvid", "dataset family", choices=families.NAMES, group="data")
    datapath: str = setting("/data", "root of <dataset_family>/training.tfrecords", group="data")
    pixels: int = setting(512, "larger image side scaled to this, padded square; 0 = native size", group="data")
    augment: bool = setting(True, "training augmentation: random stretch and crop, flip and colour jitter as set "
                                  "below", group="data")
    scale_range: str = setting("0.75,1.25", "augmentation: random per-axis stretch factors LOW,HIGH", group="data")
    flip: bool = setting(True, "augmentation: random horizontal flip", group="data")
    color_jitter: float = setting(0.0, "augmentation: colour jitter strength s: brightness, contrast and "
                                       "saturation factors in [1-s, 1+s], hue shift in [-s/4, s/4]; 0 = off",
                                  group="data")
    crop: int = setting(0, "augmentation: training windows of CxC pixels cut from the frame scaled to --pixels "
                           "(e.g. --pixels 480 --crop 256: native-resolution patches of CamVid at the compute "
                           "of --pixels 256); 0 = the --pixels square", group="data")
    total_train_images: Optional[int] = setting(None, "training images per epoch (default: the dataset's)",
                                                group="data")
    val_split: str = setting("validation", "the split the quarter-val monitor and --keep_best score: validation, "
                                           "or holdout (the training sequences utils/tfrecordify.py "
                                           "--holdout_sequence set aside: recordings training never sees)",
                             choices=("validation", families.HOLDOUT), group="data")
    # The dataset's facts (dataset.json), filled in by resolve(): never flags.
    num_val_images: Optional[int] = setting(None, "validation images", on_command_line=False)
    ignore_label: Optional[int] = setting(None, "label value that carries no loss", on_command_line=False)
    class_names: Optional[tuple] = setting(None, "class names, by label value", on_command_line=False)
    palette: Optional[tuple] = setting(None, "RGB colour per class", on_command_line=False)
    holdout_sequences: Optional[tuple] = setting(None, "training sequences the converter held out (dataset.json)",
                                                 on_command_line=False)
    training_sequences: Optional[dict] = setting(None, "{sequence: images} the run trains on; None: unknown",
                                                 on_command_line=False)
    val_training_sequences: Optional[dict] = setting(None, "{sequence: images} of --val_split that training holds "
                                                           "too; None: sequences unknown", on_command_line=False)

    def __post_init__(self):
        self.scale_bounds  # validates --scale_range
        if not 0 <= self.color_jitter <= 1:
            raise ValueError("--color_jitter must be in [0, 1], got %r" % self.color_jitter)
        if self.crop is None or self.crop < 0:
            raise ValueError("--crop must be >= 0 (0 = the --pixels square), got %r" % self.crop)
        if self.pixels is not None and self.pixels < 0:
            raise ValueError("--pixels must be >= 0 (0 = native size), got %r" % self.pixels)
        for name in ("class_names", "palette", "holdout_sequences"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v for v in value))

    @property
    def scale_bounds(self):
        """(low, high) of --scale_range."""
        try:
            low, high = (float(v) for v in str(self.scale_range).split(","))
        except ValueError:
            raise ValueError("--scale_range %r: expected LOW,HIGH, e.g. 0.75,1.25" % (self.scale_range,)) from None
        if not 0 < low <= high:
            raise ValueError("--scale_range %s: need 0 < LOW <= HIGH" % (self.scale_range,))
        return low, high

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["class_names"] = list(self.class_names) if self.class_names is not None else None
        values["palette"] = [list(c) for c in self.palette] if self.palette is not None else None
        values["holdout_sequences"] = list(self.holdout_sequences) if self.holdout_sequences is not None else None
        return values

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def resolve(spec):
    """(spec with the dataset's facts filled in, the dataset's number of classes).

    A missing split raises FileNotFoundError whose message is the command that makes it.
    """
    training = dataset_files(spec.datapath, spec.dataset_family, "training")
    validation = dataset_files(spec.datapath, spec.dataset_family, spec.val_split)
    for path in training + validation:
        if os.path.getsize(path) == 0:
            raise DamagedData("%s is empty: convert the dataset again with utils/tfrecordify.py" % path)
    info = load_dataset_info(spec.datapath, spec.dataset_family)
    splits = info.get("splits", {})
    resolved = dataclasses.replace(
        spec,
        total_train_images=spec.total_train_images or info.get("total_train_images") or count_records(training),
        num_val_images=splits.get(spec.val_split, {}).get("records") or count_records(validation),
        ignore_label=info["ignore_label"], class_names=info["class_names"], palette=info["palette"],
        holdout_sequences=info.get("holdout_sequences"),
        training_sequences=sequences.split_sequences(info, "training"),
        val_training_sequences=sequences.shared_with_training(info, spec.val_split))
    return resolved, info["num_classes"]

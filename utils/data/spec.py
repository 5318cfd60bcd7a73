"""DataSpec: which converted dataset a run reads and how it is fed, with the dataset's own facts.

The command-line settings (`--dataset_family`, `--datapath`, `--pixels`,
`--augment`, `--total_train_images`) are declared here, next to the
pipeline that uses them; `resolve` fills in what dataset.json knows (class
names, palette, ignore label, image counts), so a run folder's runargs
describes its data completely even after the records have moved.
"""
import dataclasses
from typing import Optional

from utils.data import families
from utils.data.dataset_info import dataset_files, load_dataset_info
from utils.data.records import count_records
from utils.flags import setting


@dataclasses.dataclass(frozen=True)
class DataSpec:
    dataset_family: str = setting("camvid", "dataset family", choices=families.NAMES, group="data")
    datapath: str = setting("/data", "root of <dataset_family>/training.tfrecords", group="data")
    pixels: int = setting(512, "larger image side scaled to this, padded square; 0 = native size", group="data")
    augment: bool = setting(True, "random flip, stretch and crop in training", group="data")
    total_train_images: Optional[int] = setting(None, "training images per epoch (default: the dataset's)",
                                                group="data")
    # The dataset's facts (dataset.json), filled in by resolve(): never flags.
    num_val_images: Optional[int] = setting(None, "validation images", on_command_line=False)
    ignore_label: Optional[int] = setting(None, "label value that carries no loss", on_command_line=False)
    class_names: Optional[tuple] = setting(None, "class names, by label value", on_command_line=False)
    palette: Optional[tuple] = setting(None, "RGB colour per class", on_command_line=False)

    def __post_init__(self):
        for name in ("class_names", "palette"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v for v in value))

    def to_dict(self):
        values = dataclasses.asdict(self)
        values["class_names"] = list(self.class_names) if self.class_names is not None else None
        values["palette"] = [list(c) for c in self.palette] if self.palette is not None else None
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
    validation = dataset_files(spec.datapath, spec.dataset_family, "validation")
    info = load_dataset_info(spec.datapath, spec.dataset_family)
    splits = info.get("splits", {})
    resolved = dataclasses.replace(
        spec,
        total_train_images=spec.total_train_images or info.get("total_train_images") or count_records(training),
        num_val_images=splits.get("validation", {}).get("records") or count_records(validation),
        ignore_label=info["ignore_label"], class_names=info["class_names"], palette=info["palette"])
    return resolved, info["num_classes"]

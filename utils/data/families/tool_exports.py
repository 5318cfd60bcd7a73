"""What the labelling-tool families (coco_json, labelme, cvat_mask) share: subset names -> splits.

Tools export subsets under names their users chose: COCO's train2017/val2017, CVAT's 'default' or
'Train'/'Validation', Roboflow's train/valid/test, a LabelMe folder per batch.  A subset whose name says
train, val (valid, validation) or test - any case, a trailing year or number allowed - is that split.
The others are pooled and, when no subset names a split, a seeded --val_fraction of the pool is held
out for validation (the rest is training); a mix of both kinds is refused, since nothing says where
the unnamed subsets belong.
"""
import re

from utils.data.families.base import DatasetError, holdout_split

SUBSET_SPLITS = {"train": "training", "training": "training", "val": "validation", "valid": "validation",
                 "validation": "validation", "test": "test", "testing": "test"}
SUBSET_PATTERN = re.compile(r"^(?P<word>[a-z]+)[-_]?\d*$")


def split_of_subset(subset):
    """'train2017' -> 'training', 'Validation' -> 'validation', 'default' -> None."""
    match = SUBSET_PATTERN.match(subset.lower())
    return SUBSET_SPLITS.get(match.group("word")) if match else None


def add_holdout_arguments(parser):
    parser.add_argument("--val_fraction", type=float, default=0.1,
                        help="held-out validation fraction when no subset is named train/val/test")
    parser.add_argument("--split_seed", type=int, default=0, help="seed of the held-out choice")


def assign_splits(subsets, val_fraction, seed, where):
    """{subset: {example name: item}} -> {split: [items in name order]}; `where` names the source in errors."""
    named, pooled, unnamed = {}, {}, []
    for subset in sorted(subsets):
        split = split_of_subset(subset)
        if split is None:
            unnamed.append(subset or "(top level)")
            pooled.update(subsets[subset])
        else:
            named.setdefault(split, {}).update(subsets[subset])
    if named and unnamed:
        raise DatasetError("%s: subsets %s are not named train, val or test while %s are; name each subset after "
                           "its split, or none of them" % (where, ", ".join(unnamed), ", ".join(
                               s for s in sorted(subsets) if split_of_subset(s))))
    if named:
        return {split: [items[name] for name in sorted(items)] for split, items in named.items()}
    training, validation = holdout_split(list(pooled), val_fraction, seed)
    splits = {"training": [pooled[name] for name in training]}
    if val_fraction > 0:  # kept when empty: the converter names a held-out split too small to hold one example
        splits["validation"] = [pooled[name] for name in validation]
    return splits

"""Which recordings a split's images come from, and what that says about a score: sequence-aware validation.

Frames of one drive (a CamVid sequence, a Cityscapes city, a user's recording)
are near-copies of each other, so a validation image from a drive training saw
scores like a training image, not like a new scene.  The converter records
each image's sequence (record feature image/sequence) and counts them per
split in dataset.json (splits.<split>.sequences); here:

    hold_out(planned, ["0006R0"])          whole training sequences moved into their own split, 'holdout'
    shared_with_training(info, split)      {sequence: images} of a split that training holds too (train.py's warning)
    contamination(sequences, training, split)  results.json's `sequences`: how many scored images training saw
    describe(report)                       its line: "validation: 101 of 101 images from 0016E5, a training ..."
    overlap_warning(split, shared, images) train.py's warning at the start of a run validating on such a split

A held-out split is chosen by name, never at random: the same names give the
same frames on every machine, and dataset.json's holdout_sequences (copied
into each run's runargs) says which ones.
"""
import collections

from utils.data.families.base import HOLDOUT, DatasetError, EmptySplitError

TRAINING = "training"


class UnknownSequenceError(DatasetError):
    """--holdout_sequence names a sequence the training split does not hold."""


def parse_names(text):
    """'0006R0, 0016E5' -> ['0006R0', '0016E5'] (order kept, repeats dropped); [] for None or ''."""
    names = [part.strip() for part in str(text or "").split(",") if part.strip()]
    return list(dict.fromkeys(names))


def counts(sequences):
    """{sequence: images} of an iterable of per-image sequences (None: unknown, not counted), sorted by name."""
    return dict(sorted(collections.Counter(s for s in sequences if s is not None).items()))


def _listing(by_sequence):
    return ", ".join("%s (%d)" % item for item in by_sequence.items())


def hold_out(family_name, planned, names):
    """planned {split: [Example]} with the training examples of sequences `names` moved to a new 'holdout' split.

    A name that is not a training sequence is refused listing the known ones; holding out every training
    sequence is refused too (nothing would be left to train on).
    """
    training = planned.get(TRAINING)
    if training is None:
        raise ValueError("--holdout_sequence moves training sequences: convert the training split too")
    known = counts(example.sequence for example in training)
    if not known:
        raise UnknownSequenceError("--holdout_sequence %s: %s's training images have no sequence (a folder "
                                   "dataset names them with groups.txt or --group_pattern)"
                                   % (",".join(names), family_name))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UnknownSequenceError("--holdout_sequence: %s %s of %s; training sequences (images): %s"
                                   % (", ".join(unknown), "is not a training sequence" if len(unknown) == 1
                                      else "are not training sequences", family_name, _listing(known)))
    kept = [example for example in training if example.sequence not in names]
    if not kept:
        raise EmptySplitError("--holdout_sequence %s would leave no training images: hold out fewer of %s"
                              % (",".join(names), _listing(known)))
    moved = collections.OrderedDict(planned)
    moved[TRAINING] = kept
    moved[HOLDOUT] = [example for example in training if example.sequence in names]
    return moved


def split_sequences(info, split):
    """{sequence: images} dataset.json records for a split; None when it records none (no sequences known)."""
    entry = (info or {}).get("splits", {}).get(split) or {}
    return entry.get("sequences") or None


def shared_with_training(info, split):
    """{sequence: images of `split`} for the sequences training holds as well; None when either is unknown."""
    training, scored = split_sequences(info, TRAINING), split_sequences(info, split)
    if training is None or scored is None:
        return None
    return {name: images for name, images in scored.items() if name in training}


def contamination(sequences, training, split):
    """What results.json says about the scored images' sequences, or None where that cannot be said (the
    training split itself, records or a run without sequences).

    sequences: each scored image's sequence (None where unknown), in scoring order; training: {sequence:
    images} the run trained on (its runargs; dataset.json's training split for runs from before).
    """
    scored = counts(sequences)
    if split == TRAINING or training is None or not scored:
        return None
    shared = {name: images for name, images in scored.items() if name in training}
    return {"split": split, "num_images": len(sequences), "per_sequence": scored,
            "unknown_images": sum(s is None for s in sequences), "training_sequences": sorted(training),
            "shared": shared, "shared_images": sum(shared.values()), "optimistic": bool(shared)}


def _names(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def describe(report):
    """One line for test.py's printout and the study: how many scored images come from training sequences."""
    shared, scored = report["shared"], report["per_sequence"]
    new = [name for name in scored if name not in shared]
    if not shared:
        return ("%s: none of its %d images comes from a training sequence (%s %s new): it measures new scenes"
                % (report["split"], report["num_images"], _names(new), "is" if len(new) == 1 else "are"))
    text = ("%s: %d of %d images from %s, %s: this score is optimistic for new scenes"
            % (report["split"], report["shared_images"], report["num_images"], _names(list(shared)),
               "a training sequence" if len(shared) == 1 else "training sequences"))
    if new:
        text += "; the other %d from %s, which training did not see" % (sum(scored[n] for n in new), _names(new))
    return text


def overlap_warning(split, shared, images):
    """train.py's one warning when the split it validates on shares sequences with training; None if not."""
    if not shared:
        return None
    return ("warning: %d of the %d %s images come from %s, which training holds too: the monitor's mIoU is "
            "optimistic for new scenes (utils/tfrecordify.py --holdout_sequence NAME and train.py --val_split "
            "holdout validate on recordings training never sees)"
            % (sum(shared.values()), images, split, _names(sorted(shared))))

"""Dataset family registry: name -> family class.

    from utils.data import families
    family_class = families.get("camvid")             # metadata: class_names, palette, ...
    family = families.create("camvid", datapath="/data", camvid_path="...")  # + source paths

An unknown name raises UnknownDatasetError listing the valid names.
"""
from utils.data.families.base import (HOLDOUT, SPLITS, DatasetError, DatasetFamily, EmptySplitError,  # noqa: F401
                                      Example, LabelValueError, MissingLabelsError, SizeMismatchError,
                                      SplitTooSmallError, UnreadableFileError, canonical_split)
from utils.data.families.ade20k import Ade20k
from utils.data.families.camvid import CamVid
from utils.data.families.cityscapes import Cityscapes
from utils.data.families.coco_json import CocoJson
from utils.data.families.coco_stuff import CocoStuff
from utils.data.families.cvat_mask import CvatMask
from utils.data.families.folder import Folder
from utils.data.families.kitti_road import KittiRoad
from utils.data.families.labelme import LabelMe
from utils.data.families.pascal_seg import PascalSeg

FAMILIES = {cls.name: cls for cls in (CamVid, PascalSeg, Cityscapes, KittiRoad, CocoStuff, Ade20k, Folder,
                                      CocoJson, LabelMe, CvatMask)}
NAMES = tuple(FAMILIES)


class UnknownDatasetError(ValueError):
    pass


def get(name):
    """The family class registered as `name` (class attributes hold its metadata)."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnknownDatasetError("unknown dataset family %r; valid names: %s"
                                  % (name, ", ".join(NAMES))) from None


def create(name, datapath="/data", **options):
    """A family instance bound to its source files (options = converter CLI arguments)."""
    return get(name)(datapath=datapath, **options)

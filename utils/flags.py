"""Command-line helpers shared by train.py, test.py, arch.py and the benchmarks.

seg-mentor documents boolean flags as `--fcn16=True`; modern CLIs use `--fcn16` /
`--no-fcn16`.  Both forms work here, and a value that is not a boolean is an
error instead of silently counting as True (argparse's `type=bool` trap).
"""
import argparse

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


def str2bool(value):
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError("expected a boolean (True/False, yes/no, 1/0), got %r" % value)


def add_bool_flag(parser, name, default, help):
    """--name, --name=True/False, --name False and --no-name all work."""
    dest = name.replace("-", "_")
    parser.add_argument("--" + name, dest=dest, nargs="?", const=True, default=default,
                        type=str2bool, metavar="BOOL", help="%s (default: %s)" % (help, default))
    parser.add_argument("--no-" + name, dest=dest, action="store_false", help=argparse.SUPPRESS)


def add_gpu_flag(parser):
    """seg-mentor's `--g 0` / `--gpu 0`: which GPU(s) to use; none present means CPU."""
    parser.add_argument("-g", "--gpu", "--g", dest="gpu", default=None,
                        help="GPU index or comma list (sets CUDA_VISIBLE_DEVICES); no GPU means CPU")


def apply_gpu_flag_early(argv=None):
    """Read only --gpu from the command line and apply it, before TensorFlow (or argparse help) is loaded."""
    early = argparse.ArgumentParser(add_help=False)
    add_gpu_flag(early)
    apply_gpu_flag(early.parse_known_args(argv)[0].gpu)


def apply_gpu_flag(gpu):
    """Must run before TensorFlow is imported: that is when CUDA devices are enumerated."""
    import os
    if gpu is not None and str(gpu).strip() != "":
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)

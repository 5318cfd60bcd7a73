"""Command-line flags, generated from where each setting is declared.

A setting is a dataclass field declared once, next to the code that uses it
(`arch.ModelSpec`, a decoder's `Options`, `utils.training.config.TrainSettings`,
`utils.data.spec.DataSpec`), with `setting(default, help, ...)`.  Every
script that takes it (train.py, test.py, arch.py, bench/) generates its flag
from that declaration with `add_setting_flags`, so a new setting is written
in one place and reaches every command line.

seg-mentor documents boolean flags as `--fcn16=True`; modern CLIs use `--fcn16` /
`--no-fcn16`.  Both forms work here, and a value that is not a boolean is an
error instead of silently counting as True (argparse's `type=bool` trap).
"""
import argparse
import dataclasses
import os
import typing

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}
SETTING = "segmentor_setting"   # dataclass field metadata key


def str2bool(value):
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError("expected a boolean (True/False, yes/no, 1/0), got %r" % value)


def add_bool_flag(parser, name, default, help, dest=None, aliases=(), show_default=True):
    """--name, --name=True/False, --name False and --no-name all work (and the same for each alias)."""
    dest = dest or name.replace("-", "_")
    names = (name,) + tuple(aliases)
    text = "%s (default: %s)" % (help, default) if show_default else help
    parser.add_argument(*["--" + n for n in names], dest=dest, nargs="?", const=True, default=default,
                        type=str2bool, metavar="BOOL", help=text)
    parser.add_argument(*["--no-" + n for n in names], dest=dest, action="store_false", help=argparse.SUPPRESS)


def add_gpu_flag(parser):
    """seg-mentor's `--g 0` / `--gpu 0`: which GPU(s) to use; none present means CPU."""
    parser.add_argument("-g", "--gpu", "--g", dest="gpu", default=None,
                        help="GPU index or comma list (sets CUDA_VISIBLE_DEVICES); no GPU means CPU")


def apply_gpu_flag_early(argv=None):
    """Read only --gpu from the command line and apply it, before any TensorFlow session exists."""
    early = argparse.ArgumentParser(add_help=False)
    add_gpu_flag(early)
    apply_gpu_flag(early.parse_known_args(argv)[0].gpu)


def apply_gpu_flag(gpu):
    """Must run before the first session or device query: TensorFlow enumerates CUDA devices then (lazily,
    not at import), and CUDA reads CUDA_VISIBLE_DEVICES once."""
    if gpu is not None and str(gpu).strip() != "":
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)


# ----------------------------------------------------------------------------- declared settings
@dataclasses.dataclass(frozen=True)
class Setting:
    """How a declared setting appears on the command line."""
    help: str
    flag: str = None            # flag name when it differs from the field name (e.g. seg-mentor's --basenet)
    aliases: tuple = ()         # more names for the same flag (e.g. --encoder)
    choices: tuple = None
    group: str = None           # argparse group title; None: the caller's
    on_command_line: bool = True  # False: resolved by the program, recorded in runargs, never a flag


def setting(default, help, *, flag=None, aliases=(), choices=None, group=None, on_command_line=True):
    """A dataclass field that is also a command-line flag `--<flag or field name>`."""
    return dataclasses.field(default=default, metadata={SETTING: Setting(
        help, flag, tuple(aliases), tuple(choices) if choices is not None else None, group, on_command_line)})


def declared(cls):
    """[(field, Setting, python type)] of a settings dataclass, in declaration order (a list of such
    triples passes through: options merged from several classes)."""
    if isinstance(cls, list):
        return cls
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        meta = field.metadata.get(SETTING)
        if meta is not None:
            found.append((field, meta, _base_type(hints[field.name])))
    return found


def _base_type(hint):
    """bool / int / float / str from an annotation (Optional[X] -> X)."""
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    return hint if hint in (bool, int, float, str) else str


def flag_names(field, meta):
    return (meta.flag or field.name,) + meta.aliases


def add_setting_flags(parser, cls, *, defaults=None, unset=False, groups=None, extra_aliases=None, only=None,
                      help_suffix=None):
    """One flag per command-line setting of dataclass `cls`, typed from its annotation.

    defaults: {field: value} overriding the declared defaults for this command.
    unset: every flag defaults to None, so the caller can tell what was given (decoder options: their
    defaults depend on the chosen decoder).  groups: {title: argparse group} reused across calls.
    extra_aliases: {field: (name, ...)} this command also accepts.  only: field names to add.
    help_suffix: {field: text} appended to the help (e.g. which decoders take the option).
    """
    groups = {} if groups is None else groups
    for field, meta, kind in declared(cls):
        if not meta.on_command_line or (only is not None and field.name not in only):
            continue
        target = parser
        if meta.group:
            if meta.group not in groups:
                groups[meta.group] = parser.add_argument_group(meta.group)
            target = groups[meta.group]
        default = (defaults or {}).get(field.name, field.default)
        names = flag_names(field, meta) + tuple((extra_aliases or {}).get(field.name, ()))
        text = meta.help + ((help_suffix or {}).get(field.name) or "")
        if unset:
            text += "" if (help_suffix or {}).get(field.name) else " (default: %s)" % default
            default = None
        elif kind is not bool and "(default:" not in text:
            text += " (default: %s)" % default
        if kind is bool:
            add_bool_flag(target, names[0], default, text, dest=field.name, aliases=names[1:],
                          show_default=not unset)
        else:
            target.add_argument(*["--" + n for n in names], dest=field.name, type=kind, default=default,
                                choices=meta.choices, help=text)
    return groups


def settings_from_args(args, cls, given_only=False, only=None):
    """{field: value} of `cls`'s command-line settings found in an argparse namespace.

    given_only: leave out the ones left at None (flags added with unset=True that were not given).
    """
    values = {}
    for field, meta, _ in declared(cls):
        if not meta.on_command_line or (only is not None and field.name not in only) or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if given_only and value is None:
            continue
        values[field.name] = value
    return values

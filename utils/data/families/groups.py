"""Which recording (group) each image of a plain-folder dataset comes from: groups.txt or a file-name pattern.

    <folder_path>/groups.txt     '<image file name or stem> <group>' per line (# comments, blank lines ok)
    --group_pattern REGEX        searched in the file stem; its first group (or the whole match) is the group,
                                 e.g. '^([^_]+)_' for 'drive3_000120.png' -> 'drive3'

The group becomes the record's image/sequence, so test.py can say how many
scored images come from a recording training saw, and --holdout_sequence
can set whole recordings aside.  An image neither names has no group.
"""
import os
import re

from utils.data.families.base import DatasetError, text_lines

GROUPS_FILE = "groups.txt"


def read_groups(path):
    """groups.txt -> {image stem: group}; {} when there is no such file."""
    if not os.path.isfile(path):
        return {}
    groups = {}
    for number, line in text_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError("%s:%d: expected '<image> <group>', got %r" % (path, number, line))
        groups[os.path.splitext(parts[0])[0]] = parts[1]
    return groups


def compile_pattern(pattern):
    """--group_pattern as a compiled regex (None when not given); a bad one is a DatasetError naming it."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as error:
        raise DatasetError("--group_pattern %r is not a regular expression (%s)" % (pattern, error)) from None


class Grouping:
    """The group of an image stem, from groups.txt or --group_pattern (one source: giving both is refused)."""

    def __init__(self, folder, pattern=None):
        self.path = os.path.join(folder, GROUPS_FILE)
        self.groups = read_groups(self.path)
        self.pattern = compile_pattern(pattern)
        if self.groups and self.pattern is not None:
            raise DatasetError("%s and --group_pattern both name the images' groups: keep one" % self.path)

    def of(self, image_stem):
        if self.pattern is None:
            return self.groups.get(image_stem)
        match = self.pattern.search(image_stem)
        if match is None:
            return None
        return match.group(1) if self.pattern.groups else match.group(0)

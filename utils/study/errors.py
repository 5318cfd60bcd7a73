"""The study's one error type, and the "did you mean" hint every misspelt key gets."""
import difflib


class StudyError(ValueError):
    """A study that cannot run as written: study.py prints it in one line and exits 2."""


def did_you_mean(word, choices):
    """"; did you mean X?" for the closest of `choices`, "" when none is close (a typo, not another word)."""
    close = difflib.get_close_matches(str(word).lstrip("-"), [str(c) for c in choices], n=1, cutoff=0.6)
    return "; did you mean %s?" % close[0] if close else ""

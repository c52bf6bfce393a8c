"""Name keys for spotting near-duplicate contacts.

Two names with the same key differ only in case, accents, punctuation, spacing, a legal suffix
("Ltd", "Limited", "PLC", "Co."...), "&" against "and", or a leading "The". Exact matching
never uses the key: it only flags a created partner as a possible duplicate.
"""

import re

from cleanco import basename
from unidecode import unidecode

_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)


def exact_name(name):
    """The form used for exact matching: surrounding whitespace ignored, nothing else."""
    return (name or "").strip()


def name_key(name):
    """Return the near-match key of ``name`` ('' when nothing is left)."""
    text = unidecode(name or "").lower()
    text = text.replace("&", " and ").replace("+", " and ")
    text = " ".join(_PUNCTUATION.sub("", text).split())
    previous = None
    while text and text != previous:
        previous = text
        text = basename(text).strip()
    tokens = text.split()
    if len(tokens) > 1 and tokens[0] == "the":
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1] == "and":
        tokens = tokens[:-1]
    return "".join(tokens)

"""Group keys and the deterministic train / valid / test / test_unseen split.

Files that must not be spread over splits share a *group key*: a fillets-ng level (all its
dialogue, in every language), a Frets on Fire song folder (its stems), and otherwise the
package path without extension and without a trailing number, so numbered variants
(``hit1.ogg``, ``hit2.ogg``, ``foley-01.wv``) stay together.  Keys start with the package name
(fillets levels with ``fillets-ng``), so packages never share a group by accident.

The split of a group is ``int(sha1(key)) % 100``: below 5 test, below 10 valid, else train
(90/5/5 by groups, not files).  Held-out packages go to ``test_unseen`` whole.  Nothing depends
on the order of files, on the machine or on other files, so a re-run gives the same split.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

from .packages import Package

SPLITS = ("train", "valid", "test", "test_unseen")
TEST_PERCENT = 5
VALID_PERCENT = 5

_TRAILING_NUMBER = re.compile(r"[\s_\-.]*\d+$")


def strip_number(text: str) -> str:
    """``text`` without a trailing number and the separator before it (``hit_02`` -> ``hit``)."""
    return _TRAILING_NUMBER.sub("", text)


def group_key(pkg: Package, pkg_path: str) -> str:
    """The group key of the file at ``pkg_path`` of ``pkg`` (see the module docstring)."""
    for rule in pkg.group_rules:
        m = re.search(rule.pattern, pkg_path)
        if m:
            return rule.template.format(pkg=pkg.name, m=m.group(1))
    stem, _ = posixpath.splitext(pkg_path)
    return f"{pkg.name}:{strip_number(stem)}"


def bucket(key: str) -> int:
    """``int(sha1(key)) % 100``: the key's percentile bucket, 0..99."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 100


def split_of(key: str, held_out: bool = False) -> str:
    """The split of group ``key``; ``test_unseen`` for every group of a held-out package."""
    if held_out:
        return "test_unseen"
    b = bucket(key)
    if b < TEST_PERCENT:
        return "test"
    if b < TEST_PERCENT + VALID_PERCENT:
        return "valid"
    return "train"

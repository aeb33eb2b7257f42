"""Phrase -> detector category: the shape word a grounded phrase names.

GLaMM's GCG answer grounds free-text phrases ("An orange circle", "the large
squares"); a detector trains on a closed class list. A phrase takes the class
whose name (or its plural, name + "s") occurs first in it as a whole word,
case-insensitively: the head noun of an English noun phrase comes before any
modifier clause ("the circle left of the square" -> circle). A phrase naming
no class ("an object") maps to None and gives no pseudo-label.
"""
import re
from typing import List, Optional, Sequence


def phrase_category(phrase: str, classes: Sequence[str]) -> Optional[int]:
    """Index in ``classes`` of the first class word in ``phrase``, or None.

    Args:
        phrase: one grounded phrase of a GCG answer.
        classes: the detector's class names (``dataset_meta['classes']``).

    Raises:
        ValueError: ``classes`` is empty or has an empty name.
    """
    if not classes or not all(isinstance(c, str) and c.strip()
                              for c in classes):
        raise ValueError(f'phrase_category: bad class list {classes!r}')
    best = None
    for k, name in enumerate(classes):
        pattern = r'\b' + re.escape(name.strip().lower()) + r's?\b'
        hit = re.search(pattern, phrase.lower())
        if hit and (best is None or hit.start() < best[0]):
            best = (hit.start(), k)
    return None if best is None else best[1]


def phrase_categories(phrases: Sequence[str],
                      classes: Sequence[str]) -> List[Optional[int]]:
    """:func:`phrase_category` of every phrase, in order."""
    return [phrase_category(p, classes) for p in phrases]

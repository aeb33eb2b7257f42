"""Pseudo-labels from GLaMM GCG: COCO instances (detector training) and
ODVG grounding records, from one ``tools/test.py`` run."""
from .metrics import (GCGDumpODVGResults, PseudoLabelCocoMetric,
                      grounded_spans)
from .phrases import phrase_categories, phrase_category

__all__ = [
    'GCGDumpODVGResults', 'PseudoLabelCocoMetric', 'grounded_spans',
    'phrase_categories', 'phrase_category'
]

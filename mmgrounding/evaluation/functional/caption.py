"""METEOR and CIDEr exactly as pycocoevalcap's ``COCOEvalCap`` computes them.

GCG and region captioning report METEOR and CIDEr from ``COCOEvalCap``:
PTB-tokenise references and hypotheses separately (Stanford CoreNLP
``PTBTokenizer -preserveLines -lowerCase``, punctuation tokens dropped), then
score. The scorers are independent, so running only ``Meteor`` and ``Cider``
on the same tokenised inputs gives the same numbers without SPICE (which
needs downloaded CoreNLP models).

* METEOR: the ``meteor-1.5.jar`` corpus-level ``EVAL`` aggregate (not the
  mean of the per-image scores). The Java process is started once per Python
  process and reused (:func:`get_meteor`).
* CIDEr: CIDEr-D (n=4, sigma=6, x10); document frequencies come from the
  references of the evaluated set, so the score depends on the whole set.
"""
import threading
from typing import Dict, List, Sequence, Tuple

from mmengine.logging import print_log

_METEOR = None
_METEOR_LOCK = threading.Lock()

CAPTION_METRICS = ('METEOR', 'CIDEr')


def get_meteor():
    """Return the process-wide pycocoevalcap ``Meteor`` (Java started once).

    A dead Java process (e.g. killed) is replaced by a new one.
    """
    global _METEOR
    with _METEOR_LOCK:
        if _METEOR is None or _METEOR.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor
            _METEOR = Meteor()
        return _METEOR


def ptb_tokenize(
        captions: Dict[object, Sequence[str]]) -> Dict[object, List[str]]:
    """PTB-tokenise ``{key: [caption, ...]}`` with pycocoevalcap (Java)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    return PTBTokenizer().tokenize(
        {k: [dict(caption=c) for c in v]
         for k, v in captions.items()})


def score_captions(
    references: Dict[object, Sequence[str]],
    hypotheses: Dict[object, str],
    metrics: Sequence[str] = CAPTION_METRICS,
) -> Tuple[Dict[str, float], Dict[str, List[float]]]:
    """Score one hypothesis per key against its references.

    Args:
        references: ``{key: [ref caption, ...]}`` (at least one each).
        hypotheses: ``{key: caption}``, same keys as ``references``.
        metrics: subset of ``('METEOR', 'CIDEr')``.

    Returns:
        tuple: corpus scores ``{metric: float}`` (raw scale: METEOR in
        [0, 1], CIDEr in [0, 10]) and per-key scores ``{metric: [...]}`` in
        ``references`` key order.
    """
    unknown = set(metrics) - set(CAPTION_METRICS)
    if unknown:
        raise ValueError(f'Unknown caption metrics {sorted(unknown)}; '
                         f'supported: {CAPTION_METRICS}')
    if set(references) != set(hypotheses):
        missing = set(references) ^ set(hypotheses)
        raise ValueError('references and hypotheses must have the same '
                         f'keys; differing: {sorted(map(str, missing))[:5]}')
    empty = [k for k, v in references.items() if len(v) == 0]
    if empty:
        raise ValueError(f'No reference caption for {empty[:5]}')
    if not references:
        return {m: 0.0 for m in metrics}, {m: [] for m in metrics}
    # String keys keep the tokenizer's temp file and the scorers' dict order
    # independent of the caller's id type.
    keys = list(references)
    index = {k: str(i) for i, k in enumerate(keys)}
    gts = ptb_tokenize({index[k]: list(references[k]) for k in keys})
    res = ptb_tokenize({index[k]: [hypotheses[k]] for k in keys})
    corpus: Dict[str, float] = {}
    per_key: Dict[str, List[float]] = {}
    if 'METEOR' in metrics:
        score, scores = get_meteor().compute_score(gts, res)
        corpus['METEOR'] = float(score)
        per_key['METEOR'] = [float(s) for s in scores]
    if 'CIDEr' in metrics:
        from pycocoevalcap.cider.cider import Cider
        score, scores = Cider().compute_score(gts, res)
        corpus['CIDEr'] = float(score)
        per_key['CIDEr'] = [float(s) for s in scores]
    print_log(
        f'caption scores over {len(keys)} items: ' +
        ', '.join(f'{k}={v:.4f}' for k, v in corpus.items()),
        logger='current')
    return corpus, per_key

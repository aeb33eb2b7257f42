"""Helpers of the evaluation tests: a controllable text encoder, masks."""
import numpy as np


class TableEncoder:
    """Text encoder with hand-set vectors: similarity is fully controlled.

    Strings listed in ``groups`` share one unit vector per group; any other
    string gets its own orthogonal unit vector (cosine 0 with everything
    else, 1 with itself).
    """
    name = 'table-encoder'

    def __init__(self, groups=()):
        self.groups = [set(g) for g in groups]
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        keys = []
        for t in texts:
            group = next((i for i, g in enumerate(self.groups) if t in g),
                         None)
            keys.append(('g', group) if group is not None else ('s', t))
        vocab = sorted(set(keys), key=str)
        out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i, vocab.index(k)] = 1.0
        return out


def box_mask(h, w, y0, x0, y1, x1):
    """Bool mask [h, w] that is True on rows y0:y1 and columns x0:x1."""
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


"""Streaming, byte-deterministic writers for JSON and pickle annotation files.

The world may hold 100k images, so no writer keeps its records in memory:
JSON arrays are written item by item (arrays of a COCO-style object go to
side files that are concatenated on ``close``), and the RefCOCO refs pickle is
assembled from pickle opcodes one record at a time. JSON uses sorted keys and
compact separators; pickles use protocol 2 without memo, so equal records give
equal bytes.
"""
import glob
import io
import json
import os
import pickle
import shutil
from typing import Any, Dict, Iterable


def dumps(obj: Any) -> str:
    """Canonical JSON text: sorted keys, compact separators, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'),
                      ensure_ascii=True)


def dumps_keep_order(obj: dict, keep: Iterable[str]) -> str:
    """Like :func:`dumps`, but the dict values under the top-level keys
    ``keep`` list their own keys in insertion order (e.g. GranDf
    ``groundings``, whose phrases are listed in caption order)."""
    parts = []
    for key in sorted(obj):
        value = obj[key]
        if key in keep and isinstance(value, dict):
            text = '{' + ','.join(
                json.dumps(k, ensure_ascii=True) + ':' + dumps(v)
                for k, v in value.items()) + '}'
        else:
            text = dumps(value)
        parts.append(json.dumps(key) + ':' + text)
    return '{' + ','.join(parts) + '}'


class JsonArrayWriter:
    """Writes a JSON list to ``path`` one item at a time."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self._f = open(path, 'w', encoding='ascii', newline='\n')
        self._f.write('[')

    def add(self, item: Any, keep_order: Iterable[str] = ()) -> None:
        """Append ``item``; see :func:`dumps_keep_order` for ``keep_order``."""
        if self.count:
            self._f.write(',')
        self._f.write(dumps_keep_order(item, keep_order) if keep_order else dumps(item))
        self.count += 1

    def close(self) -> None:
        self._f.write(']')
        self._f.close()


class JsonObjectWriter:
    """Writes ``{key: [...], ..., static_key: value}`` with streamed arrays.

    Args:
        path: output file.
        array_keys: keys whose values are lists filled with :meth:`add`.
        static: keys whose (small) values are known up front.
    """

    def __init__(self, path: str, array_keys: Iterable[str],
                 static: Dict[str, Any] = None):
        self.path = path
        self.static = dict(static or {})
        self.counts = {k: 0 for k in array_keys}
        overlap = set(self.counts) & set(self.static)
        if overlap:
            raise ValueError(f'{path}: keys {sorted(overlap)} are both arrays and static')
        self._parts = {k: JsonArrayWriter(f'{path}.{k}.part') for k in self.counts}

    def add(self, key: str, item: Any) -> None:
        self._parts[key].add(item)
        self.counts[key] += 1

    def close(self) -> None:
        keys = sorted(set(self.counts) | set(self.static))
        with open(self.path, 'w', encoding='ascii', newline='\n') as out:
            out.write('{')
            for i, key in enumerate(keys):
                out.write((',' if i else '') + json.dumps(key) + ':')
                if key in self.static:
                    out.write(dumps(self.static[key]))
                else:
                    part = self._parts[key]
                    part.close()
                    with open(part.path, encoding='ascii') as f:
                        shutil.copyfileobj(f, out)
                    os.remove(part.path)
            out.write('}')


class PickleListWriter:
    """Writes a pickled ``list`` item by item (protocol 2, no memo).

    The stream is ``PROTO 2, EMPTY_LIST, (MARK item* APPENDS)*, STOP``; each
    item is pickled by a memo-less pickler so items never refer to each other.
    ``pickle.load`` returns the plain list.
    """

    BATCH = 1000

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self._f = open(path, 'wb')
        self._f.write(b'\x80\x02]')
        self._in_batch = 0

    @staticmethod
    def _body(item: Any) -> bytes:
        buf = io.BytesIO()
        p = pickle.Pickler(buf, protocol=2)
        p.fast = True  # no memo: every item is self-contained
        p.dump(item)
        data = buf.getvalue()
        assert data[:2] == b'\x80\x02' and data[-1:] == b'.'
        return data[2:-1]

    def add(self, item: Any) -> None:
        if self._in_batch == 0:
            self._f.write(b'(')
        self._f.write(self._body(item))
        self._in_batch += 1
        self.count += 1
        if self._in_batch == self.BATCH:
            self._f.write(b'e')
            self._in_batch = 0

    def close(self) -> None:
        if self._in_batch:
            self._f.write(b'e')
        self._f.write(b'.')
        self._f.close()


class JsonFilesWriter:
    """Writes one small JSON file per item into a folder (GranD's per-image
    annotation files). ``*.json`` left there by an earlier run are removed
    first, so a loader globbing the folder sees this world only."""

    def __init__(self, folder: str):
        self.path = folder
        self.count = 0
        os.makedirs(folder, exist_ok=True)
        for old in glob.glob(os.path.join(folder, '*.json')):
            os.remove(old)

    def add(self, name: str, item: Any) -> None:
        """Write ``item`` to ``{folder}/{name}.json`` (canonical JSON)."""
        with open(os.path.join(self.path, f'{name}.json'), 'w',
                  encoding='ascii', newline='\n') as f:
            f.write(dumps(item))
        self.count += 1

    def close(self) -> None:
        """Nothing is held open; present for the writers' common interface."""

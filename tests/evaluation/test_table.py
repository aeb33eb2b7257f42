"""The metric table always shows its title (e.g. the recall text encoder)."""
from mmgrounding.evaluation.functional.table import log_metric_table


def test_long_title_is_kept():
    title = ('GCG (220 images; recall text encoder: '
             'sentence-transformers/all-MiniLM-L6-v2, official_quirks=True)')
    table = log_metric_table(title, {'mIoU': 54.214, 'recall': 34.1})
    assert table.splitlines()[0] == title
    assert '| mIoU   | 54.2140 |' in table

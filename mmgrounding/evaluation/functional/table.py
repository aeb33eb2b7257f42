"""Print a metric table to the current logger."""
from typing import Dict, Sequence

from mmengine.logging import print_log
from terminaltables import AsciiTable


def log_metric_table(title: str,
                     metrics: Dict[str, float],
                     notes: Sequence[str] = ()) -> str:
    """Log ``metrics`` as a two-column table titled ``title``.

    Args:
        title: table title (e.g. the metric name and encoder name).
        metrics: name -> value.
        notes: extra lines logged under the table (e.g. warnings).

    Returns:
        str: the rendered table.
    """
    rows = [['metric', 'value']]
    for name, value in metrics.items():
        rows.append([name, f'{value:.4f}' if isinstance(value, float)
                     else str(value)])
    # the title goes on its own line: terminaltables silently drops a title
    # wider than the table, and the encoder name must always be shown
    table = f'{title}\n' + AsciiTable(rows).table
    print_log('\n' + table, logger='current')
    for note in notes:
        print_log(note, logger='current')
    return table

"""Judge interface for Grounding-Bench: phrase matching and chat rating."""
import math
from typing import Dict, List, Sequence, Tuple

PhrasePair = Tuple[str, str]


class BaseJudge:
    """A judge answers the two questions Grounding-Bench asks GPT-4.

    * :meth:`match_phrases`: does a predicted phrase refer to the object
      named by a GT label (the semantic half of a correct grounding)?
    * :meth:`rate_answers`: LLaVA-Bench style rating of a reference answer
      and a model answer to the same question, each on 1-10.

    Subclasses set :attr:`name` (reported next to the scores).
    """
    name: str = 'judge'

    def match_phrases(self, pairs: Sequence[PhrasePair]) -> List[bool]:
        """For each (predicted phrase, GT label) say whether they match."""
        raise NotImplementedError

    def rate_answers(self,
                     items: Sequence[Dict[str, str]]) -> List[Tuple[float,
                                                                  float]]:
        """Rate answers.

        Args:
            items: dicts with ``context``, ``question``, ``reference``
                (the reference answer), ``answer`` (the model's answer).

        Returns:
            list: (reference score, answer score) per item; ``(nan, nan)``
            when the judge's reply could not be parsed.
        """
        raise NotImplementedError


def parse_score_pair(reply: str) -> Tuple[float, float]:
    """Two scores from the first line of a rating reply ("8 7" or "8, 7").

    Returns ``(nan, nan)`` when the first line does not hold exactly two
    numbers.
    """
    first = reply.strip().split('\n')[0].replace(',', ' ')
    parts = first.split()
    if len(parts) != 2:
        return math.nan, math.nan
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return math.nan, math.nan


def parse_yes_no(reply: str) -> bool:
    """True when the reply starts with "yes" (case and punctuation aside)."""
    words = reply.strip().lower().lstrip('"\'*').split()
    return bool(words) and words[0].strip('.,!:;"\'*') == 'yes'

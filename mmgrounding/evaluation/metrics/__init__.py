"""Registered metrics of GLaMM's and LLaVA-Grounding's benchmarks."""
from .flickr30k_metric import GroundingFlickr30kMetric
from .gcg_metric import GCGMetric
from .grounding_bench_metric import GroundingBenchMetric
from .rec_metric import RECAccMetric
from .refseg_metric import RefSegGIoUMetric
from .region_caption_metric import RegionCaptionMetric
from .region_qa_metric import RegionQAAccuracyMetric
from .semseg_metric import OpenVocabSemSegMetric

__all__ = [
    'GCGMetric', 'RefSegGIoUMetric', 'RECAccMetric',
    'GroundingFlickr30kMetric', 'RegionCaptionMetric', 'GroundingBenchMetric',
    'RegionQAAccuracyMetric', 'OpenVocabSemSegMetric'
]

"""Dataset loaders: one registered ``BaseDataset`` per official source.

Every loader returns the model-neutral record of docs/data_contract.md §1
(conversation + phrase char spans + instances + regions). Importing this
package also registers the transforms (``.transforms``) and the
source-mixing samplers (``.samplers``).
"""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .base_grounding import BaseGroundingDataset
from .flickr30k import Flickr30kEntitiesDataset
from .gcg import GCGDataset
from .grand import GranDPretrainDataset
from .gvc import GVCDataset
from .llava_instruct import LLaVAInstructDataset
from .refcoco import RefCOCOGroundingDataset
from .region_caption import RegionCaptionDataset
from .semantic_seg import (SemanticSegGroundingDataset,
                           SyntheticSemSegDataset, load_label_map)
from .samplers import MultiSourceSampler, RandomSourceSampler

__all__ = [
    'BaseGroundingDataset', 'RefCOCOGroundingDataset',
    'Flickr30kEntitiesDataset', 'GVCDataset', 'GCGDataset',
    'RegionCaptionDataset', 'LLaVAInstructDataset', 'GranDPretrainDataset',
    'RandomSourceSampler', 'MultiSourceSampler', 'SyntheticSemSegDataset',
    'SemanticSegGroundingDataset', 'load_label_map'
]

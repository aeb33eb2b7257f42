"""Region encoders: GLaMM's multi-level RoIAlign region encoder."""
from .glamm_region_encoder import (GLaMMRegionEncoder, MultiLevelFuse,
                                   MultiLevelRoIExtractor)

__all__ = ['GLaMMRegionEncoder', 'MultiLevelFuse', 'MultiLevelRoIExtractor']

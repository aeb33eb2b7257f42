"""Reusable layers: OpenSeeD pixel decoder, DINO decoder, <seg> similarity."""
from .openseed_pixel_decoder import OpenSeeDPixelDecoder, openseed_encoder_cfg
from .openseed_transformer_decoder import (OpenSeeDTransformerDecoder,
                                           init_openseed_decoder,
                                           openseed_decoder_layer_cfg)
from .seg_token_similarity import SegTokenSimilarity

__all__ = [
    'OpenSeeDPixelDecoder', 'openseed_encoder_cfg',
    'OpenSeeDTransformerDecoder', 'openseed_decoder_layer_cfg',
    'init_openseed_decoder',
    'SegTokenSimilarity'
]

# Swap: LLaVA-G's OpenSeeD head on GLaMM. The projected [SEG] state is the
# head's prompt (the class score of each query is its similarity to it);
# targets are the per-instance masks + boxes + token -> instances map
# (`target_kind='instances'`, packed for every dataset), matched by the
# Hungarian set criterion. Everything else is the tiny GLaMM recipe (data,
# schedule, GCG test).
_base_ = [
    '../glamm/glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py',
    '../_base_/models/tiny_parts/openseed_head.py'
]

model = dict(
    grounding_head=dict(
        _delete_=True,
        type='OpenSeeDGroundingHead',
        prompt_dim={{_base_.tiny_seg_projector.out_channels}},
        backbone={{_base_.tiny_openseed_head.backbone}},
        pixel_decoder={{_base_.tiny_openseed_head.pixel_decoder}},
        decoder={{_base_.tiny_openseed_head.decoder}},
        embed_dims={{_base_.tiny_openseed_head.embed_dims}},
        num_queries={{_base_.tiny_openseed_head.num_queries}},
        criterion={{_base_.tiny_openseed_head.criterion}}))

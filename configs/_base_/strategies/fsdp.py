# FSDP (torch FSDP1, full shard) through FlexibleRunner: add this file to a
# 7B config's _base_ (see docs/distributed.md). GroundingFSDPStrategy fixes
# mmengine 0.10.7's resume, CPU device_id and CPU-offload defects;
# grounded_lmm_wrap_policy puts decoder layers, LoRA A/B, embed_tokens,
# lm_head and the final norm in their own units (one dtype per flat param).
# Tested: 2 gloo CPU ranks, tiny GLaMM (tests/test_distributed/test_fsdp.py).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='GroundingFSDPStrategy',
    state_dict_cfg='full',  # one file: what merge/export and load_from read
    model_wrapper=dict(
        auto_wrap_policy=dict(type='grounded_lmm_wrap_policy'),
        # units mix frozen and trained tensors; the optimizer sees only the
        # trained ones
        use_orig_params=True))

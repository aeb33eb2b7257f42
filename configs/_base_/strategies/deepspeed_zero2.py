# DeepSpeed ZeRO-2, bf16: the official GLaMM recipe (8x A100-40GB).
# Easiest: `tools/train.py CONFIG --strategy deepspeed_zero2`, which reads this
# file and fills gradient_accumulation_steps, gradient_clipping, bf16 and
# train_micro_batch_size_per_gpu from the config's optimizer wrapper and
# dataloader (mmgrounding/engine/strategy_switch.py). Tested on 2 gloo CPU
# ranks with a tiny GLaMM (tests/test_distributed/test_deepspeed.py; needs
# requirements/dist.txt). By hand: add this file to a config's _base_ and, in
# the config itself (bases may not both define optim_wrapper), replace the
# optimizer wrapper; FlexibleRunner's DeepSpeedStrategy ignores the wrapper's
# accumulative_counts and clip_grad, so the values below must equal the
# schedule's (configs/_base_/schedules/glamm_adamw.py: accumulation 10, clip
# 1.0):
#   optim_wrapper = dict(_delete_=True, type='DeepSpeedOptimWrapper',
#       optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95),
#                      weight_decay=0.))
runner_type = 'FlexibleRunner'
strategy = dict(
    type='GroundingDeepSpeedStrategy',  # mmengine's + CPU init, hook callback
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=int(5e8),
        reduce_bucket_size=int(5e8),
        overlap_comm=True,
        contiguous_gradients=True),
    bf16=dict(enabled=True),
    gradient_clipping=1.0,
    gradient_accumulation_steps=10,
    # False: the model's state_dict (TrainableStateDictMixin) already leaves
    # out the frozen tensors that equal their pretrained directory and KEEPS
    # frozen tensors that exist nowhere else (parts built from configs, a
    # base replaced by load_from); DeepSpeed's True would drop those too and
    # the checkpoint could not be restored. DeepSpeed skips checkpoint hooks,
    # so the filtering must live in the model, where it does.
    exclude_frozen_parameters=False)

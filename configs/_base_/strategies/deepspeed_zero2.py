# DeepSpeed ZeRO-2, bf16: the official GLaMM recipe (8x A100-40GB).
# UNTESTED: deepspeed is not installed in this project's environment (see
# docs/distributed.md). FlexibleRunner's DeepSpeedStrategy ignores the optim
# wrapper's accumulative_counts and clip_grad: they are set here, so keep
# them equal to the schedule's (configs/_base_/schedules/glamm_adamw.py:
# accumulation 10, clip 1.0). train_micro_batch_size_per_gpu is taken from
# train_dataloader.batch_size. Add this file to a config's _base_ and, in
# the config itself (bases may not both define optim_wrapper), replace the
# optimizer wrapper:
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

# DeepSpeed ZeRO-3, bf16: parameters, gradients and optimizer states sharded
# (fits 24 GB cards, see docs/distributed.md). `--strategy deepspeed_zero3`;
# same accumulation / clipping / checkpoint notes as deepspeed_zero2.py. Tested
# on 2 gloo CPU ranks (training and reading its partitioned checkpoint back,
# tests/test_distributed/test_deepspeed.py).
_base_ = ['./deepspeed_zero2.py']
strategy = dict(
    zero_optimization=dict(
        _delete_=True,
        stage=3,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=int(5e8),
        stage3_prefetch_bucket_size=int(5e7),
        stage3_param_persistence_threshold=int(1e5),
        stage3_max_live_parameters=int(1e9),
        stage3_gather_16bit_weights_on_model_save=True))

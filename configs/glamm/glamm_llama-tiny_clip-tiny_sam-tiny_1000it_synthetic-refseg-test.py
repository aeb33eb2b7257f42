# Test-only view of the tiny synthetic GLaMM: referring segmentation on every
# expression of synthetic val (RefCOCO-style refs), teacher-forced with
# "Sure, it is [SEG]." as GLaMM's official RES evaluation, scored with
# cIoU/gIoU. Use with the checkpoint of the 2k synthetic config.
_base_ = ['./glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py']

model = dict(refseg_teacher_forcing=True)
test_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset={{_base_.refseg_val}})
test_evaluator = dict(_delete_=True, type='RefSegGIoUMetric')
val_dataloader = test_dataloader
val_evaluator = test_evaluator

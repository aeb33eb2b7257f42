# Referring segmentation view of `..._sam-tiny-p8_1000it_synthetic.py`: every
# synthetic val expression, "Sure, it is [SEG]." teacher-forced (GLaMM's
# official RES evaluation), scored by the official gIoU / cIoU code. The
# same view as `..._sam-tiny_1000it_synthetic-refseg-test.py` (16-px model).
_base_ = ['./glamm_llama-tiny_clip-tiny_sam-tiny-p8_1000it_synthetic.py']

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

# Tiny GLaMM with the tiny SAM's patch size halved (16 -> 8 px): the recipe
# that beats every referring heuristic on synthetic val, at 1.25-1.4x the
# cost of a training step; NOT the `make demo` recipe (its GLaMM part would
# grow by 4-6 minutes). Same schedule and data as
# `..._sam-tiny_1000it_synthetic.py`.
# Why: the synthetic objects are 17-31 px on 128 px images, so a 16-px patch
# makes a small object ONE token of the SAM side (SAM-H sees an object of
# the same relative size, 0.13 of a 1024-px image, as ~8 patches across).
# With 8-px patches (16 x 16 tokens, masks decoded at 64 x 64) the tiny head
# tells shapes apart.
# Measured (x100, 1,002 val expressions, seed 0, one run with one thread on
# shared cores; README): RES gIoU 55.6 / cIoU 50.1 (16-px recipe 44.6 /
# 41.8; heuristics: named shape 54.7, largest object 35.2, every shape
# 34.9, named colour 25.2); the referent is picked for 84 % of the
# expressions that name only a shape, for 44 % of "colour + shape" ones.
# 700 / 500 iterations (500: about the 16-px recipe's wall time): 48.4 /
# 41.5. Step (batch 32, `benchmark_train_step.py`, quiet machine): 1.87 s
# vs 1.32 s with one thread, 1.08 s vs 0.86 s with two.
_base_ = [
    './glamm_llama-tiny_clip-tiny_sam-tiny_1000it_synthetic.py',
    '../_base_/models/tiny_parts/sam_head_p8.py'
]

model = {{_base_.tiny_sam_p8_model}}

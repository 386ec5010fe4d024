"""The baseline `port-weights` is measured against: what a user would script by hand for timm legacy_xception.

torch.load, rename every tensor with porting's own weight map (the same table, no checks), and
mindspore.save_checkpoint. No worker process, no validation, no digests, no metadata.
Usage: python benchmarks/bare_port.py WEIGHTS.pth OUT.ckpt
"""
import sys

import mindspore as ms
import torch

from porting.specs import build_weight_map, resolve

state = torch.load(sys.argv[1], weights_only=True)
rows = build_weight_map(resolve("timm:legacy_xception")).rows
params = [{"name": row.target, "data": ms.Tensor(row.transform(state[row.source].numpy()))} for row in rows]
ms.save_checkpoint(params, sys.argv[2])

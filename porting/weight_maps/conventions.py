"""How each source names and lays out the tensors of a layer, so per-model tables are one line per layer.

Each helper adds the rows of one layer to a WeightMap and registers the layer for the parity check.
"""
from __future__ import annotations

from porting.weight_maps import COPY, Transform, WeightMap

# PyTorch BatchNorm -> MindSpore BatchNorm (num_batches_tracked is declared ignored by each table).
TORCH_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
# Paddle BatchNorm / BatchNorm2D.
PADDLE_BN = {"weight": "gamma", "bias": "beta", "_mean": "moving_mean", "_variance": "moving_variance"}
# Keras BatchNormalization (tensor paths are 'layer/gamma': sep="/").
KERAS_BN = {name: name for name in ("gamma", "beta", "moving_mean", "moving_variance")}


def conv(wm: WeightMap, src: str, dst: str, bias: bool = False, transform: Transform = COPY,
         weight: str = "weight", bias_name: str = "bias", tap: bool = True) -> None:
    wm.add(f"{src}.{weight}", f"{dst}.weight", transform)
    if bias:
        wm.add(f"{src}.{bias_name}", f"{dst}.bias")
    if tap:
        wm.layer(src, dst, "conv")


def batchnorm(wm: WeightMap, src: str, dst: str, names: dict[str, str] = TORCH_BN, tap: str | None = None,
              sep: str = ".") -> None:
    """BN rows. `tap` is the MindSpore cell whose output equals the source module's: the BN itself by default,
    our ReLU where the source fuses the activation into its BN layer (Paddle act='relu', timm BatchNormAct2d)."""
    for s, d in names.items():
        wm.add(f"{src}{sep}{s}", f"{dst}.{d}")
    wm.layer(src, tap or dst, "bn")


def dense(wm: WeightMap, src: str, dst: str, transform: Transform = COPY, weight: str = "weight",
          bias_name: str = "bias", bias_transform: Transform = COPY) -> None:
    wm.add(f"{src}.{weight}", f"{dst}.weight", transform)
    wm.add(f"{src}.{bias_name}", f"{dst}.bias", bias_transform)
    # no layer tap: the head's output is the logits, which parity always compares

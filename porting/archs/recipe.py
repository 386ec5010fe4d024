"""The model-zoo training recipes, each declared by the family whose network it trains (its package's
__init__.py calls `register_recipe`); porting.training.recipes loads, overrides and checks them. No framework.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "momentum"  # momentum | rmsprop
    lr_init: float = 0.00004  # learning rate at the start of warmup
    lr_max: float = 0.4  # peak, reached after warmup
    lr_end: float = 0.00004  # at the last step
    warmup_epochs: float = 1
    lr_decay_mode: str = "linear"  # linear | cosine
    momentum: float = 0.9
    weight_decay: float = 1e-4
    rmsprop_decay: float = 0.9
    rmsprop_epsilon: float = 1.0
    label_smooth_factor: float = 0.1
    loss_scale: float = 1024
    batch_size: int = 128
    epochs: int = 250
    amp_level: str = "O0"
    save_checkpoint_epochs: int = 1
    save_checkpoint_steps: int = 0  # > 0: save every N steps instead of every N epochs
    keep_checkpoint_max: int = 5
    reference_batch: int = 1024  # the global batch the learning rates above were tuned for


# The Ascend recipes (the model zoo's default_config.yaml and train.py), by name; DEVICE_CHANGES: what its GPU
# config changes. CPU trains the GPU recipe in float32 (porting.training.recipes.for_device).
RECIPES: dict[str, Recipe] = {}
DEVICE_CHANGES: dict[str, dict[str, dict]] = {}


def register_recipe(name: str, recipe: Recipe, gpu: dict | None = None) -> None:
    if name in RECIPES:
        raise ValueError(f"recipe '{name}' registered twice")
    RECIPES[name] = recipe
    DEVICE_CHANGES[name] = {"GPU": dict(gpu)} if gpu else {}

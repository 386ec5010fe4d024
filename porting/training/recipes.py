"""The MindSpore model-zoo training recipes (../shared/seeds 000, 001, 002) as overridable defaults.

Precedence: recipe < YAML config file (--config, keys as below, like the seeds' default_config.yaml) < flags.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from porting.errors import PortingError


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


RECIPES = {
    # seed 000, Xception: Momentum, lr 4e-5 -> 0.4 (1 warmup epoch) -> 4e-5 linear, smoothing 0.1, wd 1e-4
    "xception": Recipe(),
    # seed 001, InceptionV4: RMSProp(decay 0.9, eps 1.0); values from the model zoo's default_config.yaml
    "inceptionv4": Recipe(optimizer="rmsprop", lr_init=0.00004, lr_max=0.4, lr_end=0.000004,
                          lr_decay_mode="cosine", weight_decay=0.00004, keep_checkpoint_max=10,
                          save_checkpoint_epochs=5),
    # seed 002, SE-ResNeXt50: Momentum, lr 0.05, cosine annealing to 0 over 150 epochs, no smoothing
    "se_resnext50": Recipe(lr_init=0.0, lr_max=0.05, lr_end=0.0, lr_decay_mode="cosine",
                           label_smooth_factor=0.0, epochs=150),
}

# which recipe a ported architecture gets by default
DEFAULT_FOR_ARCH = {"xception": "xception", "xception_aligned": "xception", "xception_ppcls": "xception",
                    "xception_deeplab": "xception", "inception_v4": "inceptionv4", "se_resnext": "se_resnext50"}


def load(name: str | None, arch: str, config: Path | None = None, overrides: dict | None = None) -> Recipe:
    name = name or DEFAULT_FOR_ARCH.get(arch, "xception")
    if name not in RECIPES:
        raise PortingError(f"unknown recipe '{name}'; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    known = {f.name: f.type for f in fields(Recipe)}
    if config is not None:
        import yaml

        if not config.is_file():
            raise PortingError(f"config file '{config}' does not exist")
        values = yaml.safe_load(config.read_text()) or {}
        if not isinstance(values, dict):
            raise PortingError(f"config file '{config}' must hold a mapping of recipe keys")
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise PortingError(f"config file '{config}': unknown keys {', '.join(unknown)}; known: {', '.join(known)}")
        recipe = replace(recipe, **values)
    recipe = replace(recipe, **{k: v for k, v in (overrides or {}).items() if v is not None})
    if recipe.optimizer not in ("momentum", "rmsprop"):
        raise PortingError(f"optimizer must be momentum or rmsprop, not '{recipe.optimizer}'")
    if recipe.lr_decay_mode not in ("linear", "cosine"):
        raise PortingError(f"lr_decay_mode must be linear or cosine, not '{recipe.lr_decay_mode}'")
    return recipe


def as_dict(recipe: Recipe) -> dict:
    return asdict(recipe)


def lr_schedule(recipe: Recipe, steps_per_epoch: int, epochs: int) -> list[float]:
    """Per-step learning rates: linear warmup lr_init -> lr_max, then linear or cosine decay to lr_end."""
    import math

    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, int(round(recipe.warmup_epochs * steps_per_epoch)))
    lrs = []
    for step in range(total):
        if step < warmup:
            lr = recipe.lr_init + (recipe.lr_max - recipe.lr_init) * (step + 1) / warmup
        else:
            frac = (step - warmup) / max(1, total - warmup)
            if recipe.lr_decay_mode == "linear":
                lr = recipe.lr_max + (recipe.lr_end - recipe.lr_max) * frac
            else:
                lr = recipe.lr_end + 0.5 * (recipe.lr_max - recipe.lr_end) * (1 + math.cos(math.pi * frac))
        lrs.append(float(lr))
    return lrs

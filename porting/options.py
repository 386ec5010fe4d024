"""The options a command and its API function share, each spelled once: the CLI fills these objects from its
flags, the API takes them (or their fields as keywords) and hands them on. No framework here."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from porting.errors import PortingError

# the precisions --precision names (porting.runtimes: which runtime takes which): OpenVINO's
# INFERENCE_PRECISION_HINT, TensorRT's builder flags; 'default' leaves it to the runtime (bf16 on CPUs that have it)
PRECISIONS = ("default", "f32", "bf16", "f16")


@dataclass(frozen=True)
class TrainingRun:
    """How a fine-tuning run runs; what it trains with is the recipe (porting.archs.recipe.Recipe)."""

    num_classes: int | None = None  # a new head for N classes (default: the training folders')
    image_size: int | None = None  # train and validation size (default: the checkpoint's)
    device: str | None = None  # CPU | GPU | Ascend (default: $PORTING_DEVICE, else MindSpore's)
    distributed: bool = False  # data parallel, launched by msrun
    resume: bool = False  # continue from the newest checkpoint in the output folder
    workers: int | None = None  # dataset workers
    log_every: int = 0  # log the loss every N steps; 0: once per epoch, like the model zoo's LossMonitor
    max_steps: int = 0  # > 0: stop this invocation after N steps (a budgeted run; resume continues)
    shard: tuple[int, int] | None = None  # (shard_id, num_shards): one worker trains on one shard
    seed: int = 0
    save_rank_weights: bool = False  # every rank writes OUTPUT/rank_R.npz of its trainable weights at the end
    pynative: bool = False  # run cell by cell (debugging) instead of compiling the training step (GRAPH)
    dataset_sink: bool | None = None  # None: sink on Ascend/GPU, feed from the host on CPU
    bn_momentum: float | None = None  # MindSpore's convention (0.9: moving = 0.9 x moving + 0.1 x batch); None: 0.9
    # a custom head's backbone: its BatchNorms on batch statistics ('train') or on their moving ones ('inference');
    # None: as the source ran it (Keras's training=False: 'inference'), else 'train'
    backbone_bn: str | None = None
    train_backbone: bool = False  # train a backbone the source froze (Keras's base.trainable = False)


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing that overrides the model card's (timm validate.py's flags); None: the card's."""

    size: int | None = None  # center-crop size
    resize: int | None = None  # the short side before the crop
    crop_pct: float | None = None  # or: resize to size / crop_pct
    interpolation: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def share_out(fields: dict, *kinds: type) -> list[dict]:
    """`fields` shared out among dataclasses `kinds` by field name (the API's keyword arguments); a name none of
    them has is a one-line error."""
    parts, rest = [], dict(fields)
    for kind in kinds:
        names = {f.name for f in dataclasses.fields(kind)}
        parts.append({k: rest.pop(k) for k in list(rest) if k in names})
    if rest:
        raise PortingError(f"unknown option(s) {', '.join(sorted(rest))}")
    return parts

"""The contract between porting and a source worker process: the job it is sent and what it hands back.

Both are dataclasses that travel as JSON (the job) and JSON plus .npz/.npy files (the result): a new source or
a new question to the worker adds a field here, where both sides read it, instead of a string key in each.
No framework here.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PretrainedConfig:
    """What a library's own file says of its weights beside the tensors, as timm's pretrained config does: their
    preprocessing and class names. A worker reports it of the model it built (SourceInfo.pretrained_cfg: timm's
    for its tag, Keras's fixed one; None where the library states nothing), and `export --to` gives it to the
    library's saver for the formats that have a place for it (SourceJob.export_config: timm's config.json)."""

    input_size: int | None = None  # the square side the weights are fed at
    mean: list[float] | None = None
    std: list[float] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    test_input_size: int | None = None  # timm evaluates some weights at a larger size ...
    test_crop_pct: float | None = None  # ... with another crop
    label_names: list[str] | None = None

    @classmethod
    def from_dict(cls, raw: dict | None) -> PretrainedConfig:
        return cls(**(raw or {}))


@dataclass(frozen=True)
class PipelineRequest:
    """The library's own preprocessing of these images (parity --check-preprocessing)."""

    images: list[str]
    size: int
    resize: int
    out: str  # .npy of the preprocessed batch, NCHW float32


@dataclass(frozen=True)
class Training:
    """What the model zoo's train.py wraps its network in, for weights written as its checkpoints are."""

    optimizer: str  # 'momentum' | 'rmsprop'
    lr: float
    momentum: float
    weight_decay: float
    loss_scale: float
    rmsprop_decay: float = 0.9
    rmsprop_epsilon: float = 1.0


@dataclass(frozen=True)
class TrainStep:
    """parity --train-step: one training step of the library's own model on the job's inputs, the recipe given in
    MindSpore's terms; each runner converts it to its library's conventions (README "Training-step parity")."""

    labels: list[int]
    lr: float
    optimizer: str  # 'momentum' | 'rmsprop' (the recipe's, as MindSpore's nn.Momentum / nn.RMSProp compute it)
    momentum: float
    weight_decay: float  # L2 added to the gradient of conv / dense weights (the recipe's), before the update
    label_smooth_factor: float  # MindSpore's form: 1 - f on the true class, f / (classes - 1) on every other
    bn_momentum: float  # MindSpore's convention: moving = m x moving + (1 - m) x batch
    rmsprop_decay: float = 0.9
    rmsprop_epsilon: float = 1.0
    decay_bn: bool = False  # weight decay on BN gamma / beta and biases too (what the recipe does not do)
    grads: str = ""  # .npz of gradients by the library's names: the optimizer alone, on them ('after/NAME' out)
    out: str = ""  # .npz: per run R ('32', '32p': the images moved by 1e-6, '64'), 'loss/R', 'grad/R/NAME',
    #                'after/R/NAME'; 'count/NAME' (elements per channel of a BN)


@dataclass(frozen=True)
class SourceJob:
    source: str  # the library: picks the worker's runner (its record's runner: porting.sources)
    model: str  # the library's own model name (timm's 'model.tag' where a tag is named)
    result_out: str  # where the worker writes SourceInfo as JSON
    hub: str = ""  # a Hugging Face Hub repo (timm)
    weights: str | None = None  # a local file in the library's own format
    seed: int | None = None  # seeded synthetic weights
    untrained: bool = False  # the library's own initialisation (names and shapes)
    num_classes: int | None = None
    input_size: int = 299  # for seeded weights: the size their BN statistics are drawn at
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    random_init: dict = field(default_factory=dict)  # ModelSpec.random_init
    checkout: str | None = None  # the model zoo's code (porting.sources.modelzoo)
    tensors_out: str | None = None  # .npz of the model's named tensors
    inputs: str | None = None  # .npy batch to run the model on ...
    taps: list[str] = field(default_factory=list)  # ... recording these modules' outputs ...
    outputs_out: str | None = None  # ... into this .npz, with 'logits'
    save_weights: str | None = None  # write the weights here, in the library's format
    save_weights_as: str | None = None  # the name errors give that file (the user's output path)
    training: Training | None = None  # with save_weights, for the model zoo
    preprocess: PipelineRequest | None = None
    # export --to: an .npz of tensors (the library's names) put into its untrained model before save_weights;
    # every tensor of the model must be there but those matching `unassigned` (fnmatch); with inputs / tensors_out
    # the file written is read back by the library's own loader, and that model is what runs
    assign: str | None = None
    unassigned: list[str] = field(default_factory=list)
    export_config: PretrainedConfig = field(default_factory=PretrainedConfig)  # what the format has a place for
    tmpdir: str | None = None  # the job's own temporaries (a kept worker serves several jobs)
    train_step: TrainStep | None = None  # one training step (with tensors_out: the tensors before it)
    # a key the parent chose: the model built for this job stays in a kept worker, and the next job with the same
    # key runs on it instead of loading the weights again (parity's chunks); for jobs that only run inputs
    keep_model: str = ""
    # the head the worker gives the library's model (porting.heads.Head.to_dict): timm / PaddleClas from --head, and
    # any library when export --to writes the user's own shape back; None: the library's standard classifier
    head: dict | None = None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def read(cls, path: str | Path) -> SourceJob:
        raw = json.loads(Path(path).read_text())
        raw["mean"], raw["std"] = tuple(raw["mean"]), tuple(raw["std"])
        if raw.get("training"):
            raw["training"] = Training(**raw["training"])
        if raw.get("preprocess"):
            raw["preprocess"] = PipelineRequest(**raw["preprocess"])
        if raw.get("train_step"):
            raw["train_step"] = TrainStep(**raw["train_step"])
        raw["export_config"] = PretrainedConfig.from_dict(raw.get("export_config"))
        return cls(**raw)


@dataclass
class SourceInfo:
    """What the worker says of the model it built."""

    num_classes: int
    pretrained_tag: str = ""  # timm's tag of the weights it loaded (or PaddleClas's file name)
    pretrained_cfg: PretrainedConfig = field(default_factory=PretrainedConfig)  # where the library states one
    float32_cells: list[str] = field(default_factory=list)  # cells the source flags as float16, run at float32
    order: list[str] = field(default_factory=list)  # the taps in the order the model computed them
    pipeline: str = ""  # the library's preprocessing, described (with PipelineRequest)
    # the head of the model the worker loaded (porting.heads.Head.to_dict) where it is not the library's standard
    # one: Keras reads it from the file's graph, timm / PaddleClas echo the job's, checked against the file
    head: dict | None = None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def read(cls, path: str | Path) -> SourceInfo:
        raw = json.loads(Path(path).read_text())
        return cls(**{**raw, "pretrained_cfg": PretrainedConfig.from_dict(raw.get("pretrained_cfg"))})


@dataclass
class SourceResult:
    info: SourceInfo
    weights: str | None = None  # the job's weights file, as given
    seed: int | None = None  # ... or its seed
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # the source model's named tensors
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # tapped layer outputs + 'logits'
    preprocessed: np.ndarray | None = None  # images through the library's own pipeline (NCHW float32)
    step: dict[str, np.ndarray] = field(default_factory=dict)  # a TrainStep's 'loss', 'grad/..', 'after/..', 'count/..'

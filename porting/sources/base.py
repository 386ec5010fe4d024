"""The source-runner contract (as Polygraphy's BaseRunner): the shared flow once, each framework's hooks apart.

A worker process (porting.sources.worker) holds one runner. `load(job)` is the same for every framework: the
user's file, the library's untrained model (for names and shapes), seeded synthetic weights, or the library's
own pretrained download. `randomize` is the one seeded randomiser, in NumPy. `forward` taps named modules. A
framework's runner implements only the hooks: how to build, read, describe, list and assign its tensors, run
a batch, and hook a module's input and output.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from porting.errors import PortingError
from porting.sources.inputs import make_images
from porting.job import PretrainedConfig, SourceJob

LOGITS = "logits"


@dataclass(frozen=True)
class Tensor:
    """A source tensor as the randomiser sees it. role: weight (conv / dense, He-scaled by fan_in), bias, gamma,
    beta, mean, var (BN running statistics of the BN `module`), or None for a tensor the runner cannot name."""

    name: str
    shape: tuple[int, ...]
    role: str | None
    fan_in: int = 0
    module: str = ""


class SourceRunner:
    library = ""  # the name errors use: 'timm', 'PaddleClas'...
    module_word = "module"  # what the library calls a layer: module, sublayer, cell, layer

    # ------------------------------------------------------------------------------------------ hooks

    def check(self, job: SourceJob) -> None:
        """Anything to refuse before the framework does work (a timm tag, a Keras model name...)."""

    def build(self, name: str, num_classes: int):
        raise NotImplementedError

    def load_file(self, path: str, name: str, num_classes: int | None):
        """The model with the user's weights file, read and checked by the library's own loader."""
        raise NotImplementedError

    def download(self, job: SourceJob):
        """(model, info) from the library's own pretrained download."""
        raise NotImplementedError

    def inference_info(self, model) -> dict:
        """The model put in inference mode, and what the parent needs to know of it (SourceInfo's fields:
        num_classes, pretrained_cfg as a PretrainedConfig...)."""
        raise NotImplementedError

    def parameters(self, model) -> list[Tensor]:
        raise NotImplementedError

    def assign(self, model, values: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def modules(self, model) -> dict:
        """Name -> module, for taps and BN statistics."""
        raise NotImplementedError

    def on_output(self, module, fn: Callable[[np.ndarray], None]):
        """Call fn(copy of the module's output) on every call; returns a handle with .remove()."""
        raise NotImplementedError

    def on_input(self, module, fn: Callable[[np.ndarray], None]):
        """Call fn(copy of the module's first input) on every call; returns a handle with .remove()."""
        raise NotImplementedError

    def run(self, model, x: np.ndarray, training: bool = False) -> np.ndarray:
        """The model on an NCHW float32 batch, without gradients; training=True for BN batch statistics."""
        raise NotImplementedError

    def tensors(self, model) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # parity --train-step (porting.training.step_parity): a job.TrainStep gives the recipe in MindSpore's terms,
    # which each library's hooks convert to its own conventions

    def float64(self, model):
        """A float64 copy of the model (the reference step)."""
        raise PortingError(f"--train-step runs timm, Keras and PaddleClas models; not {self.library}'s")

    def gradients(self, model, x: np.ndarray, labels: np.ndarray, step) -> tuple[float, dict, dict]:
        """(loss, gradient per parameter, elements per channel of each BN by its running variance's name) of one
        forward and backward in train mode, dropout off; the BN running statistics update as in training."""
        raise PortingError(f"--train-step runs timm, Keras and PaddleClas models; not {self.library}'s")

    def optimizer_step(self, model, grads: dict[str, np.ndarray], step) -> None:
        """One step of the recipe's optimizer, from the library's own classes, on the given gradients (its
        parameters without one stay as they are)."""
        raise PortingError(f"--train-step runs timm, Keras and PaddleClas models; not {self.library}'s")

    def save_weights(self, model, path: str, config: PretrainedConfig) -> None:
        """The model's weights in the library's own file; `config` is what `export --to` tells the formats that
        have a place for it (timm's config.json: preprocessing and class names); the others hold tensors alone."""
        raise NotImplementedError

    def preprocess(self, model, images: list[str], size: int, resize: int):
        raise PortingError(f"--check-preprocessing compares with timm, Keras and PaddleClas; {self.library}'s own "
                           f"pipeline is not wired in")

    # ------------------------------------------------------------------------------------------ shared

    def assign_checked(self, model, values: dict[str, np.ndarray], unassigned: list[str]) -> None:
        """`assign` of an export's tensors, checked whole first: each one the model has, of its shape, and every
        one it has but those matching `unassigned` (tensors porting never ports, such as BN step counters)."""
        import fnmatch

        have = {k: tuple(np.shape(v)) for k, v in self.tensors(model).items()}
        problems = [f"it has no tensor '{k}'" for k in values if k not in have]
        problems += [f"'{k}' is {list(have[k])}, the export {list(v.shape)}" for k, v in values.items()
                     if k in have and tuple(v.shape) != have[k]]
        problems += [f"nothing for its tensor '{k}' {list(s)}" for k, s in have.items()
                     if k not in values and not any(fnmatch.fnmatchcase(k, p) for p in unassigned)]
        if problems:
            raise PortingError(f"the {self.library} model does not take the export ({len(problems)} problems): "
                               + "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        self.assign(model, values)

    def load(self, job: SourceJob):
        """(model in inference mode, info) as the job asks."""
        self.check(job)
        name, classes, info = job.model, job.num_classes, {}
        if job.weights:
            model = self.load_file(job.weights, name, classes)
        elif job.untrained:  # the library's own initialisation: enough for names and shapes
            model = self.build(name, classes or 1000)
        elif job.seed is not None:
            model = self.build(name, classes or 1000)
            self.randomize(model, int(job.seed), job.input_size, job.mean, job.std,
                           **(job.random_init))
        else:
            model, info = self.download(job)
        return model, {**info, **self.inference_info(model)}

    def randomize(self, model, seed: int, size: int, mean, std, bn_beta_mean: float = 0.0) -> None:
        """Seeded synthetic weights for every tensor, BN running statistics included, with live activations.

        Weights are He-scaled (normal, std sqrt(2 / fan_in)) so signals neither vanish nor explode; BN gamma
        uniform(0.5, 1.5), beta normal(0, 0.2), biases normal(0, 0.1). BN statistics are then measured on an
        image-like batch, each BN's batch mean and unbiased variance of its input in one training-mode pass (so
        each BN normalises what it really sees), and perturbed, so neither mean 0 / var 1 nor the measured
        values are what a mapping bug could hide behind. `bn_beta_mean` (a spec's random_init) shifts every BN
        beta: deep conv-BN-ReLU stacks without residuals (Inception-v4) amplify fp32 rounding ~1.5x per block at
        mean 0 (timm fp32 vs fp64: 8e-5 relative), a positive mean keeps them conditioned.
        """
        rng = np.random.default_rng(seed)
        tensors = self.parameters(model)
        draw = {"weight": lambda t: rng.normal(0.0, np.sqrt(2.0 / t.fan_in), t.shape),
                "bias": lambda t: rng.normal(0.0, 0.1, t.shape),
                "gamma": lambda t: rng.uniform(0.5, 1.5, t.shape),
                "beta": lambda t: rng.normal(0.0, 0.2, t.shape) + bn_beta_mean}
        unknown = [f"'{t.name}' {list(t.shape)}" for t in tensors if t.role not in (*draw, "mean", "var")]
        if unknown:
            raise PortingError(f"the randomiser does not know the {self.library} tensor(s) {', '.join(unknown[:5])}")
        self.assign(model, {t.name: draw[t.role](t).astype(np.float32) for t in tensors if t.role in draw})
        stats = {t.module: t for t in tensors if t.role == "var"}
        means = {t.module: t for t in tensors if t.role == "mean"}
        measured = self.batch_statistics(model, make_images(seed, 4, size, mean, std), list(stats))
        values = {}
        for module, (batch_mean, batch_var) in measured.items():
            var = batch_var * rng.uniform(0.8, 1.25, batch_var.shape)
            values[stats[module].name] = var.astype(np.float32)
            values[means[module].name] = (batch_mean + rng.normal(0.0, 0.1, var.shape) * np.sqrt(var)).astype(np.float32)
        self.assign(model, values)

    def batch_statistics(self, model, x: np.ndarray, bns: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{BN: (per-channel mean, unbiased variance) of its input} in one training-mode pass over x (NCHW)."""
        modules, seen = self.modules(model), {}
        handles = [self.on_input(modules[name], functools.partial(seen.__setitem__, name)) for name in bns]
        try:
            self.run(model, x, training=True)
        finally:
            for handle in handles:
                handle.remove()
        return {name: channel_statistics(seen[name]) for name in bns}

    def forward(self, model, x: np.ndarray, taps: list[str]):
        """Logits plus the outputs of the named modules, and the order in which those modules ran."""
        modules = self.modules(model)
        missing = [t for t in taps if t not in modules]
        if missing:
            raise PortingError(f"{self.library} model has no {self.module_word}(s) {', '.join(missing)}")
        outputs, order = {}, []

        def record(name, array):
            outputs[name] = array
            order.append(name)

        handles = [self.on_output(modules[name], functools.partial(record, name)) for name in taps]
        try:
            outputs[LOGITS] = self.run(model, x)
        finally:
            for handle in handles:
                handle.remove()
        return outputs, order


def library_smoothing(factor: float, classes: int) -> float:
    """MindSpore's label smoothing f (1 - f on the class, f / (K - 1) on every other) as PyTorch's, Keras's and
    Paddle's eps (1 - eps + eps / K on the class, eps / K on every other): eps = f K / (K - 1)."""
    return factor * classes / (classes - 1)


def channel_statistics(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and unbiased variance (what a BN's running statistics estimate) of an N-D batch."""
    x = np.asarray(x, np.float64)
    reduce = tuple(a for a in range(x.ndim) if a != axis)
    return x.mean(axis=reduce), x.var(axis=reduce, ddof=1)

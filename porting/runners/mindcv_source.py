"""mindcv / MindSpore side of a source worker: checkpoints of mindcv's model zoo (MindSpore .ckpt files).

The source is MindSpore itself, run like every source in a process of its own: mindcv's cells and ours never
share a process, and the parent's MindSpore context stays as the command set it. PYNATIVE mode, so forward
hooks can tap every layer for the parity check.
"""
from __future__ import annotations

import os

import numpy as np

from porting import msenv
from porting.errors import PortingError, check_fits, first_line
from porting.runners.inputs import make_images

msenv.setup("CPU")
import mindspore as ms  # noqa: E402 - after the context is set
from mindspore import nn  # noqa: E402

HEAD = "classifier"  # mindcv's classifier on every model here (default_cfgs 'classifier')
BN_STATS = ("moving_mean", "moving_variance")
# what MindSpore's ModelCheckpoint saves beside the weights when mindcv's train.py trains: optimizer state,
# loss scale, step counters
TRAINING_STATE = ("moments.", "accum.", "adam_m.", "adam_v.", "beta1_power", "beta2_power", "global_step",
                  "learning_rate", "scale_sense", "current_iterator_step", "last_overflow_iterator_step",
                  "epoch_num", "step_num")


def _create(name: str, num_classes: int, pretrained: bool = False):
    from mindcv.models import create_model, is_model

    if not is_model(name):
        raise PortingError(f"mindcv has no model '{name}'")
    return create_model(name, pretrained=pretrained, num_classes=num_classes)


def _read_checkpoint(path: str, model_name: str) -> dict:
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    if not path.endswith(".ckpt"):
        raise PortingError(f"weights file '{path}': expected a MindSpore .ckpt file for mindcv")
    try:
        params = ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with multi-line text on bad bytes
        raise PortingError(f"cannot read '{path}' as mindcv {model_name} weights: {first_line(exc)}") from None
    return {k: v for k, v in params.items() if not k.startswith(TRAINING_STATE)}


def load(job: dict):
    name = job["model"]
    if job.get("weights"):
        params = _read_checkpoint(job["weights"], name)
        head = f"{HEAD}.weight"
        num_classes = job.get("num_classes") or (params[head].shape[0] if head in params else 1000)
        model = _create(name, num_classes)
        check_fits(job["weights"], f"mindcv {name} ({num_classes} classes)",
                   {k: tuple(v.shape) for k, v in params.items()}, _shapes(model))
        ms.load_param_into_net(model, params, strict_load=True)
    elif job.get("untrained"):
        model = _create(name, job.get("num_classes") or 1000)
    elif job.get("seed") is not None:
        model = _create(name, job.get("num_classes") or 1000)
        randomize(model, int(job["seed"]), job["input_size"], job["mean"], job["std"],
                  **(job.get("random_init") or {}))
    else:
        try:
            model = _create(name, 1000, pretrained=True)
        except PortingError:
            raise
        except Exception as exc:
            raise PortingError(f"could not download mindcv's pretrained {name} weights ({type(exc).__name__}); "
                               f"offline? pass --weights FILE with a local .ckpt") from None
    model.set_train(False)
    return model, {"num_classes": int(_shapes(model)[f"{HEAD}.weight"][0])}


def _shapes(model: nn.Cell) -> dict[str, tuple[int, ...]]:
    return {p.name: tuple(p.shape) for p in model.get_parameters()}


def randomize(model: nn.Cell, seed: int, size: int, mean, std, bn_beta_mean: float = 0.0) -> None:
    """Seeded synthetic weights for every tensor, BN moving statistics included, with live activations: the
    same recipe as the timm runner's (He-scaled weights; BN statistics measured on an image-like batch, then
    perturbed). The statistics are each BN's input in a training-mode pass, read by forward pre-hooks."""
    rng = np.random.default_rng(seed)
    bns = {cell_name: cell for cell_name, cell in model.cells_and_names() if isinstance(cell, nn.BatchNorm2d)}
    for param in model.get_parameters():
        shape, leaf = tuple(param.shape), param.name.rsplit(".", 1)[-1]
        if leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "beta":
            value = rng.normal(0, 0.2, shape) + bn_beta_mean
        elif leaf in BN_STATS:
            continue  # measured below
        elif leaf == "weight":
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:  # biases
            value = rng.normal(0, 0.1, shape)
        param.set_data(ms.Tensor(value.astype(np.float32)))
    seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def measure(cell_name):
        def hook(_cell, args):
            x = args[0].asnumpy().astype(np.float64)
            seen[cell_name] = (x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1))
        return hook

    handles = [cell.register_forward_pre_hook(measure(n)) for n, cell in bns.items()]
    model.set_train(True)
    try:
        model(ms.Tensor(make_images(seed, 4, size, mean, std)))
    finally:
        for handle in handles:
            handle.remove()
        model.set_train(False)
    for cell_name, cell in bns.items():
        mean_, var = seen[cell_name]
        var = var * rng.uniform(0.8, 1.25, var.shape)
        mean_ = mean_ + rng.normal(0, 0.1, mean_.shape) * np.sqrt(var)
        cell.moving_mean.set_data(ms.Tensor(mean_.astype(np.float32)))
        cell.moving_variance.set_data(ms.Tensor(var.astype(np.float32)))


def tensors(model: nn.Cell) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy() for p in model.get_parameters()}


def save_weights(model: nn.Cell, path: str) -> None:
    ms.save_checkpoint(model, path)


def forward(model: nn.Cell, x: np.ndarray, taps: list[str]):
    """Logits plus the outputs of the named cells, and the order in which those cells ran."""
    cells = dict(model.cells_and_names())
    missing = [t for t in taps if t not in cells]
    if missing:
        raise PortingError(f"mindcv model has no cell(s) {', '.join(missing)}")
    outputs, order = {}, []

    def hook(name):
        def fn(_cell, _args, output):
            outputs[name] = output.asnumpy().copy()
            order.append(name)
        return fn

    handles = [cells[name].register_forward_hook(hook(name)) for name in taps]
    try:
        outputs["logits"] = model(ms.Tensor(x)).asnumpy()
    finally:
        for handle in handles:
            handle.remove()
    return outputs, order


def preprocess(model: nn.Cell, images: list[str], size: int, resize: int):
    raise PortingError("--check-preprocessing compares with timm, Keras and PaddleClas; mindcv's pipeline "
                       "(mindspore.dataset vision ops) is not wired in")

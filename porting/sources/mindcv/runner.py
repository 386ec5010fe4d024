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
from porting.job import PretrainedConfig, SourceJob
from porting.sources.base import SourceRunner, Tensor
from porting.sources.mindcv import MINDCV

msenv.setup("CPU")
import mindspore as ms  # noqa: E402 - after the context is set
from mindspore import nn  # noqa: E402

HEAD = "classifier"  # mindcv's classifier on every model here (default_cfgs 'classifier')
BN_ROLES = {"gamma": "gamma", "beta": "beta", "moving_mean": "mean", "moving_variance": "var"}
# what MindSpore's ModelCheckpoint saves beside the weights when a train.py trains: optimizer state (Momentum's
# moments, RMSProp's moment / mean_square / mean_grad, Adam's...), loss scale, step counters
TRAINING_STATE = ("moments.", "moment.", "mean_square.", "mean_grad.", "accum.", "adam_m.", "adam_v.", "beta1_power",
                  "beta2_power", "global_step", "learning_rate", "scale_sense", "current_iterator_step",
                  "last_overflow_iterator_step", "epoch_num", "step_num", "momentum")


def _create(name: str, num_classes: int, pretrained: bool = False):
    from mindcv.models import create_model, is_model

    if not is_model(name):
        raise PortingError(f"mindcv has no model '{name}'")
    return create_model(name, pretrained=pretrained, num_classes=num_classes)


def read_checkpoint(path: str, what: str) -> dict:
    """The weights in a MindSpore .ckpt, without what training keeps beside them (TRAINING_STATE)."""
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    if not path.endswith(MINDCV.weight_suffixes):
        raise PortingError(f"weights file '{path}': expected a MindSpore .ckpt file for {what}")
    try:
        params = ms.load_checkpoint(path)
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with multi-line text on bad bytes
        raise PortingError(f"cannot read '{path}' as {what} weights: {first_line(exc)}") from None
    return {k: v for k, v in params.items() if not k.startswith(TRAINING_STATE)}


class MindSporeSource(SourceRunner):
    """The hooks every MindSpore library shares as a source (mindcv, the model zoo): cells, parameters, hooks."""

    module_word = "cell"

    def parameters(self, model) -> list[Tensor]:
        bns = {name for name, cell in model.cells_and_names() if isinstance(cell, (nn.BatchNorm2d, nn.BatchNorm1d))}
        out = []
        for param in model.get_parameters():
            shape, (cell, _, leaf) = tuple(param.shape), param.name.rpartition(".")
            if cell in bns:
                out.append(Tensor(param.name, shape, BN_ROLES.get(leaf), module=cell))
            elif leaf == "weight":  # convs [out, in/groups, kh, kw] and Dense [out, in]
                out.append(Tensor(param.name, shape, "weight", int(np.prod(shape[1:]))))
            else:
                out.append(Tensor(param.name, shape, "bias" if leaf == "bias" else None))
        return out

    def assign(self, model, values: dict[str, np.ndarray]) -> None:
        params = {p.name: p for p in model.get_parameters()}
        for name, value in values.items():
            params[name].set_data(ms.Tensor(value))

    def modules(self, model) -> dict:
        return dict(model.cells_and_names())

    def on_output(self, module, fn):
        return module.register_forward_hook(lambda _cell, _args, output: fn(output.asnumpy().copy()))

    def on_input(self, module, fn):
        return module.register_forward_pre_hook(lambda _cell, args: fn(args[0].asnumpy().copy()))

    def run(self, model, x: np.ndarray, training: bool = False) -> np.ndarray:
        model.set_train(training)
        try:
            return model(ms.Tensor(x)).asnumpy()
        finally:
            model.set_train(False)

    def tensors(self, model) -> dict[str, np.ndarray]:
        return {p.name: p.asnumpy() for p in model.get_parameters()}


class MindcvRunner(MindSporeSource):
    library = "mindcv"
    build = staticmethod(_create)

    def load_file(self, path: str, name: str, num_classes: int | None):
        params = read_checkpoint(path, f"mindcv {name}")
        head = f"{HEAD}.weight"
        num_classes = num_classes or (params[head].shape[0] if head in params else 1000)
        model = _create(name, num_classes)
        check_fits(path, f"mindcv {name} ({num_classes} classes)", {k: tuple(v.shape) for k, v in params.items()},
                   shapes(model))
        ms.load_param_into_net(model, params, strict_load=True)
        return model

    def download(self, job: SourceJob):
        try:
            return _create(job.model, 1000, pretrained=True), {}
        except PortingError:
            raise
        except Exception as exc:
            raise PortingError(f"could not download mindcv's pretrained {job.model} weights "
                               f"({type(exc).__name__}); offline? pass --weights FILE with a local .ckpt") from None

    def inference_info(self, model) -> dict:
        model.set_train(False)
        return {"num_classes": int(shapes(model)[f"{HEAD}.weight"][0])}

    def save_weights(self, model, path: str, config: PretrainedConfig) -> None:
        ms.save_checkpoint(model, path)


def shapes(model: nn.Cell) -> dict[str, tuple[int, ...]]:
    return {p.name: tuple(p.shape) for p in model.get_parameters()}

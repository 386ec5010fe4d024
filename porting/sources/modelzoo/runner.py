"""MindSpore model zoo side of a source worker: the seeds' own Xception, InceptionV4 and SE_ResNeXt50 networks,
imported from the user's model-zoo checkout (porting.sources.modelzoo says where and how eval.py builds them).

The user's files are never modified: bytecode is not written into the checkout, and what parity needs is done
in memory, here: SE_ResNeXt50 runs in PYNATIVE (the mode forward hooks need) with its SEBlock's two-name shape
unpacking recompiled as `[:2]`, and a cell the network puts at float16 (SE_ResNeXt50's classifier,
`add_flags_recursive(fp16=True)`) runs at float32, as the port does. Without a checkout, a checkpoint is still
read (port-weights needs its tensors only: the weight map checks every name and shape).
"""
from __future__ import annotations

import importlib
import inspect
import sys
import textwrap

sys.dont_write_bytecode = True  # importing the user's checkout writes no __pycache__ into it

import numpy as np  # noqa: E402

from porting import msenv  # noqa: E402
from porting.errors import PortingError, check_fits, first_line  # noqa: E402
from porting.sources.modelzoo import NETWORKS  # noqa: E402
from porting.sources.mindcv.runner import MindSporeSource, read_checkpoint, shapes  # noqa: E402

msenv.setup("CPU")
import mindspore as ms  # noqa: E402 - after the context is set
from mindspore import nn  # noqa: E402

from porting.card import META_KEY  # noqa: E402 - a .ckpt porting wrote carries it
from porting.job import PretrainedConfig, SourceJob, Training


class Weights:
    """A model-zoo checkpoint read without its network (port-weights without a checkout)."""

    def __init__(self, params: dict):
        self.params = params


def _pynative_se_block() -> None:
    """SE_ResNeXt50's SEBlock.construct unpacks a 4-d shape into two names (`b, c = self.shape(x)`), which GRAPH
    mode tolerates and PYNATIVE rejects; compiled again in memory with `[:2]`, it computes the same."""
    module = sys.modules.get("src.utils.cunstom_op")
    block = getattr(module, "SEBlock", None)
    if block is None:
        return
    try:
        source = textwrap.dedent(inspect.getsource(block.construct))
    except (OSError, TypeError):
        return
    line = "b, c = self.shape(x)\n"
    if line in source:
        scope: dict = {}
        exec(compile(source.replace(line, "b, c = self.shape(x)[:2]\n"), inspect.getsourcefile(block), "exec"),
             vars(module), scope)
        block.construct = scope["construct"]


def _float32(net: nn.Cell) -> list[str]:
    """Cells the network runs at float16 (a mixed-precision flag, not weights) run at float32, as the port does."""
    lowered = []
    for name, cell in net.cells_and_names():
        if cell.get_flags().get("fp16"):
            cell.to_float(ms.float32)  # the cell and everything in it
            lowered.append(name)
    return lowered


class ModelzooRunner(MindSporeSource):
    library = "the MindSpore model zoo"

    def __init__(self):
        self.name = ""
        self.folder: str | None = None  # the model's folder in the checkout; None: read checkpoints only
        self.factory = None
        self.lowered: list[str] = []  # cells run at float32 instead of the network's float16
        self.training: Training | None = None  # the recipe's optimizer, for save_weights

    def check(self, job: SourceJob) -> None:
        self.name, self.folder, self.training = job.model, job.checkout, job.training
        if job.model not in NETWORKS:
            raise PortingError(f"the model zoo has no network '{job.model}' here; known: {', '.join(NETWORKS)}")

    def _factory(self, name: str):
        if self.factory is None:
            net = NETWORKS[name]
            if self.folder not in sys.path:  # (a kept worker's earlier job put it there)
                sys.path.insert(0, self.folder)
            try:
                module = importlib.import_module(net.module)
            except Exception as exc:  # noqa: BLE001 - the user's checkout: any error is one line naming it
                raise PortingError(f"cannot import {net.module} from the model-zoo checkout '{self.folder}': "
                                   f"{type(exc).__name__}: {first_line(exc)}") from None
            _pynative_se_block()
            self.factory = getattr(module, net.factory, None)
            if self.factory is None:
                raise PortingError(f"'{self.folder}/{net.file}' has no {net.factory}: not the model zoo's {name}")
        return self.factory

    def build(self, name: str, num_classes: int):
        net = NETWORKS[name]
        model = self._factory(name)(**{**net.kwargs, net.classes_arg: num_classes})
        self.lowered = _float32(model)
        model.set_train(False)
        return model

    def load_file(self, path: str, name: str, num_classes: int | None):
        params = read_checkpoint(path, f"model-zoo {name}")
        if META_KEY in params:
            raise PortingError(f"'{path}' is a checkpoint porting wrote, not the model zoo's: it needs no porting "
                               f"(`porting export` and `porting eval` read it as it is)")
        head = NETWORKS[name].head
        if head not in params:
            example = next(iter(params), "nothing")
            raise PortingError(f"'{path}' has no '{head}' (the model zoo {name}'s classifier): not a model-zoo "
                               f"{name} checkpoint (it holds {len(params)} tensors, e.g. '{example}')")
        num_classes = num_classes or int(params[head].shape[0])
        if self.folder is None:
            return Weights({k: v.asnumpy() for k, v in params.items()})
        model = self.build(name, num_classes)
        check_fits(path, f"the model zoo's {name} ({num_classes} classes)",
                   {k: tuple(v.shape) for k, v in params.items()}, shapes(model))
        ms.load_param_into_net(model, params, strict_load=True)
        return model

    def download(self, job: SourceJob):
        raise PortingError(f"the model zoo publishes no download porting can fetch: pass --weights FILE with the "
                           f"{job.model} .ckpt its train.py saved")

    def inference_info(self, model) -> dict:
        head = NETWORKS[self.name].head
        if isinstance(model, Weights):
            return {"num_classes": int(model.params[head].shape[0])}
        model.set_train(False)
        info = {"num_classes": int(shapes(model)[head][0])}
        if self.lowered:
            info["float32_cells"] = self.lowered
        return info

    def tensors(self, model) -> dict[str, np.ndarray]:
        return dict(model.params) if isinstance(model, Weights) else super().tensors(model)

    def save_weights(self, model, path: str, config: PretrainedConfig) -> None:
        """The checkpoint the model zoo's train.py saves: its ModelCheckpoint writes the training network, so the
        optimizer's state (the recipe's Momentum or RMSProp) and the step counters come with the weights. Without
        a training recipe (export --to), the network alone: what its eval.py loads with nothing left unused."""
        if self.training is None:
            ms.save_checkpoint(model, path)
            return
        ms.save_checkpoint(_training_network(self.training, model), path, append_dict={"epoch_num": 1, "step_num": 1})


def _training_network(recipe: Training, net: nn.Cell) -> nn.Cell:
    """net wrapped as train.py wraps it: loss, the recipe's optimizer with its loss scale, one training cell."""
    lr = ms.Tensor(np.full(4, recipe.lr, np.float32))  # a per-step schedule, as train.py passes it
    params = net.trainable_params()
    if recipe.optimizer == "rmsprop":
        opt = nn.RMSProp(params, lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                         epsilon=recipe.rmsprop_epsilon, weight_decay=recipe.weight_decay, loss_scale=recipe.loss_scale)
    else:
        opt = nn.Momentum(params, lr, recipe.momentum, recipe.weight_decay, recipe.loss_scale)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    return nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt, sens=recipe.loss_scale)

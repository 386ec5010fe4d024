"""timm / PyTorch side of a source worker. Imports torch and timm only."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from porting.errors import PortingError, first_line
from porting.heads import Head, HeadLayer
from porting.job import SourceJob
from porting.sources.base import SourceRunner, Tensor, library_smoothing
from porting.sources.head_option import check_head, resolved_head
from porting.sources.timm import TIMM
from porting.threads import cpu_threads

torch.set_num_threads(cpu_threads())
BN_ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "mean", "running_var": "var"}


def _timm():
    import timm  # imported lazily: timm pulls torchvision, which is slow to import
    return timm


def _classifier(timm, name: str) -> str:
    """The module path of the model's classifier ('fc', 'last_linear', 'head.fc'), as its pretrained config says."""
    cfg = timm.models.get_pretrained_cfg(name)
    return (cfg.classifier if cfg else None) or "fc"


ACTIVATIONS = {"relu": lambda alpha: nn.ReLU(), "relu6": lambda alpha: nn.ReLU6(), "gelu": lambda alpha: nn.GELU(),
               "silu": lambda alpha: nn.SiLU(), "sigmoid": lambda alpha: nn.Sigmoid(), "tanh": lambda alpha: nn.Tanh(),
               "softmax": lambda alpha: nn.Softmax(dim=-1), "leaky_relu": nn.LeakyReLU, "elu": nn.ELU}


def _module(layer: HeadLayer, width: int) -> nn.Module:
    """A head layer as PyTorch's own module, as a user writes it in an nn.Sequential."""
    if layer.kind == "dense":
        return nn.Linear(width, layer.units, bias=layer.bias)
    if layer.kind == "batchnorm":  # PyTorch's momentum weighs the batch (MindSpore's, the moving value)
        return nn.BatchNorm1d(width, eps=layer.eps, momentum=1.0 - layer.momentum)
    if layer.kind == "dropout":
        return nn.Dropout(layer.rate)
    return ACTIVATIONS[layer.activation](layer.alpha)


def _sequential(head: Head) -> nn.Sequential:
    return nn.Sequential(*(_module(layer, width) for layer, width in zip(head.layers, head.widths())))


def _read_state_dict(timm, path: str, model_name: str) -> dict:
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    if not path.endswith(TIMM.weight_suffixes):
        *others, last = TIMM.weight_suffixes
        raise PortingError(f"weights file '{path}': expected a {', '.join(others)} or {last} file for timm")
    try:
        # timm's own loader: safetensors for .safetensors, torch.load(weights_only=True) otherwise, and it
        # unwraps {'state_dict': ...} / {'model': ...} and 'module.' prefixes.
        state = timm.models.load_state_dict(path, weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types; the user needs one line
        raise PortingError(f"cannot read '{path}' as timm {model_name} weights: {first_line(exc)}") from None
    if not isinstance(state, dict) or not state:
        raise PortingError(f"'{path}' holds no state dict of tensors (got {type(state).__name__})")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise PortingError(f"'{path}': entry '{key}' is a {type(value).__name__}, not a tensor")
    return state


def _check_tag(timm, name: str) -> None:
    """timm:MODEL.TAG: the tag must be one of timm's pretrained tags for MODEL."""
    if "." in name:
        base = name.split(".", 1)[0]
        known = timm.list_pretrained(base + ".*")
        if name not in known:
            raise PortingError(f"timm has no pretrained tag '{name.split('.', 1)[1]}' for {base}; its tags: "
                               f"{', '.join(known) or 'none'}")


class TimmRunner(SourceRunner):
    library = "timm"
    asked: dict | None = None  # the job's head (Head.to_dict), when the model's is not timm's standard one ...
    head: Head | None = None  # ... over the backbone's width, once a model is built

    def check(self, job: SourceJob) -> None:
        _check_tag(_timm(), job.model)  # 'xception65' or, with timm's pretrained tag, 'xception65.tf_in1k'
        self.asked = job.head

    def build(self, name: str, num_classes: int):
        timm = _timm()
        if self.asked is None:
            return timm.create_model(name, pretrained=False, num_classes=num_classes)
        # the user's model: timm's without its classifier (num_classes=0), then theirs at the classifier's place
        model = timm.create_model(name, pretrained=False, num_classes=0, global_pool=self.asked.get("pooling", "avg"))
        self.head = resolved_head(self.asked, int(model.num_features), f"timm {name}")
        if self.head.layers:  # also layers without a Linear (a feature extractor ending in bn, relu...)
            model.set_submodule(_classifier(timm, name), _sequential(self.head))
            model.num_classes = self.head.num_classes
        return model

    def load_file(self, path: str, name: str, num_classes: int | None):
        timm = _timm()
        if os.path.isdir(path):
            if self.asked is not None:
                raise PortingError(f"'{path}' is a timm model folder, whose config.json builds timm's standard "
                                   f"classifier: a head of your own is read from a .safetensors or .pth state dict")
            return _load_folder(timm, path, name, num_classes)
        state = _read_state_dict(timm, path, name)
        have = {k: tuple(v.shape) for k, v in state.items()}
        classifier = _classifier(timm, name)
        weight = have.get(f"{classifier}.weight", ())
        model = self.build(name, num_classes or (weight[0] if len(weight) == 2 else 1000))
        # names and shapes against one state_dict(), before load_state_dict can raise on a size mismatch; a head
        # other than the one built is one line saying what the file holds there
        check_head(path, f"timm {name}", have, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                   classifier, self.head)
        model.load_state_dict(state, strict=True)
        return model

    def download(self, job: SourceJob):
        where = f"hf-hub:{job.hub}" if job.hub else job.model
        try:
            return _timm().create_model(where, pretrained=True), {}
        except Exception as exc:
            raise PortingError(
                f"could not download timm's pretrained {where} weights ({type(exc).__name__}); offline? "
                f"pass --weights FILE with a local .pth/.bin/.safetensors") from None

    def inference_info(self, model) -> dict:
        model.eval()
        cfg = model.pretrained_cfg
        head = {"head": self.head.to_dict()} if self.head else {}  # a head of the user's own (SourceInfo.head)
        # the preprocessing of the tag the model was built with (the named one, else timm's default tag)
        return {"num_classes": model.num_classes, **head, "pretrained_tag": str(cfg.get("tag") or ""),
                "pretrained_cfg": {
                    "input_size": list(cfg.get("input_size", (3, 299, 299))), "mean": list(cfg.get("mean", ())),
                    "std": list(cfg.get("std", ())), "interpolation": cfg.get("interpolation"),
                    "crop_pct": cfg.get("crop_pct"),
                    "test_input_size": list(cfg.get("test_input_size") or []) or None,
                    "test_crop_pct": cfg.get("test_crop_pct"),
                    **({"label_names": list(cfg["label_names"])} if cfg.get("label_names") else {})}}

    def parameters(self, model) -> list[Tensor]:
        out = []
        for path, module in model.named_modules():
            prefix = f"{path}." if path else ""
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                out += [Tensor(prefix + n, tuple(getattr(module, n).shape), role, module=path)
                        for n, role in BN_ROLES.items()]
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                out.append(Tensor(prefix + "weight", tuple(module.weight.shape), "weight", module.weight[0].numel()))
                if module.bias is not None:
                    out.append(Tensor(prefix + "bias", tuple(module.bias.shape), "bias"))
        known = {t.name for t in out}
        return out + [Tensor(n, tuple(p.shape), None) for n, p in model.named_parameters() if n not in known]

    @torch.no_grad()
    def assign(self, model, values: dict[str, np.ndarray]) -> None:
        state = model.state_dict()
        for name, value in values.items():
            state[name].copy_(torch.from_numpy(value))

    def modules(self, model) -> dict:
        return dict(model.named_modules())

    def on_output(self, module, fn):
        # clone: timm's in-place ReLUs and `x += skip` would overwrite the tensor later
        return module.register_forward_hook(lambda _m, _inputs, output: fn(output.detach().clone().numpy()))

    def on_input(self, module, fn):
        return module.register_forward_pre_hook(lambda _m, inputs: fn(inputs[0].detach().clone().numpy()))

    @torch.no_grad()
    def run(self, model, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            torch.manual_seed(0)  # any dropout in the pass (a head's) draws the same masks every run
        model.train(training)
        try:
            return model(torch.from_numpy(x)).numpy()
        finally:
            model.eval()

    def tensors(self, model) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}

    # -------------------------------------------------------------------- parity --train-step (README)

    def float64(self, model):
        import copy

        return copy.deepcopy(model).double()

    def gradients(self, model, x, labels, step):
        """Forward in train mode (dropout off, BN on batch statistics with the step's momentum), the recipe's
        label-smoothed cross entropy, torch autograd."""
        import torch.nn.functional as F

        model.train()
        bns, counts = {}, {}
        for path, module in model.named_modules():
            if isinstance(module, nn.Dropout):
                module.eval()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = 1.0 - step.bn_momentum  # PyTorch's: moving = (1 - m) moving + m batch
                bns[f"{path}.running_var"] = module
        if hasattr(model, "drop_rate"):
            model.drop_rate = 0.0  # timm's heads apply F.dropout with it
        handles = [m.register_forward_pre_hook(lambda _m, i, p=p: counts.__setitem__(p, i[0][:, 0].numel()))
                   for p, m in bns.items()]
        model.zero_grad(set_to_none=True)
        try:
            logits = model(torch.from_numpy(x).to(next(model.parameters()).dtype))
        finally:
            for handle in handles:
                handle.remove()
        classes = logits.shape[-1]
        loss = F.cross_entropy(logits, torch.from_numpy(labels),
                               label_smoothing=library_smoothing(step.label_smooth_factor, classes))
        loss.backward()
        grads = {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
        model.eval()
        return float(loss), grads, counts

    def optimizer_step(self, model, grads, step):
        """torch.optim.SGD for the recipe's Momentum (MindSpore's v = m v + g, w -= lr v; L2 in the gradient of
        conv / dense weights only); RMSProp by hand: torch's starts its mean square at 0 and adds epsilon outside
        the root (MindSpore's, as TensorFlow 1's: 1 and inside)."""
        decayed = {f"{path}.weight" for path, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        params = {n: p for n, p in model.named_parameters() if n in grads}
        for n, p in params.items():
            p.grad = torch.from_numpy(np.ascontiguousarray(grads[n])).to(p.dtype)
        decay = [p for n, p in params.items() if step.decay_bn or n in decayed]
        rest = [p for n, p in params.items() if not (step.decay_bn or n in decayed)]
        groups = [{"params": decay, "weight_decay": step.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        with torch.no_grad():
            if step.optimizer == "momentum":
                torch.optim.SGD(groups, lr=step.lr, momentum=step.momentum).step()
            else:
                for group in groups:
                    for p in group["params"]:
                        g = p.grad + group["weight_decay"] * p
                        mean_square = step.rmsprop_decay + (1 - step.rmsprop_decay) * g * g  # from 1
                        p -= step.lr * g / torch.sqrt(mean_square + step.rmsprop_epsilon)  # moment from 0

    def save_weights(self, model, path: str) -> None:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if not path.endswith(TIMM.weight_suffixes) and self.head is not None:
            raise PortingError(f"'{path}': a timm model folder's config.json describes timm's standard classifier "
                               f"only; write a head of your own as a .safetensors or .pth state dict")
        if not path.endswith(TIMM.weight_suffixes):  # a folder timm's `local-dir:` loads
            _save_folder(_timm(), model, path, self.export_config)
        elif path.endswith(".safetensors"):
            from safetensors.torch import save_file
            save_file(state, path)
        else:
            torch.save(state, path)

    def preprocess(self, model, images: list[str], size: int, resize: int):
        """timm's own evaluation transform for the model's pretrained config (timm.data.create_transform: its
        crop_pct decides the resize)."""
        from PIL import Image

        timm = _timm()
        config = timm.data.resolve_data_config({}, model=model)
        config["input_size"] = (3, size, size)
        transform = timm.data.create_transform(**config)
        arrays = [transform(Image.open(path).convert("RGB")).numpy() for path in images]
        return np.stack(arrays).astype(np.float32), "timm.data.create_transform: " + " -> ".join(
            " ".join(str(t).split()) for t in transform.transforms)


def _save_folder(timm, model, path: str, config: dict) -> None:
    """timm's own saver for the Hub layout (config.json + model.safetensors): the architecture, the class count,
    the preprocessing in its pretrained config, and the class names where the checkpoint has them."""
    size = int(config.get("input_size") or model.pretrained_cfg.get("input_size", (3, 299, 299))[-1])
    data = {"input_size": (3, size, size), **{k: config[k] for k in ("mean", "std", "crop_pct", "interpolation",
                                                                     "test_crop_pct") if config.get(k) is not None}}
    if config.get("test_input_size"):  # the size timm evaluates these weights at (racm_in1k: 288, trained at 224)
        data["test_input_size"] = (3, int(config["test_input_size"]), int(config["test_input_size"]))
    labels = {"label_names": list(config["label_names"])} if config.get("label_names") else {}
    timm.models.save_for_hf(model, path, model_config=labels, safe_serialization=True, data_config=data)


def _load_folder(timm, path: str, name: str, num_classes: int | None):
    """`timm.create_model("local-dir:PATH", pretrained=True)`, the way a timm user loads the folder."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise PortingError(f"'{path}' is a folder without config.json: not a timm model folder")
    try:
        model = timm.create_model(f"local-dir:{path}", pretrained=True)
    except Exception as exc:
        raise PortingError(f"timm cannot load 'local-dir:{path}': {first_line(exc)}") from None
    architecture = model.pretrained_cfg.get("architecture")
    if architecture != name.split(".", 1)[0]:
        raise PortingError(f"'{path}' holds a timm {architecture}, not a {name}")
    if num_classes and model.num_classes != num_classes:
        raise PortingError(f"'{path}' holds {model.num_classes} classes, not {num_classes}")
    return model

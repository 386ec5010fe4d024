"""timm / PyTorch side of a source worker. Imports torch and timm only."""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from porting.errors import PortingError, check_fits, first_line
from porting.runners.inputs import make_images

torch.set_num_threads(max(1, os.cpu_count() or 1))


def _timm():
    import timm  # imported lazily: timm pulls torchvision, which is slow to import
    return timm


def _classifier_weight(timm, name: str) -> str:
    cfg = timm.models.get_pretrained_cfg(name)
    head = (cfg.classifier if cfg else None) or "fc"
    return f"{head}.weight"


def _read_state_dict(timm, path: str, model_name: str) -> dict:
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    if not path.endswith((".pth", ".pt", ".bin", ".safetensors")):
        raise PortingError(f"weights file '{path}': expected a .pth, .pt, .bin or .safetensors file for timm")
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


def load(job: dict):
    timm = _timm()
    name = job["model"]  # 'xception65' or, with timm's pretrained tag, 'xception65.tf_in1k'
    _check_tag(timm, name)
    info: dict = {}
    if job.get("weights"):
        state = _read_state_dict(timm, job["weights"], name)
        head = _classifier_weight(timm, name)
        num_classes = job.get("num_classes") or (state[head].shape[0] if head in state else 1000)
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
        # names and shapes against one state_dict(), before load_state_dict can raise on a size mismatch
        check_fits(job["weights"], f"timm {name} ({num_classes} classes)",
                   {k: tuple(v.shape) for k, v in state.items()},
                   {k: tuple(v.shape) for k, v in model.state_dict().items()})
        model.load_state_dict(state, strict=True)
    elif job.get("untrained"):  # the library's own initialisation: enough for names and shapes
        model = timm.create_model(name, pretrained=False, num_classes=job.get("num_classes") or 1000)
    elif job.get("seed") is not None:
        model = timm.create_model(name, pretrained=False, num_classes=job.get("num_classes") or 1000)
        randomize(model, int(job["seed"]), job["input_size"], job["mean"], job["std"],
                  **(job.get("random_init") or {}))
    else:
        where = f"hf-hub:{job['hub']}" if job.get("hub") else name
        try:
            model = timm.create_model(where, pretrained=True)
        except Exception as exc:
            raise PortingError(
                f"could not download timm's pretrained {where} weights ({type(exc).__name__}); offline? "
                f"pass --weights FILE with a local .pth/.bin/.safetensors") from None
    model.eval()
    cfg = model.pretrained_cfg
    # the preprocessing of the tag the model was built with (the named one, else timm's default tag)
    info.update(num_classes=model.num_classes, pretrained_tag=str(cfg.get("tag") or ""), pretrained_cfg={
        "input_size": list(cfg.get("input_size", (3, 299, 299))), "mean": list(cfg.get("mean", ())),
        "std": list(cfg.get("std", ())), "interpolation": cfg.get("interpolation"),
        "crop_pct": cfg.get("crop_pct"), "test_input_size": list(cfg.get("test_input_size") or []) or None,
        "test_crop_pct": cfg.get("test_crop_pct")})
    return model, info


@torch.no_grad()
def randomize(model: nn.Module, seed: int, size: int, mean, std, bn_beta_mean: float = 0.0) -> None:
    """Seeded synthetic weights for every tensor, BN running statistics included, with live activations.

    Weights are He-scaled so signals neither vanish nor explode; BN statistics are then measured on an
    image-like batch (so each BN normalises what it really sees) and perturbed, so neither mean 0 / var 1
    nor the measured values are what a mapping bug could hide behind. `bn_beta_mean` (a spec's random_init)
    shifts every BN beta: deep conv-BN-ReLU stacks without residuals (Inception-v4) amplify fp32 rounding
    ~1.5x per block at mean 0 (timm fp32 vs fp64: 8e-5 relative), a positive mean keeps them conditioned.
    """
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std_=1.0):
        return torch.randn(shape, generator=g) * std_

    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.weight.copy_(uniform(module.weight.shape, 0.5, 1.5))
            module.bias.copy_(normal(module.bias.shape, 0.2) + bn_beta_mean)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(normal(module.weight.shape, math.sqrt(2.0 / fan_in)))
            if module.bias is not None:
                module.bias.copy_(normal(module.bias.shape, 0.1))
    model.train()
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: after one batch the stats are that batch's
    model(torch.from_numpy(make_images(seed, 4, size, mean, std)))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        bn.running_var.mul_(uniform(bn.running_var.shape, 0.8, 1.25))
        bn.running_mean.add_(normal(bn.running_mean.shape, 0.1) * bn.running_var.sqrt())
    model.eval()


def tensors(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: str) -> None:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save(state, path)


@torch.no_grad()
def forward(model: nn.Module, x: np.ndarray, taps: list[str]):
    """Logits plus the outputs of the named modules, and the order in which those modules ran."""
    modules = dict(model.named_modules())
    missing = [t for t in taps if t not in modules]
    if missing:
        raise PortingError(f"timm model has no module(s) {', '.join(missing)}")
    outputs, order, handles = {}, [], []

    def hook(name):
        def fn(_module, _inputs, output):
            # clone: timm's in-place ReLUs and `x += skip` would overwrite the tensor later
            outputs[name] = output.detach().clone().numpy()
            order.append(name)
        return fn

    for name in taps:
        handles.append(modules[name].register_forward_hook(hook(name)))
    try:
        outputs["logits"] = model(torch.from_numpy(x)).numpy()
    finally:
        for h in handles:
            h.remove()
    return outputs, order


def preprocess(model: nn.Module, images: list[str], size: int, resize: int):
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

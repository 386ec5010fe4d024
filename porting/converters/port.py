"""port-weights: the source's tensors -> weight map -> MindSpore parameters (+ model card); the caller writes
the .ckpt (porting.checkpoint) and runs the source worker (porting.sources.jobs)."""
from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from porting.card import ModelCard
from porting.errors import PortingError
from porting.heads import Head
from porting.job import PretrainedConfig, SourceInfo, SourceResult
from porting.sources import library
from porting.specs import ModelSpec, build_weight_map, spec_card
from porting.version import __version__


@dataclass
class Ported:
    params: dict[str, np.ndarray]
    card: ModelCard


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_weights(weights: str | None, seed: int | None, info: SourceInfo) -> str:
    if weights:
        return f"file:{Path(weights).name}"
    if seed is not None:
        return f"random-init:{seed}"
    return f"pretrained:{info.pretrained_tag}"


@functools.lru_cache(maxsize=8)
def _arch_shapes(arch: str, config_json: str, num_classes: int, head: Head | None = None,
                 classifier: str = "fc") -> dict[str, tuple[int, ...]]:
    from porting import archs

    net = archs.build(arch, json.loads(config_json), num_classes, head, classifier)
    return {name: tuple(p.shape) for name, p in net.parameters_and_names()}


def target_shapes(spec: ModelSpec, num_classes: int, net=None, head: Head | None = None) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the MindSpore model for `num_classes`: of `net`, or of a network built once per
    variant (and head) and process. With the user's own `head`, the head says the classes."""
    if head is not None:
        return ({name: tuple(p.shape) for name, p in net.parameters_and_names()} if net is not None else
                dict(_arch_shapes(spec.arch, json.dumps(spec.arch_config, sort_keys=True), head.num_classes, head,
                                  spec.head)))
    if net is not None:
        shapes = {name: tuple(p.shape) for name, p in net.parameters_and_names()}
    else:
        shapes = dict(_arch_shapes(spec.arch, json.dumps(spec.arch_config, sort_keys=True), spec.num_classes))
    # every tensor of the head with a row per class: the Dense's weight and bias, and a BN over the classes
    # where the head has one (the model zoo's InceptionV4)
    for name, shape in shapes.items():
        if name.startswith(spec.head + ".") and shape and shape[0] == spec.num_classes:
            shapes[name] = (num_classes, *shape[1:])
    return shapes


def check_finite(tensors: dict[str, np.ndarray], origin: str, allow: bool = False) -> dict[str, int]:
    """{tensor name: count of NaN/Inf values}; any at all is refused (a port would carry them silently)
    unless `allow`."""
    bad = {}
    for name, value in tensors.items():
        if np.issubdtype(value.dtype, np.floating):
            count = int(value.size - np.count_nonzero(np.isfinite(value)))
            if count:
                bad[name] = count
    if bad and not allow:
        name, count = next(iter(bad.items()))
        raise PortingError(f"'{origin}': source tensor '{name}' {list(tensors[name].shape)} has {count} "
                           f"non-finite value(s) (NaN/Inf)"
                           + (f", and {len(bad) - 1} more tensor(s) have some" if len(bad) > 1 else "")
                           + "; refusing to port them (--allow-nonfinite ports them anyway)")
    return bad


def weight_map_for(spec: ModelSpec, head: Head | None = None):
    """The spec's weight map; with the user's own `head`, its classifier's rows and layers are the head's, named by
    the source library's convention (porting.weight_maps.heads)."""
    wm = build_weight_map(spec)
    if head is None:
        return wm
    from porting.weight_maps.heads import with_head

    return with_head(wm, head, library(spec.source).convention, spec.head)


def source_head(spec: ModelSpec, source: SourceResult, head: Head | None = None) -> Head | None:
    """The head the port builds: the one the source's worker says its model has (Keras reads it from the file,
    timm and PaddleClas echo the job's after checking it against the file), which must be `head` where one was
    given; None: the library's standard classifier."""
    found = Head.from_dict(source.info.head, spec.id) if source.info.head is not None else None
    if head is not None and found is not None and found != head:
        raise PortingError(f"{spec.id}: the source model's head is {found.describe()}, not {head.describe()}")
    return head or found


def map_source(spec: ModelSpec, source: SourceResult, origin: str, weight_map=None, net=None,
               head: Head | None = None) -> dict[str, np.ndarray]:
    """Apply the spec's weight map (or `weight_map`) to the source tensors, checked against the real model."""
    wm = weight_map or weight_map_for(spec, head)
    return wm.apply(source.tensors, target_shapes(spec, int(source.info.num_classes), net, head), context=origin)


def card_for(spec: ModelSpec, source: SourceResult, num_classes: int, head_reinitialized: bool) -> ModelCard:
    """The spec's card (porting.specs.spec_card) with what this port adds: the source library's own preprocessing
    config where it states one, and the provenance."""
    # a library that states its weights' preprocessing (timm's pretrained config): it wins over the spec's defaults
    # where it states a value
    cfg = source.info.pretrained_cfg if library(spec.source).states_preprocessing else PretrainedConfig()
    stated = {"mean": cfg.mean, "std": cfg.std, "interpolation": cfg.interpolation, "crop_pct": cfg.crop_pct,
              "input_size": cfg.input_size}
    pre = {key: value for key, value in stated.items() if value not in (None, [], "")}
    # timm evaluates some tags at a larger size than they train at (racm_in1k: 288 and crop 0.95 for 224)
    if cfg.test_input_size:
        pre.update(test_input_size=cfg.test_input_size,
                   test_crop_pct=cfg.test_crop_pct or cfg.crop_pct or spec.crop_pct)
    return spec_card(spec).replace(
        tool_version=__version__, num_classes=num_classes, source_num_classes=int(source.info.num_classes),
        head_reinitialized=head_reinitialized, weights=describe_weights(source.weights, source.seed, source.info),
        source_sha256=sha256(source.weights) if source.weights else None, pretrained_tag=source.info.pretrained_tag,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **pre)


def drop_background(spec: ModelSpec, params: dict[str, np.ndarray], src_classes: int, keep: bool,
                    num_classes: int | None, log) -> tuple[int, dict | None]:
    """TF-slim style checkpoints (e.g. Cadene's / TF-slim Inception-v4) have 1001 outputs, background at index 0.

    For a 1000-class family, drop row 0 of the head's weight and bias unless `keep`; returns the class count
    the ported head has and what the metadata records (None when the source head is not such a head).
    """
    if not (spec.num_classes == 1000 and src_classes == 1001) or num_classes not in (None, 1000, 1001):
        return src_classes, None
    if keep or num_classes == 1001:
        log(f"source head '{spec.head}' has 1001 outputs: index 0 is the TF-slim background class; kept "
            f"(--keep-background): output i is ImageNet class i - 1")
        return src_classes, {"index": 0, "kept": True}
    for suffix in ("weight", "bias"):
        key = f"{spec.head}.{suffix}"
        if key in params:
            params[key] = params[key][1:]
    log(f"source head '{spec.head}' has 1001 outputs: dropped the TF-slim background class (index 0) from its "
        f"weight and bias, leaving the 1000 ImageNet classes; pass --keep-background to keep it")
    return 1000, {"index": 0, "kept": False}


def port(spec: ModelSpec, source: SourceResult, *, num_classes: int | None = None, keep_background: bool = False,
         allow_nonfinite: bool = False, weight_map=None, net=None, head: Head | None = None,
         log=lambda msg: None) -> Ported:
    """The source model's tensors (from its worker: sources.jobs) -> MindSpore parameters and metadata,
    through the spec's weight map (or `weight_map`), checked against `net` when given (else against a network
    built once per variant). `head`: the user's own head, where the source's model has one (else the one its
    worker reports, if any: source_head); `weight_map`, when given, already has its rows."""
    head = source_head(spec, source, head)
    if head is not None:
        return _port_custom_head(spec, source, head, num_classes=num_classes, allow_nonfinite=allow_nonfinite,
                                 weight_map=weight_map, net=net, log=log)
    origin = source.weights or f"{spec.id} ({describe_weights(None, source.seed, source.info)})"
    log(f"mapping {len(source.tensors)} source tensors with weight map {spec.arch}/{spec.weight_map}")
    lib = library(spec.source)
    if lib.pretrained_tags and source.weights and not spec.tag and source.info.pretrained_tag:
        log(f"warning: recorded the preprocessing of {lib.title}'s default tag {spec.name}."
            f"{source.info.pretrained_tag} (crop {source.info.pretrained_cfg.crop_pct}); for another tag's weights "
            f"name it: {spec.source}:{spec.name}.TAG")
    if source.info.float32_cells:  # the model zoo's SE_ResNeXt50 classifier
        log(f"note: the source network flags {', '.join(source.info.float32_cells)} to run in float16; its worker "
            f"ran {'it' if len(source.info.float32_cells) == 1 else 'them'} in float32, as the port computes")
    bad = check_finite(source.tensors, origin, allow=allow_nonfinite)
    params = map_source(spec, source, origin, weight_map=weight_map, net=net)
    if bad:
        log(f"warning: porting {sum(bad.values())} NaN/Inf value(s) in {len(bad)} tensor(s) (--allow-nonfinite)")
    src_classes, background = drop_background(spec, params, int(source.info.num_classes), keep_background,
                                              num_classes, log)
    head_reinit = num_classes is not None and num_classes != src_classes
    if head_reinit:
        from porting import archs
        from porting.archs.layers import init_head

        head_net = archs.build(spec.arch, spec.arch_config, num_classes)
        init_head(head_net, spec.head, num_classes, seed=source.seed or 0)
        for name, p in head_net.parameters_and_names():
            if name.startswith(spec.head + "."):
                params[name] = p.asnumpy()
        log(f"re-initialised head '{spec.head}' for {num_classes} classes (source has {src_classes}): "
            f"fine-tune before use")
    final_classes = num_classes if head_reinit else src_classes
    card = card_for(spec, source, final_classes, head_reinit).replace(
        background_class=background,  # {"index": 0, "kept": bool} for a 1001-class source head
        nonfinite_values=bad or None)  # only with allow_nonfinite: the checkpoint says what it carries
    return Ported(params, card)


def added_dense_name(head: Head, classifier: str) -> str:
    """The source's name for a dense layer added after `head`'s layers (--num-classes on a feature extractor): as
    an nn.Sequential at the classifier's attribute numbers it, or Keras's name for a classifier."""
    if head.layout.startswith("keras"):
        taken = {layer.name for layer in head.layers}
        return next(name for name in ("predictions", *(f"predictions_{k}" for k in range(1, len(taken) + 2)))
                    if name not in taken)
    prefix = head.layers[0].name.rsplit(".", 1)[0] if head.layers and "." in head.layers[0].name else classifier
    return f"{prefix}.{len(head.layers)}"


def _port_custom_head(spec: ModelSpec, source: SourceResult, head: Head, *, num_classes: int | None,
                      allow_nonfinite: bool, weight_map, net, log) -> Ported:
    """port() of a model with the user's own head: its rows through the source's convention; `num_classes` replaces
    the head's last dense layer only (a feature extractor gets one), drawn anew."""
    origin = source.weights or f"{spec.id} ({describe_weights(None, source.seed, source.info)})"
    log(f"mapping {len(source.tensors)} source tensors with weight map {spec.arch}/{spec.weight_map} and the "
        f"model's own head: {head.describe()}")
    bad = check_finite(source.tensors, origin, allow=allow_nonfinite)
    params = map_source(spec, source, origin, weight_map=weight_map, net=net, head=head)
    if bad:
        log(f"warning: porting {sum(bad.values())} NaN/Inf value(s) in {len(bad)} tensor(s) (--allow-nonfinite)")
    final = head
    if num_classes is not None and num_classes != head.num_classes:
        final = head.with_classes(num_classes, added_dense_name(head, spec.head))
        params = {**{k: v for k, v in params.items() if not k.startswith(f"{spec.head}.{final.last_dense}.")},
                  **new_classifier(spec.arch, spec.arch_config, final, spec.head, seed=source.seed or 0)}
        log(f"re-initialised the head's last dense layer '{spec.head}.{final.last_dense}' for {num_classes} classes "
            + (f"(source has {head.num_classes})" if head.num_classes else "(the source is a feature extractor)")
            + ": fine-tune before use")
    card = card_for(spec, source, final.num_classes, final is not head).replace(
        custom_head=final, nonfinite_values=bad or None)
    return Ported(params, card)


def new_classifier(arch: str, config: dict, head: Head, classifier: str = "fc", seed: int = 0) -> dict[str, np.ndarray]:
    """The freshly drawn parameters of `head`'s last dense layer (layers.init_head), by MindSpore name."""
    from porting import archs
    from porting.archs.layers import init_head

    cell = f"{classifier}.{head.last_dense}"
    net = archs.build(arch, config, head.num_classes, head, classifier)
    init_head(net, cell, head.num_classes, seed=seed)
    return {name: p.asnumpy() for name, p in net.parameters_and_names() if name.startswith(cell + ".")}

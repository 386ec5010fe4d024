"""The registry of source libraries: one framework-free record per library, which every decision that depends on
the library reads (as `porting.archs.registry` holds the architectures). Each library's package
(porting/sources/<library>/__init__.py) registers its record with `register_source`; importing porting.sources
imports every package, so importing it fills the table. No framework here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from porting.errors import PortingError
from porting.heads import Head
from porting.weight_maps.conventions import Convention

if TYPE_CHECKING:
    from porting.archs.registry import ModelSpec


@dataclass(frozen=True)
class Checkout:
    """Where the code of a library that is a checkout of scripts, not an installed package, is: the model zoo's
    (--modelzoo DIR, else an environment variable). Its code is MindSpore and its weights a .ckpt, so without a
    checkout porting still reads them (port-weights) and writes them (export --to, unproven)."""

    folder: Callable[[str, str | os.PathLike], Path]  # (model name, a checkout) -> the model's folder, checked
    find: Callable[[ModelSpec, bool], str | None]  # the spec's folder, else the environment's; `required`: else an error


@dataclass(frozen=True)
class SourceLibrary:
    name: str  # the SOURCE of SOURCE:MODEL specs ('keras')
    title: str  # how messages name it ('Keras (keras.applications)')
    runner: str  # 'module:Class' of its SourceRunner, imported in its worker process alone
    convention: Convention  # how it names and lays out a layer's tensors (porting.weight_maps.conventions)
    resize_backend: str  # how it resizes images (porting.card.RESIZE_BACKENDS), unless a spec says otherwise
    weight_suffixes: tuple[str, ...]  # the weights files its runner reads (--weights)
    export_suffixes: tuple[str, ...]  # what `export --to` writes ("": a folder, timm's local-dir layout)
    # what it can do, and how it differs
    train_step: bool = False  # parity --train-step runs one training step of its own model
    biased_bn_variance: str = ""  # why its BN running variance takes the biased batch variance ("": the unbiased)
    states_preprocessing: bool = False  # its worker states the preprocessing of the weights it loaded (SourceInfo
    #                                     pretrained_cfg), which a port records over the spec's defaults
    pretrained_tags: bool = False  # a model name may carry its pretrained tag (timm:xception65.tf_in1k)
    # ... and the tags of each of its models porting has, checked before its framework loads (model name -> tags)
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hub: str = ""  # its organisation on the Hugging Face Hub: `hf-hub:ORG/MODEL.TAG` names its models there
    export_has_class_names: bool = False  # what `export --to` writes keeps the class names (timm's config.json)
    checkpoint_has_optimizer: bool = False  # its own checkpoints carry the optimizer's state (the model zoo's)
    checkout: Checkout | None = None  # its code is a checkout the user names (the model zoo), not a package
    # where a user's own head comes from (porting.heads): 'graph' (read from the file's own graph: Keras), 'flag'
    # (--head, checked against the file's tensor shapes: timm, PaddleClas), '' (none: standard heads only)
    head_source: str = ""
    # 'graph': (file, spec) -> (the user's own head, the input size it was built at or None) of a whole-model file,
    # read without the framework, or None for the library's standard model (own_model below)
    read_own_model: Callable[[str, ModelSpec], tuple[Head, int | None] | None] | None = None


LIBRARIES: dict[str, SourceLibrary] = {}  # in registration order


def register_source(record: SourceLibrary) -> SourceLibrary:
    if record.name in LIBRARIES:
        raise ValueError(f"source library '{record.name}' registered twice")
    LIBRARIES[record.name] = record
    return record


def library(name: str) -> SourceLibrary:
    if name not in LIBRARIES:
        raise PortingError(f"unknown source library '{name}'; known: {', '.join(LIBRARIES)}")
    return LIBRARIES[name]


def libraries() -> list[SourceLibrary]:
    return list(LIBRARIES.values())


def with_checkout(spec: ModelSpec, given: str | os.PathLike | None) -> ModelSpec:
    """`spec` with the checkout its library's code runs from: `given` (--modelzoo), checked now, before any work."""
    checkout = library(spec.source).checkout
    if checkout is None:
        if given is not None:
            runs = " and ".join(f"{lib.name}:" for lib in libraries() if lib.checkout)
            raise PortingError(f"--modelzoo is for {runs} specs, not {spec.id}")
        return spec
    return replace(spec, checkout=str(checkout.folder(spec.name, given))) if given is not None else spec


def checkout_folder(spec: ModelSpec, required: bool = True) -> str | None:
    """The folder of the code `spec` runs from, for a library that is a checkout (None for an installed one);
    without one named, an error when `required`, else None."""
    checkout = library(spec.source).checkout
    return checkout.find(spec, required) if checkout else None


def own_model(spec: ModelSpec, weights: str | os.PathLike | None) -> tuple[Head | None, int]:
    """(the user's own head a weights file holds, or None; the size to run it at: the one the file fixes, a
    Keras model built at 150 px, else the spec's), known in the parent before any worker runs."""
    read = library(spec.source).read_own_model
    found = read(str(weights), spec) if read is not None and weights else None
    if found is None:
        return None, spec.input_size
    head, size = found
    return head, size or spec.input_size

"""The MindSpore model zoo's own networks (seeds 000-002): its record, where a checkout keeps them and how its
scripts build them.

The model zoo is a repository of scripts, not an installable library, so a `modelzoo:` spec runs in the user's
checkout: `--modelzoo DIR` (the model's own folder, or the repository root) or $PORTING_MODELZOO. This module
finds the model in it and says how its eval.py builds the network; the worker (runner.py) imports it from there.
No framework imported here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from porting.errors import PortingError
from porting.sources.registry import Checkout, SourceLibrary, register_source
from porting.weight_maps import Convention

ENV = "PORTING_MODELZOO"


@dataclass(frozen=True)
class Network:
    folder: str  # the model's folder in the models repository
    module: str  # imported with the model's folder on sys.path
    factory: str  # the function or class in `module` that eval.py calls
    classes_arg: str  # its class-count argument
    kwargs: dict = field(default_factory=dict)  # its other arguments, as eval.py passes them
    head: str = "fc.weight"  # the classifier's weight: its rows are the classes

    @property
    def file(self) -> str:
        return self.module.replace(".", "/") + ".py"


NETWORKS = {
    # official/cv/Inception/xception/eval.py: xception(class_num=config.class_num)
    "xception": Network("official/cv/Inception/xception", "src.Xception", "xception", "class_num"),
    # official/cv/Inception/inceptionv4/eval.py: Inceptionv4(classes=config.num_classes); is_train only sets the
    # dropout rate, which inference never applies: False keeps it off in the training-mode pass of --random-init
    "inceptionv4": Network("official/cv/Inception/inceptionv4", "src.inceptionv4", "Inceptionv4", "classes",
                           {"is_train": False}, head="softmax.dense.weight"),
    # research/cv/SE_ResNeXt50/eval.py: get_network(network=config.network, num_classes=..., platform=...)
    "se_resnext50": Network("research/cv/SE_ResNeXt50", "src.image_classification", "get_network", "num_classes",
                            {"network": "se_resnext50", "platform": "CPU"}, head="head.fc.weight"),
}


def model_folder(name: str, given: str | os.PathLike) -> Path:
    """The folder of model `name` in the checkout `given`: the model's folder itself or the repository root."""
    net, root = NETWORKS[name], Path(given).expanduser()
    if not root.is_dir():
        raise PortingError(f"model-zoo checkout '{given}' {'is not a folder' if root.exists() else 'does not exist'}")
    for folder in (root, root / net.folder):
        if (folder / net.file).is_file():
            return folder.resolve()
    raise PortingError(f"model-zoo checkout '{given}' has no {net.file} of modelzoo:{name}: point --modelzoo at "
                       f"{net.folder} of a MindSpore models repository, or at the repository's root")


def checkout(spec, required: bool = True) -> str | None:
    """The model's folder for a worker: the spec's (--modelzoo), else $PORTING_MODELZOO; without either, an error
    naming both when `required`, else None."""
    if spec.checkout:
        return spec.checkout
    if os.environ.get(ENV):
        return str(model_folder(spec.name, os.environ[ENV]))
    if required:
        raise PortingError(f"{spec.id} runs the model zoo's own {spec.name} network: pass --modelzoo DIR (its "
                           f"folder {NETWORKS[spec.name].folder} in a clone of the MindSpore models repository, or "
                           f"the clone's root) or set {ENV}=DIR")
    return None


CONVENTION = Convention.mindspore("modelzoo")  # MindSpore too

MODELZOO = register_source(SourceLibrary(
    "modelzoo", "the MindSpore model zoo", "porting.sources.modelzoo.runner:ModelzooRunner", CONVENTION,
    resize_backend="mindspore",  # MindSpore's Resize and CenterCrop, as its eval.py's dataset
    weight_suffixes=(".ckpt",), export_suffixes=(".ckpt",),
    checkpoint_has_optimizer=True,  # its train.py's ModelCheckpoint saves the training network
    checkout=Checkout(model_folder, checkout)))

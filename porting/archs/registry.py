"""The registry: MindSpore architectures and the SOURCE:MODEL specs that map onto them. No framework here.

Each architecture package registers its config class with `@register_arch` (as timm's `@register_model`), and each
of its weight maps (from_<source>.py) that library's specs with `register_specs`; `porting.archs` imports every
package and every weight map, so importing it fills both tables.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field

from porting.errors import PortingError
from porting.heads import Head

# below 32 px no ImageNet classifier here means anything; an architecture may need more (Inception-v4: 75)
MIN_SIZE_FLOOR, MAX_INPUT_SIZE = 32, 2048


@dataclass(frozen=True)
class Arch:
    name: str  # the id a checkpoint records ('xception_aligned')
    config: type  # the variant config dataclass (framework-free, in the package's __init__)
    model: str  # 'module:Class' of the MindSpore model, imported only when a network is built
    recipe: str  # the model-zoo fine-tuning recipe it gets by default (porting.training.recipes)
    min_input_size: int = MIN_SIZE_FLOOR  # the smallest input its unpadded stem / reductions compute

    @property
    def package(self) -> str:
        return self.config.__module__


@dataclass(frozen=True)
class ModelSpec:
    source: str  # the source library's name: its record in porting.sources ('timm', 'keras'...)
    name: str  # the source library's own model name
    arch: str  # MindSpore architecture id (porting.archs registry)
    arch_config: dict = field(default_factory=dict)
    # the module in the architecture's package ('from_timm') with build(spec, convention) -> WeightMap, the
    # convention its library's (porting.specs.build_weight_map hands it over)
    weight_map: str = ""
    aliases: tuple[str, ...] = ()
    head: str = "fc"  # the MindSpore Dense cell that --num-classes re-initialises
    num_classes: int = 1000
    input_size: int = 299
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # options for seeded synthetic source weights (the runners' randomize), e.g. {"bn_beta_mean": 1.0}
    random_init: dict = field(default_factory=dict)
    source_min_size: int = 0  # the source library's own smallest input, where it has one (Keras Xception: 71)
    source_max_size: int = 0  # ... and largest (the model zoo's Xception: its AvgPool2d(10) needs 10x10 maps)
    # timm's pretrained tag ('tf_in1k' in timm:xception65.tf_in1k): picks the download and the preprocessing
    tag: str = ""
    hub: str = ""  # a Hugging Face Hub repo ('timm/xception41.tf_in1k') when named as hf-hub:REPO
    resize_backend: str = ""  # how the source resizes (porting.card.RESIZE_BACKENDS); "": its library's (record)
    # where the source's code is, for a source that is a code checkout (the model zoo: porting.sources.modelzoo); set per
    # run (--modelzoo DIR), like `hub`
    checkout: str = ""
    variant: str = ""  # how this variant computes, for the README table and `porting models`
    notes: str = ""  # where the source model lives and what the map does beyond renaming

    @property
    def id(self) -> str:
        return f"{self.source}:{self.source_name}"

    @property
    def source_name(self) -> str:
        """The name the source library is asked for: timm's 'model.tag' when a tag is named."""
        return f"{self.name}.{self.tag}" if self.tag else self.name

    @property
    def config(self):
        """The architecture's config object of arch_config (its class's defaults for keys it leaves out)."""
        return config_for(self.arch, self.arch_config)

    def check_size(self, size: int, what: str = "--size") -> int:
        return check_input_size(self.arch, size, self.source_min_size, what, self.source_max_size)

    def weight_map_module(self):
        """The module of this spec's weight map (porting.archs.<family>.from_<source>)."""
        return importlib.import_module(f"{get_arch(self.arch).package}.{self.weight_map}")

    def preprocessing(self) -> dict:
        """The preprocessing the spec states (the resize backend, where it names none, is its library's)."""
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct}


# How two configs of one architecture relate, key by key, for `export --to` (porting.converters.target): a key
# whose values differ is folded into the weights (bn_eps: always), computes the same anyway (Same), needs the
# weights reshaped (Reshape), makes the graphs compute differently with the same weights (Computes: inexact,
# --approximate), or gives the networks other parameters (Structure: no export). A key an architecture does not
# list is Structure.
@dataclass(frozen=True)
class TargetRule:
    text: str  # what differs, or why the difference does not matter


class Same(TargetRule):
    pass


class Reshape(TargetRule):
    pass


class Computes(TargetRule):
    pass


class Structure(TargetRule):
    pass


TARGET_RULES: dict[str, dict] = {}


def register_target_rules(arch: str, **rules) -> None:
    TARGET_RULES[arch] = rules


ARCHS: dict[str, Arch] = {}
# by architecture (in registration order), then by source library (A-Z), each library's in the order it registers
# them: the order `porting models` lists, whichever weight map registers first
SPECS: list[ModelSpec] = []


def register_arch(name: str, *, model: str, recipe: str, min_input_size: int = MIN_SIZE_FLOOR):
    """Class decorator on an architecture's config dataclass."""
    def register(config: type) -> type:
        if name in ARCHS:
            raise ValueError(f"architecture '{name}' registered twice")
        ARCHS[name] = Arch(name, config, model, recipe, min_input_size)
        return config
    return register


def register_specs(*specs) -> None:
    for spec in specs:
        if spec.arch not in ARCHS:
            raise ValueError(f"{spec.id}: architecture '{spec.arch}' is not registered")
        if any(s.id == spec.id for s in SPECS):
            raise ValueError(f"{spec.id} registered twice")
        SPECS.append(spec)
    archs = list(ARCHS)
    SPECS.sort(key=lambda s: (archs.index(s.arch), s.source))  # stable: a library's own order stays


def get_arch(arch: str) -> Arch:
    if arch not in ARCHS:
        raise PortingError(f"unknown architecture '{arch}'; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch]


def check_input_size(arch: str, size: int, extra_min: int = 0, what: str = "--size", extra_max: int = 0) -> int:
    lowest, highest = max(get_arch(arch).min_input_size, extra_min), extra_max or MAX_INPUT_SIZE
    if not lowest <= size <= highest:
        raise PortingError(f"{what} {size} is out of range for {arch}: use {lowest} to {highest}")
    return size


def config_for(arch: str, config: dict):
    """The architecture's config object for `config`; unknown archs or keys are a one-line error."""
    cls = get_arch(arch).config
    if not isinstance(config, dict):
        raise PortingError(f"the {arch} config must be a mapping, not {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise PortingError(f"unknown {arch} config key(s) {', '.join(map(repr, unknown))}; known: "
                           f"{', '.join(sorted(known))}")
    return cls(**config)


def build(arch: str, config: dict, num_classes: int, head: Head | None = None, classifier: str = "fc"):
    """The MindSpore model in inference mode (imports MindSpore). `head`: the user's own head (porting.heads)
    instead of the architecture's: its pooling becomes `global_pool` and its layers the `classifier` cell (a
    HeadStack, numbered as head.layers; a feature extractor's is the identity), so `num_classes` is the head's."""
    cfg = config_for(arch, config)
    module, _, cls = get_arch(arch).model.partition(":")
    if head is not None and num_classes != head.num_classes:
        raise PortingError(f"{arch}: a head of {head.num_classes} classes asked for {num_classes}")
    net = getattr(importlib.import_module(module), cls)(num_classes if head is None else max(1, num_classes), cfg)
    if head is not None:
        _fit_head(net, arch, head, classifier)
    net.set_train(False)
    net.built_as = (arch, cfg, num_classes, head)  # what checkpoint.load_model(into=net) checks a checkpoint against
    return net


def _fit_head(net, arch: str, head: Head, classifier: str) -> None:
    """Put `head`'s cells in place of the architecture's global pool and plain Dense classifier, which every
    architecture ends in (`self.fc(self.global_pool(features))`); one whose head computes more is refused."""
    # the cells import MindSpore: loaded by name, as the architecture's module is (the registry stays framework-free)
    layers = importlib.import_module("porting.archs.layers")
    standard = getattr(net, classifier, None)
    if type(standard) is not layers.Dense or not hasattr(net, "global_pool"):
        raise PortingError(f"{arch} ({type(net).__name__}) ends in {type(standard).__name__}, not in a global pool and "
                           f"one Dense: porting gives custom heads only to models whose own head is that")
    if head.features != standard.in_channels:
        raise PortingError(f"the head takes {head.features} features, but {arch}'s last feature map has "
                           f"{standard.in_channels} channels")
    net.global_pool, head_classifier = layers.head_cells(head)
    setattr(net, classifier, head_classifier)

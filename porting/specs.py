"""SOURCE:MODEL specs: what a name like `timm:xception` means, and how names resolve. No framework imported.

A spec says which source library builds the model, which MindSpore architecture (and which variant of it)
reproduces it, where its weight map lives, and the preprocessing the source defines. Specs are registered by
their architecture's package (porting/archs/<arch>/__init__.py); `all_specs()` lists them.
"""
from __future__ import annotations

from dataclasses import replace

from porting.archs.registry import ModelSpec  # noqa: F401 - ModelSpec: the API's name
from porting.card import ModelCard
from porting.errors import PortingError
from porting.sources import libraries, library
from porting.weight_maps import WeightMap



def spec_card(spec: ModelSpec) -> ModelCard:
    """The card a port of `spec` starts from: its architecture and the source's own preprocessing."""
    return ModelCard(arch=spec.arch, arch_config=spec.arch_config, num_classes=spec.num_classes, head=spec.head,
                     source=spec.id, resize_backend=spec.resize_backend or library(spec.source).resize_backend,
                     **spec.preprocessing())


def build_weight_map(spec: ModelSpec) -> WeightMap:
    """The spec's weight map, its tensors named and laid out by its library's convention (the record holds it; the
    weight maps, below the records, are handed it)."""
    return spec.weight_map_module().build(spec, library(spec.source).convention)


def weight_files_text() -> str:
    """'timm .pth/.pt/..., keras .weights.h5/...': the files --weights takes, by library, from the records (for
    help texts: a library added is listed with no change there)."""
    return ", ".join(f"{lib.name} {'/'.join(lib.weight_suffixes)}" for lib in libraries())


def all_specs() -> list[ModelSpec]:
    from porting.archs import SPECS

    return list(SPECS)


def __getattr__(name: str):
    if name == "SPECS":  # the registry's list, filled when porting.archs is imported
        return all_specs()
    raise AttributeError(f"module 'porting.specs' has no attribute '{name}'")


def resolve(text: str) -> ModelSpec:
    """'timm:xception' -> the legacy_xception spec. Case-insensitive; unknown names list the supported ones.

    A library with pretrained tags takes them in the name (`timm:xception65.tf_in1k`), and one with a Hub
    organisation is named there too (`hf-hub:timm/MODEL.TAG`, the same model on the Hugging Face Hub); a tag its
    record does not list is refused here, before its framework loads (the worker checks again with the library).
    """
    if text.strip().lower().startswith("hf-hub:"):
        repo = text.strip()[len("hf-hub:"):]
        org, _, model = repo.partition("/")
        hubs = {lib.hub: lib for lib in libraries() if lib.hub}
        if org not in hubs or not model:
            known = " and ".join(f"{lib.title}'s own Hub repos (hf-hub:{org}/MODEL.TAG)" for org, lib in hubs.items())
            raise PortingError(f"'{text}': porting knows {known}; for another repo, download its weights and pass "
                               f"them with --weights to the matching spec")
        return replace(resolve(f"{hubs[org].name}:{model}"), hub=repo)
    source, sep, name = text.partition(":")
    if not sep or not source or not name:
        raise PortingError(f"model spec '{text}' must look like SOURCE:MODEL, e.g. timm:xception")
    key_source, key_name = source.strip().lower(), name.strip().lower()
    specs = all_specs()
    sources = sorted({s.source for s in specs})
    matches = [s for s in specs if s.source == key_source]
    if not matches:
        raise PortingError(f"unknown source '{source}' in '{text}'; supported sources: {', '.join(sources)}")
    for spec in matches:
        if key_name == spec.name.lower() or key_name in (a.lower() for a in spec.aliases):
            return spec
    base, dot, tag = key_name.partition(".")
    if dot and tag and library(key_source).pretrained_tags:
        for spec in matches:
            if base == spec.name.lower() or base in (a.lower() for a in spec.aliases):
                tags = library(key_source).tags.get(spec.name)
                if tags is not None and tag not in tags:
                    raise PortingError(f"{library(key_source).title} has no pretrained tag '{tag}' for {spec.name}; "
                                       f"its tags: {', '.join(f'{spec.name}.{t}' for t in tags)}")
                return replace(spec, tag=tag)
    names = ", ".join(s.id + (f" (alias {', '.join(s.aliases)})" if s.aliases else "") for s in matches)
    # a model that other sources have but this library does not ship (keras:inception_v4, keras:seresnext50_32x4d)
    elsewhere = [s.id for s in specs if s.source != key_source
                 and _bare(key_name) in {_bare(s.name), *map(_bare, s.aliases)}]
    if elsewhere:
        raise PortingError(f"{library(key_source).title} ships no {name.strip()} model; "
                           f"{key_source} offers: {names}; {name.strip()} is available as {', '.join(elsewhere)}")
    raise PortingError(f"unknown model '{name}' for source {key_source}; supported: {names}")


def _bare(name: str) -> str:
    """'InceptionV4', 'inception_v4' and 'inception-v4' are the same model name."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


def preprocessing_text(spec: ModelSpec) -> str:
    if spec.mean == spec.std == (0.5, 0.5, 0.5):
        norm = "mean = std 0.5"
    elif (spec.mean, spec.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)):
        norm = "ImageNet mean/std"
    else:
        norm = f"mean {list(spec.mean)}, std {list(spec.std)}"
    resize = spec.input_size / spec.crop_pct
    square = f"x{round(resize)}" if spec.resize_backend == "mindspore-square" else ""
    crop = (f"resize {round(resize)}{square} -> crop {spec.input_size}" if abs(resize - round(resize)) < 1e-6
            else f"crop {spec.crop_pct:.4g}")
    return f"{spec.input_size} ({norm}, {spec.interpolation}, {crop})"


def readme_table() -> str:
    """The README's "Supported models" table, generated from the registry (a test keeps the README in step)."""
    lines = ["| spec | MindSpore architecture | input | notes |", "|---|---|---|---|"]
    for spec in all_specs():
        aliases = ", ".join(f"`{spec.source}:{a}`" for a in spec.aliases)
        lines.append(f"| `{spec.id}`{f' (alias {aliases})' if aliases else ''} | `{spec.arch}` ({spec.variant}) | "
                     f"{preprocessing_text(spec)} | {spec.notes} |")
    return "\n".join(lines)

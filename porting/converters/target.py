"""export --to: a porting checkpoint written back in a source library's own format (the writer; its proof, the file
read back and run in that library's code, is porting.proof.prove_export, as `parity` proves a port).

1. fit_between(): how the checkpoint's graph relates to the target spec's, key by key of the architecture's config
   (porting.archs.registry.TARGET_RULES): the same, folded into the weights (BN eps into the moving variance, SE
   weights reshaped), computing differently with the same weights (inexact: refused unless --approximate), or
   with other parameters (never).
2. prepare(): target_params() applies the folds; the target spec's own weight map, read backwards
   (WeightMap.invert: every transform names its inverse), renames and re-lays the tensors out as the library
   stores them.
3. writing(): the target library's worker puts them into its untrained model and writes the file with its own
   saver; for a proof, the same worker then reads that file back with its own loader and runs it on the proof's
   inputs, before the file appears. write(): the file alone, unproven (--no-check; the model zoo's .ckpt without
   a checkout, written from the table alone).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from porting import files, formats
from porting.archs.registry import TARGET_RULES, Computes, Reshape, Same, Structure
from porting.card import ModelCard
from porting.errors import PortingError
from porting.job import PretrainedConfig
from porting.results import TargetFit
from porting.sources import checkout_folder, libraries, library
from porting.sources.head_option import head_for_target
from porting.specs import ModelSpec, all_specs, resolve
from porting.weight_maps import WeightMap

if TYPE_CHECKING:
    from porting.heads import Head
    from porting.job import SourceResult


@dataclass
class Fit:
    """How a checkpoint of config `a` goes to config `b` of the same architecture."""

    folds: list[str] = field(default_factory=list)  # what the weights absorb
    differences: list[str] = field(default_factory=list)  # what they cannot (inexact)
    mismatch: str = ""  # why the parameters cannot go at all

    @property
    def exact(self) -> bool:
        return not self.mismatch and not self.differences

    def verdict(self) -> str:
        if self.mismatch:
            return f"no: {self.mismatch}"
        if self.differences:
            return "approximate: " + "; ".join(self.differences)
        return "exact" + (f" ({'; '.join(self.folds)})" if self.folds else "")


def fit_between(arch: str, a: dict, b: dict) -> Fit:
    """How a checkpoint of config `a` of `arch` goes to config `b`."""
    out = Fit()
    rules = TARGET_RULES.get(arch, {})
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if key == "bn_eps":
            out.folds.append(f"BN eps {a.get(key):g} -> {b.get(key):g} folded into the moving variances")
            continue
        rule = rules.get(key, Structure(f"{key} {a.get(key)!r} against {b.get(key)!r}"))
        if isinstance(rule, Structure):
            out.mismatch = f"{out.mismatch}; {rule.text}" if out.mismatch else rule.text
        elif isinstance(rule, Computes):
            out.differences.append(rule.text)
        elif isinstance(rule, Reshape):
            out.folds.append(rule.text)
        elif not isinstance(rule, Same):
            raise TypeError(f"{arch}.{key}: unknown rule {rule!r}")
    return out


def target_spec(text: str, card: ModelCard) -> ModelSpec:
    """The spec --to names: `timm:xception`, or a bare library (`timm`): the checkpoint's own source spec when it
    comes from that library (api.spec_for adds the checkout its library runs from, as for every spec)."""
    if ":" not in text:
        name = text.strip().lower()
        if card.source.split(":", 1)[0] == name:
            return resolve(card.source)
        specs = [s.id for s in all_specs() if s.source == name and s.arch == card.arch]
        if not specs:
            raise PortingError(f"--to {text}: no {name} model has the checkpoint's architecture {card.arch}"
                               if any(s.source == name for s in all_specs()) else
                               f"--to {text}: unknown library; name a spec (SOURCE:MODEL, `porting models`)")
        raise PortingError(f"--to {text}: the checkpoint comes from {card.source or 'no spec'}; name the {name} "
                           f"model: {', '.join(specs)}")
    spec = resolve(text)
    if spec.arch != card.arch:
        raise PortingError(f"--to {spec.id}: that is a {spec.arch}, the checkpoint a {card.arch} "
                           f"({card.source or 'no source'}); `porting models --targets` lists where it can go")
    return spec


def output_is_folder(source: str, target: str, output: Path) -> bool:
    """Whether `source`'s library writes `output` as a folder (timm's local-dir layout) rather than a file; a name
    it cannot write (`target`: the spec or library --to names) is an error."""
    name = output.name
    suffixes = library(source).export_suffixes  # "": a folder with no suffix, timm's local-dir layout
    if any(name.endswith(s) for s in suffixes if s):
        return False
    if "" in suffixes and "." not in name:
        return True
    shown = ", ".join("a folder (no suffix)" if not s else s for s in suffixes)
    raise PortingError(f"output '{output}': {target} is written as {shown}")


def check_early(ckpt: Path, output: Path, to: str) -> None:
    """What the command line alone says is wrong, before MindSpore loads to read the checkpoint's card: the
    checkpoint, the target's name, and the output's name and place."""
    formats.check_checkpoint(ckpt)
    source = to.split(":", 1)[0].strip().lower()
    if ":" in to:
        resolve(to)  # an unknown spec
    if source in {lib.name for lib in libraries()}:
        files.check_output(output, (ckpt,), what=f"{source} output", folder=output_is_folder(source, to, output))


def target_params(params: dict[str, np.ndarray], net, card: ModelCard, spec: ModelSpec, shapes: dict) -> dict:
    """The checkpoint's parameters for the target's graph: BN eps folded, reshapes done, optimizer state left out.
    `net()`: the checkpoint's MindSpore network (for each BN's eps); `shapes`: the target network's parameters."""
    eps_from, eps_to = card.config.bn_eps, spec.config.bn_eps
    out = {}
    for name, shape in shapes.items():
        if name not in params:
            raise PortingError(f"the checkpoint has no '{name}' for {spec.id}")
        value = params[name]
        if tuple(value.shape) != tuple(shape):
            if value.size != int(np.prod(shape)):
                raise PortingError(f"the checkpoint's '{name}' {list(value.shape)} cannot become {spec.id}'s "
                                   f"{list(shape)}")
            value = value.reshape(shape)
        out[name] = value
    if eps_from is not None and eps_to is not None and eps_from != eps_to:
        for cell_name, cell in net().cells_and_names():
            if getattr(cell, "eps_value", None) != eps_from or f"{cell_name}.moving_variance" not in out:
                continue  # a BN of its own eps (the model zoo InceptionV4's head) is the same in both
            key = f"{cell_name}.moving_variance"
            folded = out[key].astype(np.float64) + eps_from - eps_to
            if (folded <= 0).any():
                raise PortingError(f"'{key}' has variances below {eps_to - eps_from:g}: BN eps {eps_from:g} -> "
                                   f"{eps_to:g} cannot be folded into it")
            out[key] = folded.astype(np.float32)
    return out


def export_config(card: ModelCard) -> PretrainedConfig:
    """What the target's format has a place for (timm's config.json): class names and the checkpoint's
    preprocessing, its own input size included (never the proof's --size)."""
    return PretrainedConfig(label_names=card.class_names, mean=list(card.mean), std=list(card.std),
                            crop_pct=card.crop_pct, interpolation=card.interpolation, input_size=card.input_size,
                            test_input_size=card.test_input_size, test_crop_pct=card.test_crop_pct)


@dataclass
class Export:
    """What prepare() made of a checkpoint for its target: the tensors in the target library's names and layouts,
    and what writing() and a proof need."""

    ckpt: Path
    output: Path
    spec: ModelSpec  # the target
    card: ModelCard  # the checkpoint's
    fit: Fit
    weight_map: WeightMap  # the target spec's
    tensors: dict[str, np.ndarray]  # what the file will hold
    folder: bool  # the output is a folder (timm's local-dir layout)
    size: int  # the proof's input size: --size, else the checkpoint's where the target runs at it
    network: Callable  # network(): the checkpoint's MindSpore network, built on the first call
    runnable: bool  # the target library's code is here (the model zoo's: a checkout), so it can write and prove
    head: Head | None = None  # the checkpoint's own head as the target holds it: the worker builds its model with it


def prepare(ckpt: Path, output: Path, params: dict[str, np.ndarray], card: ModelCard, spec: ModelSpec, *,
            approximate: bool = False, size: int | None = None, log=lambda msg: None) -> Export:
    """The checkpoint's parameters (`params`, `card`) as the target `spec` stores them, after the checks that need
    its card: the fit (a mismatch refused, a difference unless `approximate`), the output's name and place, the
    proof's --size. Loads MindSpore."""
    from porting import archs, checkpoint, msenv
    from porting.converters.port import target_shapes, weight_map_for

    # the checkpoint's own head, as the target holds it: its model is built with it, the file written with its keys,
    # at the size the user built it at (a Keras model with its own head fixes it)
    head = head_for_target(spec, card.custom_head, card.source) if card.custom_head is not None else None
    if head is not None:
        spec = replace(spec, input_size=card.input_size)
    fit = fit_between(card.arch, card.arch_config, spec.arch_config)
    if fit.mismatch:
        raise PortingError(f"cannot export '{ckpt}' ({card.source or card.arch}) to {spec.id}: {fit.mismatch}")
    if fit.differences and not approximate:
        raise PortingError(f"{spec.id} does not compute as '{ckpt}' ({card.source or card.arch}) does: "
                           f"{'; '.join(fit.differences)}; --approximate writes it anyway and reports the "
                           f"measured agreement")
    folder = output_is_folder(spec.source, spec.id, output)
    if head is not None and folder:  # a model folder's config builds the library's standard classifier
        files_as = " or ".join(s for s in library(spec.source).export_suffixes if s)
        raise PortingError(f"output '{output}': a {library(spec.source).title} model folder holds its standard "
                           f"classifier only; the checkpoint's own head ({head.describe()}) goes in a {files_as} file")
    files.check_output(output, (ckpt,), what=f"{spec.source} output", folder=folder)
    if size is not None:
        spec.check_size(size)
    else:
        size = card.input_size
        try:
            spec.check_size(size)
        except PortingError:
            size = spec.input_size
    msenv.setup()
    # a library that is a checkout (the model zoo) is written without it, as a .ckpt, but proven only in it
    runnable = library(spec.source).checkout is None or checkout_folder(spec, required=False) is not None

    @functools.cache
    def net():  # built only for the proof or a BN eps fold (seconds for the larger networks)
        built = archs.build(card.arch, card.arch_config, card.num_classes, card.custom_head, card.head)
        checkpoint.load_params(built, params, str(ckpt), train_state_ok=card.train_state is not None)
        return built

    wm = weight_map_for(spec, head)  # the head's rows, with the target's names, where the checkpoint has its own
    if card.arch_config == spec.arch_config:  # the checkpoint's own shapes (minus any optimizer state)
        shapes = {row.target: params[row.target].shape for row in wm.rows if row.target in params}
    else:
        shapes = target_shapes(spec, card.num_classes, head=head)
    tensors = wm.invert(target_params(params, net, card, spec, shapes), context=spec.id)
    for fold in fit.folds:
        log(f"{spec.id}: {fold}")
    return Export(ckpt, output, spec, card, fit, wm, tensors, folder, size, net, runnable, head)


@contextlib.contextmanager
def writing(export: Export, *, inputs: np.ndarray | None = None, taps: Sequence[str] = (),
            log=lambda msg: None) -> Iterator[Callable[[], SourceResult]]:
    """Writes the export's file, whole or not at all, while the body runs; yields written(), which waits for the
    writing and returns the worker's result. The target library's worker puts the tensors into its untrained model
    and writes the file with its own saver; with `inputs` (a proof: porting.proof.prove_export) it then reads the
    file back with its own loader and runs it on them, recording `taps`. An error in the body leaves nothing
    written. Needs the library's code (export.runnable)."""
    from porting.sources.jobs import source_job

    spec, output = export.spec, export.output
    if not export.runnable:
        raise PortingError(f"{spec.id}: its library's code is not here to write {output} with")
    proof = inputs is not None
    with files.atomic_output(output, (export.ckpt,), what=f"{spec.source} output", folder=export.folder) as staged:
        lib = library(spec.source)
        if lib.export_has_class_names and export.card.class_names and not export.folder:
            log(f"'{output}' is a state dict, with no place for the checkpoint's {len(export.card.class_names)} "
                f"class names (a {lib.title} model folder's config keeps them)")
        log(f"writing {spec.id} with {spec.source}'s own saver in its worker process"
            + (", then reading it back with its loader and running it" if proof else ""))
        with source_job(spec, untrained=True, num_classes=export.card.num_classes, assign=export.tensors,
                        unassigned=export.weight_map.ignore, export_config=export_config(export.card),
                        save_weights=str(staged.file), save_weights_as=str(output), want_tensors=proof,
                        inputs=inputs, taps=list(taps), head=export.head) as done:
            written = functools.cache(done)
            yield written
            written()  # the file is whole before it appears, whether the body waited for it or not


def write(export: Export, log=lambda msg: None) -> None:
    """The export's file, unproven (--no-check, or a library that is a checkout without one: the model zoo's
    .ckpt is written from the table alone, and a line says how to prove it)."""
    if export.runnable:
        with writing(export, log=log) as written:
            written()
        return
    spec, output = export.spec, export.output
    with files.atomic_output(output, (export.ckpt,), what=f"{spec.source} output", folder=export.folder) as staged:
        _write_ckpt(export.tensors, staged.file)
    log(f"no model-zoo checkout: wrote {output} without the proof in the model zoo's {spec.name}; pass "
        f"--modelzoo DIR (or set PORTING_MODELZOO) to prove it, or run `porting parity {spec.id} --weights "
        f"{output} --modelzoo DIR`")


def _write_ckpt(tensors: dict[str, np.ndarray], path: Path) -> None:
    import mindspore as ms

    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in tensors.items()], str(path))


def target_fits() -> list[TargetFit]:
    """(from spec, to spec, Fit) for every pair of specs of one architecture."""
    specs = all_specs()
    return [TargetFit(a.id, b.id, fit_between(a.arch, a.arch_config, b.arch_config)) for a in specs
            for b in specs if a.arch == b.arch and a is not b]


def targets_table() -> str:
    """The README's "Back to your framework" table: per architecture, where each spec's checkpoint goes."""
    lines = []
    by_arch: dict[str, list[ModelSpec]] = {}
    for spec in all_specs():
        by_arch.setdefault(spec.arch, []).append(spec)
    for arch, specs in by_arch.items():
        lines += [f"**{arch}**", "", "| from \\ to | " + " | ".join(f"`{s.id}`" for s in specs) + " |",
                  "|---|" + "---|" * len(specs)]
        notes: list[str] = []
        for a in specs:
            cells = []
            for b in specs:
                fit = fit_between(arch, a.arch_config, b.arch_config)
                if a is b:
                    cells.append("= (round trip)")
                    continue
                text = fit.verdict()
                if text not in notes:
                    notes.append(text)
                mark = "exact" if fit.exact and not fit.folds else (
                    "exact, folded" if fit.exact else "approx." if not fit.mismatch else "no")
                cells.append(f"{mark} [{notes.index(text) + 1}]")
            lines.append(f"| `{a.id}` | " + " | ".join(cells) + " |")
        lines += [""] + [f"{i}. {text}" for i, text in enumerate(notes, 1)] + [""]
    return "\n".join(lines).rstrip() + "\n"

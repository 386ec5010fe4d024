"""export --to: a porting checkpoint written back in a source library's own format, proven in that library's code.

1. fit(): how the checkpoint's graph relates to the target spec's, key by key of the architecture's config
   (porting.archs.registry.TARGET_RULES): the same, folded into the weights (BN eps into the moving variance, SE
   weights reshaped), computing differently with the same weights (inexact: refused unless --approximate), or
   with other parameters (never).
2. adapt() applies the folds; the target spec's own weight map, read backwards (WeightMap.invert: every
   transform names its inverse), renames and re-lays the tensors out as the library stores them.
3. The target library's worker puts them into its untrained model and writes the file with its own saver, then
   reads that file back with its own loader and runs it on seeded inputs; the MindSpore network of the
   checkpoint is the reference, compared layer by layer as `parity` compares.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from porting import files, formats
from porting.archs.registry import TARGET_RULES, Computes, Reshape, Same, Structure
from porting.card import ModelCard
from porting.errors import PortingError
from porting.sources import checkout_folder, libraries, library, with_checkout
from porting.sources.head_option import head_for_target
from porting.specs import ModelSpec, all_specs, resolve


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


def fit(arch: str, a: dict, b: dict) -> Fit:
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
    """`timm:xception`, or a bare library (`timm`): the checkpoint's own source spec when it comes from that
    library."""
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


def check_suffix(spec: ModelSpec, output: Path) -> bool:
    """True when the output is a folder (timm's local-dir layout)."""
    return _written_as(spec.source, spec.id, output)


def _written_as(source: str, target: str, output: Path) -> bool:
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
        files.check_output(output, (ckpt,), what=f"{source} output", folder=_written_as(source, to, output))


def adapt(params: dict[str, np.ndarray], net, card: ModelCard, spec: ModelSpec, shapes: dict) -> dict:
    """The checkpoint's parameters for the target's graph: BN eps folded, reshapes done, optimizer state left out.
    `net()`: the checkpoint's MindSpore network (for each BN's eps); `shapes`: the target network's parameters."""
    eps_from, eps_to = card.arch_config.get("bn_eps"), spec.arch_config.get("bn_eps")
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


def export_config(card: ModelCard) -> dict:
    """What the target's format has a place for (timm's config.json): class names and the checkpoint's
    preprocessing, its own input size included (never the proof's --size)."""
    return {"label_names": card.class_names, "mean": list(card.mean), "std": list(card.std),
            "crop_pct": card.crop_pct, "interpolation": card.interpolation, "input_size": card.input_size,
            "test_input_size": card.test_input_size, "test_crop_pct": card.test_crop_pct}


def export_to(ckpt: Path, output: Path, to: str, *, approximate: bool = False, check: bool = True,
              modelzoo=None, size: int | None = None, batch: int = 2, input_seed: int = 1234, log=lambda msg: None):
    """(report or None, Fit, target spec): the checkpoint in the target library's format at `output`, proven on
    `batch` seeded inputs of `size` (default: the checkpoint's input size, where the target runs at it)."""
    check_early(ckpt, output, to)
    from porting import archs, checkpoint, msenv
    from porting.compare import Report, compare
    from porting.converters.port import target_shapes, weight_map_for
    from porting.runtimes.mindspore_runtime import MindSporeRuntime
    from porting.sources.inputs import make_images
    from porting.sources.jobs import source_job

    params, card = checkpoint.load(ckpt)
    spec = with_checkout(target_spec(to, card), modelzoo)
    # the checkpoint's own head, as the target holds it: its model is built with it, the file written with its keys
    head = head_for_target(spec, card.custom_head, card.source) if card.custom_head is not None else None
    how = fit(card.arch, card.arch_config, spec.arch_config)
    if how.mismatch:
        raise PortingError(f"cannot export '{ckpt}' ({card.source or card.arch}) to {spec.id}: {how.mismatch}")
    if how.differences and not approximate:
        raise PortingError(f"{spec.id} does not compute as '{ckpt}' ({card.source or card.arch}) does: "
                           f"{'; '.join(how.differences)}; --approximate writes it anyway and reports the "
                           f"measured agreement")
    folder = check_suffix(spec, output)
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
    lib = library(spec.source)
    # a library that is a checkout (the model zoo) is written without it, as a .ckpt, but proven only in it
    code = checkout_folder(spec, required=False)
    proof = check and (lib.checkout is None or code is not None)

    @functools.cache
    def net():  # built only for the proof or a BN eps fold (seconds for the larger networks)
        built = archs.build(card.arch, card.arch_config, card.num_classes, card.custom_head, card.head)
        checkpoint.load_params(built, params, str(ckpt), train_state_ok=card.train_state is not None)
        return built

    wm = weight_map_for(spec, head)
    if card.arch_config == spec.arch_config:  # the checkpoint's own shapes (minus any optimizer state)
        shapes = {row.target: params[row.target].shape for row in wm.rows if row.target in params}
    else:
        shapes = target_shapes(spec, card.num_classes, head=head)
    tensors = wm.invert(adapt(params, net, card, spec, shapes), context=spec.id)
    for fold in how.folds:
        log(f"{spec.id}: {fold}")
    x = make_images(input_seed, batch, size, card.mean, card.std)
    report = Report(spec=f"{ckpt.name} -> {spec.id}", rtol=1e-4, info={
        "batch": batch, "size": size, "inputs": "seeded synthetic images", "weights": str(output),
        "reference": f"{ckpt.name} in MindSpore"})
    with files.atomic_output(output, (ckpt,), what=f"{spec.source} output", folder=folder) as staged:
        if lib.checkout is not None and code is None:
            _write_ckpt(tensors, staged.file)
            log(f"no model-zoo checkout: wrote {output} without the proof in the model zoo's {spec.name}; pass "
                f"--modelzoo DIR (or set PORTING_MODELZOO) to prove it, or run `porting parity {spec.id} --weights "
                f"{output} --modelzoo DIR`")
        else:
            log(f"writing {spec.id} with {spec.source}'s own saver in its worker process"
                + (", then reading it back with its loader and running it" if proof else ""))
            taps = [layer.source for layer in wm.layers] if proof else []
            # the model written is the checkpoint's, at its input size (a Keras model with its own head fixes it)
            with source_job(replace(spec, input_size=card.input_size), untrained=True, num_classes=card.num_classes,
                            assign=tensors, unassigned=wm.ignore, export_config=export_config(card),
                            save_weights=str(staged.file), save_weights_as=str(output), want_tensors=proof,
                            inputs=x if proof else None, taps=taps, head=head) as done:
                reference = {}
                if proof:
                    with MindSporeRuntime(net()) as runtime:
                        reference = runtime.infer(x, [layer.target for layer in wm.layers])
                result = done()
            if proof:
                _check_written(result.tensors, tensors, output)
                labels = result.info.pretrained_cfg.get("label_names")
                if lib.export_has_class_names and card.class_names and labels != card.class_names:
                    raise PortingError(f"'{output}': {lib.title} reads back class names {labels}, not the "
                                       f"checkpoint's")
                by_source = {layer.source: layer for layer in wm.layers}
                layers = [by_source[n] for n in result.info.order if n in by_source]
                to_source = {layer.target: layer.source for layer in layers}
                ref = {to_source.get(k, k): v for k, v in reference.items() if k in to_source or k == "logits"}
                compare(report, spec.source, ref, result.outputs, layers)
                if not report.ok and not approximate:
                    raise PortingError(f"{spec.id} read back from the export disagrees with '{ckpt}': "
                                       f"{report.disagreement()}; nothing written")
    return (report if proof else None), how, spec


def _write_ckpt(tensors: dict[str, np.ndarray], path: Path) -> None:
    import mindspore as ms

    ms.save_checkpoint([{"name": k, "data": ms.Tensor(v)} for k, v in tensors.items()], str(path))


def _check_written(read_back: dict[str, np.ndarray], meant: dict[str, np.ndarray], output: Path) -> None:
    """The file holds, bit for bit, what was meant (the library's saver and loader changed nothing)."""
    for name, value in meant.items():
        got = read_back.get(name)
        if got is None or got.dtype != value.dtype or got.shape != value.shape or got.tobytes() != value.tobytes():
            raise PortingError(f"'{output}': tensor '{name}' read back from it is not the one written")


def target_fits() -> list[tuple[str, str, Fit]]:
    """(from spec, to spec, Fit) for every pair of specs of one architecture."""
    specs = all_specs()
    return [(a.id, b.id, fit(a.arch, a.arch_config, b.arch_config)) for a in specs for b in specs
            if a.arch == b.arch and a is not b]


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
                how = fit(arch, a.arch_config, b.arch_config)
                if a is b:
                    cells.append("= (round trip)")
                    continue
                text = how.verdict()
                if text not in notes:
                    notes.append(text)
                mark = "exact" if how.exact and not how.folds else (
                    "exact, folded" if how.exact else "approx." if not how.mismatch else "no")
                cells.append(f"{mark} [{notes.index(text) + 1}]")
            lines.append(f"| `{a.id}` | " + " | ".join(cells) + " |")
        lines += [""] + [f"{i}. {text}" for i, text in enumerate(notes, 1)] + [""]
    return "\n".join(lines).rstrip() + "\n"

"""The registry of architectures and specs: one package per architecture, no framework on import, and the
README's table generated from it."""
import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ulps

from porting import archs
from porting.specs import all_specs, build_weight_map, readme_table, resolve

README = Path(__file__).resolve().parents[1] / "README.md"
FRAMEWORKS = ("mindspore", "torch", "tensorflow", "keras", "paddle", "timm", "mindcv", "onnxruntime")


def test_importing_the_registry_imports_no_framework():
    code = ("import sys, porting.archs, porting.specs, porting.sources; "
            "[porting.specs.build_weight_map(s) for s in porting.specs.all_specs()]; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_readme_table_is_the_registry():
    text = README.read_text()
    assert readme_table() in text, "README's 'Supported models' table is stale: paste `porting models --markdown`"


@pytest.mark.parametrize("arch", sorted(archs.ARCHS))
def test_each_architecture_is_one_package(arch):
    """Its config, model, recipe and every weight map of every spec that uses it live in its own package."""
    entry = archs.get_arch(arch)
    package = f"porting.archs.{arch}"
    assert entry.package == package and entry.model.startswith(f"{package}.model:")
    specs = [s for s in all_specs() if s.arch == arch]
    assert specs, f"{arch} has no spec"
    folder = Path(importlib.import_module(package).__file__).parent
    for spec in specs:
        assert (folder / f"{spec.weight_map}.py").is_file(), spec.id
        assert spec.weight_map == f"from_{spec.source}", spec.id
        assert resolve(spec.id) == spec
    from porting.training.recipes import RECIPES

    assert entry.recipe in RECIPES


def test_each_source_library_is_one_package_and_every_spec_names_one():
    """A library's record (porting/sources/<library>/__init__.py) names its runner beside it, the convention its
    weight maps use and a resize backend the card knows; every spec's source is a registered library."""
    from porting import sources
    from porting.card import RESIZE_BACKENDS

    assert [lib.name for lib in sources.libraries()] == sources.PACKAGES
    folder = Path(sources.__file__).parent
    for lib in sources.libraries():
        module, _, cls = lib.runner.partition(":")
        runner = folder / lib.name / "runner.py"
        assert module == f"porting.sources.{lib.name}.runner" and runner.is_file(), lib.runner
        assert cls in {n.name for n in ast.parse(runner.read_text()).body if isinstance(n, ast.ClassDef)}, lib.runner
        assert lib.convention.source == lib.name and lib.resize_backend in RESIZE_BACKENDS, lib.name
    for spec in all_specs():
        assert build_weight_map(spec).convention is sources.library(spec.source).convention, spec.id


def _called(node: ast.Call) -> str:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", "")


def test_a_source_library_lives_in_its_record_and_its_weight_maps():
    """README "Adding a source library": a library's naming convention is made in its record alone
    (porting/sources/<library>/__init__.py), and its specs are registered by its weight maps
    (porting/archs/<family>/from_<library>.py), each map its own library's; no family package registers a spec."""
    from porting import sources

    root = Path(archs.__file__).parents[1]
    made, registered = {}, {}
    for path in sorted(root.rglob("*.py")):
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
        name = path.relative_to(root.parent).as_posix()
        made[name] = [n for n in calls if _called(n) in ("Convention", "mindspore")]
        registered[name] = [n for n in calls if _called(n) in ("ModelSpec", "register_specs")]
    records = {f"porting/sources/{lib.name}/__init__.py": lib.name for lib in sources.libraries()}
    assert {name for name, calls in made.items() if calls} == set(records)
    for name, calls in made.items():
        assert all(c.args[0].value == records[name] for c in calls if c.args), name
    maps = {name for name, calls in registered.items() if calls}
    assert maps == {f"porting/archs/{s.arch}/{s.weight_map}.py" for s in all_specs()}, maps
    for name in maps:
        library = name.rsplit("/from_", 1)[1][:-len(".py")]
        specs = [c for c in registered[name] if _called(c) == "ModelSpec"]
        assert specs and all(c.args[0].value == library for c in specs), name


def test_adding_a_source_library_lists_at_most_6_files_and_every_library_has_them():
    """README "Adding a source library" lists at most 6 files, and every registered library has those it names for
    a library: its record and runner, a weight map in each family it has specs of, and (in pyproject.toml) a
    forbidden contract that keeps its runner to its own framework."""
    import tomllib

    from porting import sources

    section = README.read_text().split("### Adding a source library", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\d+\. `([^`]+)`", section, re.M)
    assert 0 < len(listed) <= 6 and len(re.findall(r"^\d+\. ", section, re.M)) == len(listed), listed
    root = README.parent
    per_library = [p for p in listed if "<library>" in p and p.startswith("porting/")]
    assert len(per_library) >= 3, listed  # the record, the runner, the weight maps
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    confined = {m for c in contracts if c["type"] == "forbidden" for m in c["source_modules"]}
    for lib in sources.libraries():
        families = {spec.arch for spec in all_specs() if spec.source == lib.name}
        for pattern in per_library:
            for family in sorted(families) if "<family>" in pattern else [""]:
                path = root / pattern.replace("<library>", lib.name).replace("<family>", family)
                assert path.is_file(), f"{lib.name}: README lists {pattern}, and {path} is not there"
        assert f"porting.sources.{lib.name}.runner" in confined or "porting.sources.*.runner" in confined, lib.name


def test_models_and_weight_maps_do_not_reach_into_converters_or_other_sources():
    """Nothing under archs/ (the models, their layers, their weight maps) imports porting.converters: the ONNX
    lowering depends on the layers, not the reverse. A weight map imports no other source's map (mindcv's, which
    declare themselves renamings of timm's, aside)."""
    root = Path(archs.__file__).parent
    for path in root.rglob("*.py"):
        assert not [m for m in _imports(path) if m.startswith("porting.converters")], path
    # mindcv's models re-implement timm's, and the model zoo's are mindcv's ancestors: their maps are renamings
    renamings = {"from_mindcv": {"from_timm"}, "from_modelzoo": {"from_timm", "from_mindcv"}}
    for path in root.glob("*/from_*.py"):
        others = {f"from_{s}" for s in ("timm", "keras", "paddleclas", "mindcv", "modelzoo")} - {path.stem}
        allowed = renamings.get(path.stem, set())
        assert not [m for m in _imports(path) if m.rsplit(".", 1)[-1] in others - allowed], path


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, and every name imported from a package (`from pkg import from_timm`)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return names


MODELS_IN_80_COLUMNS = """
import sys
from porting import cli
sys.argv = ["porting", "models"]
try:
    cli.app()
except SystemExit as done:
    code = done.code
print("frameworks loaded:", sorted(m for m in ("mindspore", "torch", "tensorflow", "paddle") if m in sys.modules),
      file=sys.stderr)
sys.exit(code)
"""


def test_models_lists_the_registry_without_building_networks_and_fits_the_terminal():
    """`porting models` reads the registry alone (no framework, no network built; `--params` counts them) and
    fits an 80-column terminal."""
    import os

    run = subprocess.run([sys.executable, "-c", MODELS_IN_80_COLUMNS], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="80"))
    assert run.returncode == 0, run.stderr
    assert "frameworks loaded: []" in run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    for spec in all_specs():
        assert spec.id in run.stdout, spec.id


def test_timm_tags_are_timms_own():
    """The tags checked before torch loads (the timm record's `tags`) are timm's own for every timm model porting
    has; an unknown one is refused by resolve, in one line listing them."""
    import timm

    from porting.errors import PortingError
    from porting.sources import library

    names = {s.name.split(".")[0] for s in all_specs() if s.source == "timm"}
    assert set(library("timm").tags) == names
    for name, tags in library("timm").tags.items():
        assert sorted(f"{name}.{t}" for t in tags) == sorted(timm.list_pretrained(f"{name}.*")), name
    with pytest.raises(PortingError, match="no pretrained tag 'ra3_in1k' for xception41; its tags: xception41.tf_in1k"):
        resolve("timm:xception41.ra3_in1k")
    assert resolve("hf-hub:timm/xception65.ra3_in1k").tag == "ra3_in1k"


def test_every_flag_of_every_command_has_help_and_shows_its_default():
    """`porting CMD --help` explains each option and says what happens without it: its value, or (where it is
    decided at run time) what decides it; switches that are off unless given say so by being switches. A metavar
    never suggests a syntax the option does not take (--mean takes three values, not 'a,b,c')."""
    import typer
    from typer import _click

    from porting.cli import app

    command = typer.main.get_command(app)
    problems = []
    for name, sub in command.commands.items():
        ctx = _click.Context(sub, info_name=name)
        for param in sub.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            flag, text = param.get_help_record(ctx)
            switch = param.is_flag and not param.secondary_opts and param.default is False
            if not param.help:
                problems.append(f"{name} {flag}: no help")
            elif not (switch or param.required or "default: " in text):
                problems.append(f"{name} {flag}: no default shown")
            if "," in flag.split(max(param.opts, key=len), 1)[1]:
                problems.append(f"{name} {flag}: a metavar with commas")
    assert not problems, problems


def test_the_license_is_an_spdx_string():
    """pip warns that `project.license` as a TOML table is deprecated: the SPDX expression form."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"


@pytest.fixture(scope="module")
def networks():
    """One MindSpore network per architecture variant, built once (PYNATIVE, CPU)."""
    from porting import msenv

    msenv.setup("CPU")
    built = {}

    def network(spec):
        key = (spec.arch, repr(sorted(spec.arch_config.items())), spec.num_classes)
        if key not in built:
            built[key] = archs.build(spec.arch, spec.arch_config, spec.num_classes)
        return built[key]

    return network


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.id)
def test_every_spec_keeps_the_cheap_contracts(spec, networks):
    """For each spec of the registry, without its source library (as timm's tests/test_models.py walks its
    registry): its weight map fills every parameter of its MindSpore network exactly once and taps only cells
    the network has; its head and sizes fit; the network runs at its smallest input; its card round-trips."""
    import mindspore as ms
    import numpy as np

    from porting.card import ModelCard
    from porting.specs import spec_card

    net = networks(spec)
    params = {name: p.shape for name, p in net.parameters_and_names()}
    wm = build_weight_map(spec)
    targets = [row.target for row in wm.rows]
    assert len(targets) == len(set(targets)), [t for t in targets if targets.count(t) > 1][:5]
    assert set(targets) == set(params), (sorted(set(params) - set(targets))[:5], sorted(set(targets) - set(params))[:5])
    cells = {name for name, _ in net.cells_and_names()}
    assert wm.layers and all(layer.target in cells for layer in wm.layers), \
        [layer.target for layer in wm.layers if layer.target not in cells][:5]
    assert params[f"{spec.head}.weight"][0] == spec.num_classes
    smallest = spec.check_size(max(archs.get_arch(spec.arch).min_input_size, spec.source_min_size))
    assert spec.check_size(spec.input_size) == spec.input_size
    logits = net(ms.Tensor(np.zeros((1, 3, smallest, smallest), np.float32))).asnumpy()
    assert logits.shape == (1, spec.num_classes) and np.isfinite(logits).all()
    # the table read backwards (export --to): invert() then apply() gives every parameter back, bit for bit
    # through copies, transposes and stacks, within one ulp through a folded scale (Paddle's Dropout in the head)
    rng = np.random.default_rng(0)
    values = {k: rng.normal(0, 1, shape).astype(np.float32) for k, shape in params.items()}
    back = wm.apply(wm.invert(values), params, spec.id)
    inexact = {row.target for row in wm.rows if not row.transform.exact}
    assert inexact <= {"fc.weight"}
    for name, value in values.items():
        assert ulps(value, back[name]) <= 1.0 if name in inexact else back[name].tobytes() == value.tobytes(), name
    card = spec_card(spec)
    assert ModelCard.from_json(card.to_json(), spec.id) == card
    assert ModelCard.from_props(card.to_props(), spec.id) == card

"""The house (README "How it is built"): the layers and framework rules as import-linter contracts
(pyproject.toml), no import cycle, typed records (card, report, results) read by key in their own modules alone, one
place per runtime."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "porting"


def sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], " \
       "no_cache=True))"


def test_the_import_linter_contracts_hold():
    """Each layer imports only the layers below it, every module is in a layer, each worker loads one framework.
    In a process of its own: run inside a test process that has used OpenVINO, lint_imports left pytest's
    captured stdout closed and every later test of that process failing (seen on openvino 2026.4.1)."""
    run = subprocess.run([sys.executable, "-c", LINT, str(ROOT / "pyproject.toml")], capture_output=True,
                         text=True, cwd=ROOT)
    code, out = run.returncode, run.stdout + run.stderr
    assert code == 0, out[-4000:]
    assert re.search(r"Contracts: (\d+) kept, 0 broken", out) and int(re.search(r"(\d+) kept", out)[1]) >= 5, out


def test_no_import_cycle_in_porting():
    import grimp

    graph = grimp.build_graph("porting", exclude_type_checking_imports=True, cache_dir=None)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert len(graph.modules) > 50 and not cycles, cycles


# ------------------------------------------------------------------------------------------ typed data
# A card, a report, a command's result and a source's info are typed records (README "How it is built"): read by
# attribute everywhere but in their own modules. A string-key read of their data (`report.info["batch"]`,
# `card.train_state.get("global_step")`, `result["Top_1_Acc"]`) is what the records replaced; this finds one on
# the syntax tree, following the data from where it is made to where it is read, whatever the names.

RECORD_MODULES = ("porting/card.py", "porting/report.py", "porting/results.py", "porting/job.py")
# job.py's records that are data a worker gives back (the others are what the parent asks of the worker)
SOURCE_RECORDS = {"SourceInfo", "SourceResult", "PretrainedConfig"}
# attributes that hold a card, a report's info or a configuration wherever they appear in porting, and the card as
# an exported file stores it (ONNX metadata_props, MINDIR user_info)
RECORD_ATTRIBUTES = {"card", "info", "train_state", "export", "export_info", "arch_config", "export_config",
                     "metadata_props", "user_info"}
# calls that return such data whatever their annotation says: (qualified name, the position of it in a returned
# tuple, None for the whole value)
PRODUCERS = {
    **dict.fromkeys([f"porting.api.{name}" for name in (
        "port", "parity", "check_parity", "train_step_parity", "evaluate", "predict", "quantize", "benchmark",
        "check_preprocessing", "weight_map", "targets")]),
    "porting.api.load": 1, "porting.api.export_to": 0, "porting.checkpoint.load": 1,
    "porting.checkpoint.load_model": 1, "porting.proof.prove_export": None,
    **dict.fromkeys(["porting.deploy.evaluate.evaluate", "porting.deploy.evaluate.predict",
                     "porting.deploy.evaluate.score_dataset", "porting.deploy.evaluate.scores",
                     "porting.deploy.quantize.quantize", "porting.deploy.bench.bench", "porting.proof.parity",
                     "porting.proof.check_preprocessing", "porting.training.step_parity.train_step_parity",
                     "porting.sources.jobs.run_source", "porting.converters.target.target_fits",
                     "porting.specs.spec_card", "porting.converters.port.card_for",
                     "porting.converters.export.read_mindir_metadata"]),
}
READS = ("get", "setdefault", "pop")


def module_name(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def record_classes(texts: dict[str, str]) -> tuple[set[str], set[str]]:
    """(the record classes, their fields that map a model's own names to arrays: data keyed by tensor name)."""
    classes, arrays = set(), set()
    for path in RECORD_MODULES:
        for node in ast.walk(ast.parse(texts.get(path, ""))):
            if isinstance(node, ast.ClassDef) and (path != "porting/job.py" or node.name in SOURCE_RECORDS):
                classes.add(node.name)
                arrays |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                           and isinstance(s.target, ast.Name) and "np.ndarray]" in ast.unparse(s.annotation)}
    return classes, arrays


def _names_in(annotation) -> set[str]:
    if annotation is None:
        return set()
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    return {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(annotation) if isinstance(n, ast.Attribute)}


class RecordReads:
    """The string-key reads of record data in one module: subscripts with a string constant, and .get / .setdefault
    / .pop with one, on any expression that holds a record or came from one: through names, attributes, items,
    calls, loops and comprehensions within a function, and into the functions (of any module: `world`) it is
    passed to and out of those that return it."""

    def __init__(self, path: str, text: str, classes: set[str], arrays: set[str], world: dict):
        self.tree, self.classes, self.arrays, self.world = ast.parse(text), classes, arrays, world
        self.own = module_name(path)
        self.aliases = {}  # local name -> qualified name, from every import in the module
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                self.aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
            elif isinstance(node, ast.Import):
                self.aliases.update({a.asname or a.name: a.name for a in node.names})
        self.functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        self.methods = {f for c in ast.walk(self.tree) if isinstance(c, ast.ClassDef) for f in c.body
                        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
        # what a bare name calls: the module's functions (not methods), unless an import names it
        self.callable = {f.name: f for f in self.functions if f not in self.methods and f.name not in self.aliases}
        for name, function in self.callable.items():
            world["functions"][f"{self.own}.{name}"] = (self, function)
            if _names_in(function.returns) & classes:
                world["producers"][f"{self.own}.{name}"] = None
        self.tainted = {f: set() for f in self.functions}  # per function: the names holding record data
        self.members = set()  # methods and properties of this module's classes that return record data

    def qualified(self, func) -> str | None:
        if isinstance(func, ast.Name):
            return self.aliases.get(func.id, f"{self.own}.{func.id}" if func.id in self.callable else None)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in self.aliases:
            return f"{self.aliases[func.value.id]}.{func.attr}"
        return None

    def produced(self, call) -> tuple[bool, int | None]:
        """(whether the call returns record data, its position in a returned tuple where that is known)."""
        qualified = self.qualified(call.func)
        if qualified in self.world["producers"]:
            position = self.world["producers"][qualified]
            return position is None, position
        return qualified in self.world["returning"], None

    def holds(self, node, names: set[str]) -> bool:
        """Whether `node` holds record data (in a function whose tainted names are `names`)."""
        if isinstance(node, ast.Name):
            return node.id in names
        if isinstance(node, ast.Attribute):
            if node.attr in self.arrays:
                return False  # tensors by the model's own names
            return node.attr in RECORD_ATTRIBUTES | self.members or self.holds(node.value, names)
        if isinstance(node, ast.Subscript):
            return self.holds(node.value, names)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in self.classes or isinstance(func, ast.Attribute) and (
                    isinstance(func.value, ast.Name) and func.value.id in self.classes):
                return True  # a record made, or loaded by its classmethod
            if self.produced(node)[0]:
                return True
            return isinstance(func, ast.Attribute) and self.holds(func, names)  # a record's method
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return any(self.holds(e, names) for e in node.elts)
        if isinstance(node, ast.IfExp):
            return self.holds(node.body, names) or self.holds(node.orelse, names)
        if isinstance(node, ast.BoolOp):
            return any(self.holds(v, names) for v in node.values)
        if isinstance(node, (ast.NamedExpr, ast.Await, ast.Starred)):
            return self.holds(node.value, names)
        return False

    def bind(self, target, value, names: set[str]) -> bool:
        """Taint the names `target` binds from `value` (an attribute or item set is no name); True when a name was
        added."""
        before = len(names)
        position = self.produced(value)[1] if isinstance(value, ast.Call) else None
        if isinstance(target, (ast.Tuple, ast.List)) and position is not None:
            if position < len(target.elts):
                names |= set(_bound(target.elts[position]))
        elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) and len(
                target.elts) == len(value.elts):
            for t, v in zip(target.elts, value.elts):
                self.bind(t, v, names)
        elif self.holds(value, names):
            names |= set(_bound(target))
        return len(names) > before

    def spread(self) -> bool:
        """One pass over the module's functions; True when it found more record data."""
        changed = False
        for function in self.functions:
            names = self.tainted[function]
            for arg in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]:
                if arg.arg not in names and _names_in(arg.annotation) & self.classes:
                    names.add(arg.arg)
                    changed = True
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    changed |= any([self.bind(t, node.value, names) for t in node.targets])
                elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    changed |= self.bind(node.target, node.value, names)
                elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                    changed |= self.bind(node.target, node.iter, names)
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    changed |= self.bind(node.optional_vars, node.context_expr, names)
                elif isinstance(node, ast.Return) and node.value is not None and self.holds(node.value, names):
                    changed |= self._returns(function)
                elif isinstance(node, ast.Call) and self.qualified(node.func) in self.world["functions"]:
                    module, callee = self.world["functions"][self.qualified(node.func)]
                    params = [a.arg for a in [*callee.args.posonlyargs, *callee.args.args]]
                    given = list(zip(params, node.args)) + [(k.arg, k.value) for k in node.keywords if k.arg]
                    for param, value in given:
                        if param not in module.tainted[callee] and self.holds(value, names):
                            module.tainted[callee].add(param)
                            changed = True
        return changed

    def _returns(self, function) -> bool:
        """`function` returns record data: so does a call of it, or (a method) an access of its name."""
        if function in self.methods:
            added = function.name not in self.members
            self.members.add(function.name)
            return added
        qualified = f"{self.own}.{function.name}"
        added = self.callable.get(function.name) is function and qualified not in self.world["returning"]
        if added:
            self.world["returning"].add(qualified)
        return added

    def found(self) -> list[int]:
        lines = set()
        for function, names in self.tainted.items():
            for node in ast.walk(function):
                if isinstance(node, ast.Subscript) and _string(node.slice) and self.holds(node.value, names):
                    lines.add(node.lineno)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READS \
                        and node.args and _string(node.args[0]) and self.holds(node.func.value, names):
                    lines.add(node.lineno)
        return sorted(lines)


def _bound(target):
    """The names an assignment target binds (not an attribute's or an item's owner)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _bound(element)
    elif isinstance(target, ast.Starred):
        yield from _bound(target.value)


def _string(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def record_reads(texts: dict[str, str]) -> list[str]:
    """'path:line' of every string-key read of record data outside the records' own modules."""
    classes, arrays = record_classes(texts)
    world = {"functions": {}, "producers": dict(PRODUCERS), "returning": set()}
    modules = {path: RecordReads(path, text, classes, arrays, world) for path, text in texts.items()}
    while any([module.spread() for module in modules.values()]):
        pass  # until the data reaches nothing new
    return [f"{path}:{n}" for path, module in sorted(modules.items()) if path not in RECORD_MODULES
            for n in module.found()]


# Reads main's code made before the records were typed (porting/cli.py, proof.py, finetune.py, target.py, the timm
# runner, a weight map), each as it was written there; and reads that are not of record data
BEFORE = {"porting/eval.py": """
from porting import api, checkpoint
def eval_cmd(model, data, as_json):
    result = api.evaluate(model, data)
    found = result if isinstance(result, list) else [result]
    for each in found:
        named = f" ({each['runtime']}, {each['precision']})" if len(found) > 1 else ""   # 7
    several = len({r["runtime"] for r in api.predict(model, [data])}) > 1                 # 8
    report = api.quantize(model, data, model)
    print(quantize_table(report))
def quantize_table(report: dict):
    return f"float32 vs int8 on {report['held_out']} held-out images"                     # 12
def finish(self, report, what):
    report.info.setdefault("default_precision", {})[self.name] = what                     # 14
def resume(output):
    tensors, card = checkpoint.load(output)
    start = int(card.train_state.get("global_step", 0))                                   # 17
    return tensors["fc.weight"], start
def adapt(params, card, spec):
    return card.arch_config.get("bn_eps"), spec.arch_config["bn_eps"]                     # 20
def export_to(result, run_source):
    labels = result.info.pretrained_cfg.get("label_names")                               # 22
    return labels, result.tensors["fc.weight"], result.step["loss/64"], run_source()["x"]
class TimmRunner:
    def save_weights(self, model, path):
        _save_folder(model, path, self.export_config)
def _save_folder(model, path, config: dict):
    size = int(config.get("input_size") or model.pretrained_cfg.get("input_size")[-1])   # 28
    return size, np.load(path)["logits"], os.environ["HOME"], {"a": 1}["a"]
class Resumed:
    @property
    def settings(self) -> dict:
        return self.train_state.get("settings", {})                                       # 33
def workers(resumed, run):
    return run.workers or resumed.settings.get("workers")                                 # 35
""", "porting/archs/family/__init__.py": """
def blocks(arch_config: dict):
    return arch_config.get("layers", [3, 4, 6, 3])                                        # 3
""", "porting/archs/family/from_timm.py": """
from porting.archs.family import blocks
def build(spec):
    return blocks(spec.arch_config), spec.name
"""}


def _defined(texts: dict[str, str]) -> set[str]:
    """The qualified names each module defines at its top level (functions, classes, assigned names)."""
    out = set()
    for path, text in texts.items():
        for node in ast.parse(text).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else \
                [n for t in node.targets for n in _bound(t)] if isinstance(node, ast.Assign) else []
            out |= {f"{module_name(path)}.{name}" for name in names}
    return out


def test_no_module_but_the_records_own_reads_their_data_by_string_key():
    texts = sources()
    found = record_reads(texts)
    assert not found, "\n".join(found)
    # a producer renamed or moved would let the reads of what it returns through unseen: name it here again
    assert set(PRODUCERS) <= _defined(texts), sorted(set(PRODUCERS) - _defined(texts))
    caught = record_reads({**{path: texts[path] for path in RECORD_MODULES}, **BEFORE})
    assert caught == ["porting/archs/family/__init__.py:3",
                      *(f"porting/eval.py:{n}" for n in (7, 8, 12, 14, 17, 20, 22, 28, 33, 35))], caught


def _named_source(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "source" or name.endswith("_source")


def _strings(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_strings(e) for e in node.elts)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def library_name_branches(text: str) -> list[int]:
    """Lines that compare anything named `source` (spec.source, source, key_source) with a library's name or names:
    a decision by name, which belongs in that library's record (porting.sources)."""
    lines = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_named_source(a) and _strings(b) or _strings(a) and _named_source(b)
                   for a, b in zip(operands, operands[1:])):
                lines.append(node.lineno)
        elif isinstance(node, ast.Match) and _named_source(node.subject):
            lines += [case.pattern.lineno for case in node.cases
                      if isinstance(case.pattern, ast.MatchValue) and _strings(case.pattern.value)]
    return sorted(lines)


def test_no_module_outside_the_source_libraries_decides_by_a_library_name():
    """What differs between source libraries is in their records (porting/sources/<library>/__init__.py), so a new
    library is a record, not an edit of every `if spec.source == "timm"` in the package."""
    found = [f"{path}:{n}" for path, text in sources().items() if not path.startswith("porting/sources/")
             for n in library_name_branches(text)]
    assert not found, found
    caught = 'spec.source == "timm"\nif source in ("keras", "paddleclas"): pass\n"modelzoo" != a.b.source\n' \
             'match spec.source:\n    case "timm": pass\nkey_source == "timm"'
    assert library_name_branches(caught) == [1, 2, 3, 5, 6]
    assert library_name_branches('s.source == name\nspec.source in LIBRARIES\nspec.name == "timm"') == []


@pytest.mark.parametrize("call,home", [
    ("InferenceSession(", "porting/runtimes/onnx_runtime.py"),
    ("GraphCell(", "porting/runtimes/mindspore_runtime.py"),
    ("(ms.Tensor(x))", "porting/runtimes/mindspore_runtime.py"),
    (".compile_model(", "porting/runtimes/openvino_runtime.py"),
    ("deserialize_cuda_engine(", "porting/runtimes/tensorrt_runtime.py"),
])
def test_one_place_runs_each_runtime(call, home):
    """onnxruntime sessions and MindSpore inference of porting's models live in their runtime, which everything
    else uses. (A source worker runs its library's own model in its runner, sources/<library>/runner.py: mindcv's
    and the model zoo's in MindSpore, as timm's runs in PyTorch; the parent sees them through SourceRuntime.)"""
    where = sorted(path for path, text in sources().items()
                   if call in text and not (path.startswith("porting/sources/") and path.endswith("/runner.py")))
    assert where == [home], where

"""--head: a timm or PaddleClas user's own head, described, because their state dicts carry no graph.

A user who replaced the classifier (`model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Dropout(0.3),
nn.Linear(256, 5))`, or `model.out = paddle.nn.Sequential(...)`) saves `fc.0.weight`, `fc.3.weight`...: the
tensors show the Linear and BatchNorm layers and, by the gaps in the indices, that layers without tensors sit
between them, but not which. So the user says it (`--head linear:256,relu,dropout:0.3,linear:5`, porting.heads):

- the parent turns the option into a Head (`asked_head`), refusing a library whose files carry their own graph or
  hold no head of the user's, before any framework loads;
- the worker builds the library's model with that head, reads the backbone's width into it (`resolved_head`)
  and checks the file against the model (`check_head`): a file whose head is not the one described, or not the
  library's standard one when nothing is described, is one line naming the tensors found there and the --head
  that would read them; a guess at the layers the file cannot show is offered as a guess, never ported.

No framework here: the runners hand over names and shapes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from porting.errors import PortingError, check_fits
from porting.heads import Head, parse_head, spelled
from porting.sources.registry import libraries, library

# the layers a state dict cannot show, as the user writes them in --head (for the '?' of a suggestion)
UNSEEN = "relu, gelu, dropout:P..."


def classifier_module(spec) -> tuple[str, object]:
    """(the source module of `spec`'s classifier: 'fc', 'last_linear', 'head.fc', PaddleClas 'out'..., the
    transform of its weight's row), read from the spec's weight map."""
    target = f"{spec.head}.weight"
    row = next((r for r in spec.build_weight_map().rows if r.target == target), None)
    if row is None:
        raise PortingError(f"--head: {spec.id}'s weight map has no row for its classifier '{target}'")
    return row.source.rsplit(".", 1)[0], row.transform


def asked_head(spec, head: str | Head) -> Head:
    """The head `--head` describes for `spec`, its layers named by their module paths (`fc.0`, `fc.3`) as the
    library's Sequential names them; its `features` 0 where the spelling cannot say (the worker reads it)."""
    lib = library(spec.source)
    if lib.head_source != "flag":
        flagged = " and ".join(other.title for other in libraries() if other.head_source == "flag")
        why = ("reads its head from the weights file itself: leave --head out" if lib.head_source == "graph"
               else "ports with its library's standard head only")
        raise PortingError(f"--head is for {flagged} specs, whose weights files carry no graph; {spec.id} {why}")
    module, transform = classifier_module(spec)
    if not transform.exact:  # PaddleClas's InceptionV4 and *_deeplab: Dropout(mode='downscale_in_infer')
        raise PortingError(f"--head: {spec.id} scales the pooled features before its classifier '{module}' (a "
                           f"Dropout in downscale_in_infer mode, folded into that classifier as {transform.name}), "
                           f"which a head of your own would need folded too; porting's heads do not fold it")
    if isinstance(head, Head):
        names = [layer.name for layer in head.layers]
        if head.layout != "module" or names != [f"{module}.{i}" for i in range(len(names))]:
            raise PortingError(f"--head: a head for {spec.id} is the nn.Sequential at '{module}' (layout 'module', "
                               f"layers {module}.0, {module}.1...), not layout '{head.layout}' with {names}")
        return head
    return dataclasses.replace(parse_head(head, 1, prefix=module), features=0)  # 1: a width the check takes


def head_for_target(spec, head: Head, origin: str) -> Head:
    """A checkpoint's own head (ported from `origin`, a spec) as `export --to spec` writes it: a library whose
    files carry the graph (Keras) lays it out as the card says; one whose files carry none (timm, PaddleClas)
    holds it as the nn.Sequential at its classifier's place, numbered as the source numbered it."""
    lib = library(spec.source)
    if lib.head_source == "graph":
        return head
    if lib.head_source != "flag":
        raise PortingError(f"{spec.id} cannot hold the checkpoint's head ({head.describe()}): {lib.title} models "
                           f"hold their standard head only")
    if head.headless:
        return asked_head(spec, dataclasses.replace(head, layout="module"))
    if head.layout != "module":
        raise PortingError(f"{spec.id} holds a head as the nn.Sequential at its classifier's place; the "
                           f"checkpoint's ({head.describe()}, from {origin}) is laid out '{head.layout}': it goes "
                           f"back to {origin.split(':', 1)[0]}")
    module, _ = classifier_module(spec)
    return asked_head(spec, dataclasses.replace(head, layers=tuple(
        dataclasses.replace(layer, name=f"{module}.{layer.name.rsplit('.', 1)[-1]}") for layer in head.layers)))


def resolved_head(raw: dict, features: int, model: str) -> Head:
    """The job's head (Head.to_dict) over the backbone's `features` channels: a --head's width is 0 until now;
    a card's head must take exactly what this backbone gives."""
    given = raw.get("features") if isinstance(raw, dict) else None
    if given not in (0, None, features):
        raise PortingError(f"the head takes {given} features, but {model}'s backbone gives {features}")
    head = Head.from_dict({**raw, "features": features}, "--head")
    if head.layout != "module" or head.pooling not in ("avg", "max"):
        raise PortingError(f"{model} holds a head as an nn.Sequential after global average or max pooling; this "
                           f"one is laid out '{head.layout}' after '{head.pooling}' pooling (a Keras head goes "
                           f"back to Keras)")
    fused = [layer.name for layer in head.layers if layer.kind == "dense" and layer.activation]
    if fused:
        raise PortingError(f"{model}'s Sequential holds its activations as layers of their own; {fused[0]} fuses "
                           f"one into its dense layer (Keras's Dense(activation=))")
    return head


# ---------------------------------------------------------------------------------------------- the file's head

@dataclass(frozen=True)
class Found:
    """One module of the Sequential a file holds at the classifier, as its tensors show it."""

    index: int
    kind: str  # 'dense' | 'batchnorm' | '' (tensors of a layer --head does not describe)
    units: int  # dense: outputs; batchnorm: features
    bias: bool
    shown: str  # the tensor that says what it is, with its shape: 'fc.0.weight [256, 2048]'

    @property
    def word(self) -> str:
        """Its --head word."""
        if self.kind == "dense":
            return f"linear:{self.units}" + ("" if self.bias else ":nobias")
        return "bn" if self.kind == "batchnorm" else "?"


def found_layers(shapes: Mapping[str, tuple], module: str, dense_in_out: bool, bn_stat: str) -> list[Found] | None:
    """The numbered modules of the file's Sequential at `module`, in order; None when the tensors there are not
    a Sequential's (the library's standard classifier, or nothing). `dense_in_out`: dense weights stored [in, out]
    (Paddle); `bn_stat`: the running-variance tensor that tells a BatchNorm ('running_var', Paddle '_variance')."""
    prefix = module + "."
    modules: dict[int, dict[str, tuple]] = {}
    for key, shape in shapes.items():
        if not key.startswith(prefix):
            continue
        index, dot, leaf = key[len(prefix):].partition(".")
        if not index.isdigit() or not dot or "." in leaf:
            return None
        modules.setdefault(int(index), {})[leaf] = tuple(shape)
    if not modules:
        return None
    found = []
    for index, tensors in sorted(modules.items()):
        at = f"{prefix}{index}"
        weight = tensors.get("weight")
        if bn_stat in tensors:
            stat = tensors[bn_stat]
            found.append(Found(index, "batchnorm", stat[0], True, f"{at}.{bn_stat} {list(stat)}"))
        elif weight is not None and len(weight) == 2:
            found.append(Found(index, "dense", weight[1] if dense_in_out else weight[0], "bias" in tensors,
                               f"{at}.weight {list(weight)}"))
        else:
            listed = ", ".join(f"{leaf} {list(shape)}" for leaf, shape in sorted(tensors.items()))
            found.append(Found(index, "", 0, False, f"{at} ({listed})"))
    return found


# a guess at the layers without tensors in a gap of n modules: between two layers (ReLU; ReLU, Dropout) and before
# the first (timm's own Dropout before its classifier); only these, the common ones
GUESS_BETWEEN = {1: ["relu"], 2: ["relu", "dropout:P"]}
GUESS_FIRST = {1: ["dropout:P"]}


def suggestion(found: list[Found]) -> tuple[str, str]:
    """(the --head that reads the file, '?' for each layer it shows no tensors for; the likeliest --head with
    those filled in, or '' where no gap has a likely filling)."""
    words, guess, expected = [], [], 0
    for layer in found:
        gap = layer.index - expected
        if gap:
            words += ["?"] * gap
            fill = (GUESS_FIRST if expected == 0 else GUESS_BETWEEN).get(gap)
            guess = None if guess is None or fill is None else guess + fill
        words.append(layer.word)
        guess = None if guess is None or not layer.kind else guess + [layer.word]
        expected = layer.index + 1
    return ",".join(words), ",".join(guess) if guess and "?" in words else ""


def _reading(found: list[Found] | None, module: str) -> str:
    """What the file holds at `module` and the --head that reads it, for an error line."""
    if found is None:
        return f"no {module}.* tensors, which --head none reads (no head)"
    listing = ", ".join(layer.shown for layer in found)
    unknown = next((layer for layer in found if not layer.kind), None)
    if unknown is not None:
        return (f"{listing}, and {module}.{unknown.index} is no layer --head describes (it takes linear, bn, and "
                f"layers without tensors: {UNSEEN})")
    words, guess = suggestion(found)
    if "?" not in words:
        return f"{listing}, which --head {words} reads"
    return (f"{listing}, which --head {words} reads, each ? a layer without tensors ({UNSEEN}) that the file cannot "
            f"show" + (f"; likely --head {guess}, a guess to check against your code" if guess else ""))


def check_head(path: str, what: str, have: Mapping[str, tuple], want: Mapping[str, tuple], module: str,
               head: Head | None, *, dense_in_out: bool = False, bn_stat: str = "running_var") -> None:
    """The file's tensors (`have`) against the model's (`want`: the library's model as built, with `head` when one
    is given), before anything loads: the backbone as check_fits checks it, then the classifier at `module`, a
    mismatch there one line naming the tensors the file holds at `module` and the --head that reads them."""
    prefix = module + "."
    check_fits(path, what, {k: v for k, v in have.items() if not k.startswith(prefix)},
               {k: v for k, v in want.items() if not k.startswith(prefix)})
    file_head = {k: tuple(v) for k, v in have.items() if k.startswith(prefix)}
    model_head = {k: tuple(v) for k, v in want.items() if k.startswith(prefix)}
    if file_head == model_head:
        return
    found = found_layers(file_head, module, dense_in_out, bn_stat)
    if head is None:
        if not file_head:
            raise PortingError(f"'{path}' holds no classifier (no {module}.* tensors): a {what} without its head? "
                               f"--head none ports it as a feature extractor")
        if found is not None:
            raise PortingError(f"'{path}' holds a head of its own at '{module}', not {what}'s Linear: "
                               f"{_reading(found, module)}")
        check_fits(path, what, have, want)  # neither a Sequential nor the standard head: every tensor listed
        return
    if file_head and found is None:
        shown = ", ".join(f"{k} {list(v)}" for k, v in list(file_head.items())[:2])
        raise PortingError(f"--head {spelled(head)} does not fit '{path}': it holds {what}'s own classifier "
                           f"({shown}): leave --head out")
    lacks = [f"{k} {list(v)}" for k, v in model_head.items() if k not in file_head]
    wrong = [f"{k} {list(v)}, not {list(file_head[k])}" for k, v in model_head.items()
             if k in file_head and file_head[k] != v]
    extra = [f"{k} {list(v)}" for k, v in file_head.items() if k not in model_head]
    problem = (f"it needs {', '.join(lacks[:2])}, which the file lacks" if lacks else
               f"it needs {', '.join(wrong[:2])}" if wrong else f"it has no {', '.join(extra[:2])}")
    raise PortingError(f"--head {spelled(head)} does not fit '{path}': {problem}; the file holds "
                       f"{_reading(found, module)}")

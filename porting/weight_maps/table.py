"""The table itself: rows, layers, transforms and the strict `apply()` (porting.weight_maps says how)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from porting.errors import PortingError
from porting.results import MapRow

if TYPE_CHECKING:  # conventions builds on this module
    from porting.weight_maps.conventions import Convention


@dataclass(frozen=True)
class Transform:
    """A named, shape-aware array transform (the name is what `porting map` prints). `inverse` takes the
    transformed array back (`export --to` writes a checkpoint in the source's layout through it): every
    transform a weight map uses names its inverse, so a table is read both ways and never written twice."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    inverse_fn: Callable[[np.ndarray], np.ndarray] | None = None
    exact: bool = True  # False where the inverse rounds (a folded scale): within one float32 ulp

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.fn(array))

    def inverse(self, array: np.ndarray) -> np.ndarray:
        if self.inverse_fn is None:
            raise PortingError(f"transform '{self.name}' has no inverse")
        return np.ascontiguousarray(self.inverse_fn(array))


COPY = Transform("copy", lambda a: a, lambda a: a)


def transpose(*axes: int, name: str = "") -> Transform:
    back = tuple(int(i) for i in np.argsort(axes))
    return Transform(name or f"transpose{tuple(axes)}", lambda a: np.transpose(a, axes),
                     lambda a: np.transpose(a, back))


# Keras kernels: Conv2D [kh, kw, in, out] -> OIHW; DepthwiseConv [kh, kw, C, 1] -> [C, 1, kh, kw].
HWIO_TO_OIHW = transpose(3, 2, 0, 1, name="hwio->oihw")
DEPTHWISE_HWC1_TO_C1HW = transpose(2, 3, 0, 1, name="hwc1->c1hw")
# Dense stored [in, out] (Keras, Paddle) -> MindSpore [out, in].
IN_OUT_TO_OUT_IN = transpose(1, 0, name="[in,out]->[out,in]")


def scale(factor: float, then: Transform = COPY) -> Transform:
    """`then` with a constant inference-time factor (e.g. Paddle's downscale_in_infer dropout) folded in; the
    inverse divides it out again, exact to within one float32 ulp."""
    name = f"{then.name} x{factor:g}" if then is not COPY else f"x{factor:g}"
    return Transform(name, lambda a: then.fn(a) * a.dtype.type(factor),
                     lambda a: then.inverse_fn(a / a.dtype.type(factor)), exact=False)


@dataclass(frozen=True)
class Row:
    source: str  # the source tensor; for a row with `parts`, the name shown for them
    target: str
    transform: Transform = COPY
    # source tensors concatenated along axis 0 into `target` (a grouped conv stored as one conv per group, as
    # the model zoo's SE-ResNeXt GroupConv does); empty: the row is the one tensor `source`
    parts: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return self.parts or (self.source,)


@dataclass(frozen=True)
class Layer:
    """A layer whose output parity compares: where it lives in the source and in the MindSpore model."""

    source: str
    target: str
    kind: str


@dataclass
class WeightMap:
    name: str
    rows: list[Row] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)  # fnmatch patterns of source tensors not ported
    layers: list[Layer] = field(default_factory=list)
    convention: "Convention | None" = None  # the source's naming, for conv / bn / dense / conv_bn below

    def add(self, source: str, target: str, transform: Transform = COPY) -> None:
        self.rows.append(Row(source, target, transform))

    def concat(self, parts: list[str], target: str, label: str) -> None:
        """`target` is the source tensors `parts` stacked along axis 0 (one grouped conv from a conv per group)."""
        count = len(parts)
        self.rows.append(Row(label, target, Transform(f"concat({count}, axis 0)", _stack,
                                                      lambda a: np.split(a, count, axis=0)), tuple(parts)))

    def layer(self, source: str, target: str, kind: str) -> None:
        self.layers.append(Layer(source, target, kind))

    # one call per layer, named by the source's convention ----------------------------------------------------

    def conv(self, src: str, dst: str, bias: bool = False, tap: bool = True, depthwise: bool = False) -> None:
        """A convolution: its kernel (in MindSpore's OIHW layout), its bias if any; compared unless tap=False."""
        c = self.convention
        self.add(f"{src}{c.sep}{c.depthwise_weight if depthwise else c.weight}", f"{dst}.weight",
                 c.depthwise_layout if depthwise else c.conv_layout)
        if bias:
            self.add(f"{src}{c.sep}{c.bias}", f"{dst}.bias")
        if tap:
            self.layer(src, dst, "conv")

    def bn(self, src: str, dst: str, tap: str | None = None) -> None:
        """BN tensors. `tap` is the MindSpore cell whose output equals the source module's: the BN itself by
        default, our ReLU where the source fuses the activation into its BN layer (Paddle act='relu', timm
        BatchNormAct2d)."""
        c = self.convention
        for s, d in c.bn.items():
            self.add(f"{src}{c.sep}{s}", f"{dst}.{d}")
        self.layer(src, tap or dst, "bn")

    def conv_bn(self, src: str, dst: str, act: bool = False, unit: tuple[str, str] | None = None) -> None:
        """The source's conv+BN unit `src` (children named by the convention's `unit`, or `unit`) -> our
        ConvBnAct `dst` (`conv`, `bn`, `act`); with `act` the BN's output is compared after our ReLU."""
        conv_name, bn_name = unit or self.convention.unit
        self.conv(f"{src}.{conv_name}", f"{dst}.conv")
        self.bn(f"{src}.{bn_name}", f"{dst}.bn", tap=f"{dst}.act" if act else None)

    def dense(self, src: str, dst: str, keep: float = 1.0) -> None:
        """A classifier or SE Dense layer. `keep` folds an inference-time factor into the weight (Paddle's
        Dropout(mode='downscale_in_infer') multiplies the head's input by 1 - p); the bias is not scaled. No
        layer tap: a head's output is the logits, which parity always compares."""
        c = self.convention
        layout = c.dense_layout if keep == 1.0 else scale(keep, c.dense_layout)
        self.add(f"{src}{c.sep}{c.weight if c.dense_weight is None else c.dense_weight}", f"{dst}.weight", layout)
        self.add(f"{src}{c.sep}{c.bias}", f"{dst}.bias")

    def is_ignored(self, source_name: str) -> bool:
        return any(fnmatch.fnmatchcase(source_name, pattern) for pattern in self.ignore)

    def invert(self, params: Mapping[str, np.ndarray], context: str = "") -> dict[str, np.ndarray]:
        """The table read backwards: MindSpore parameters -> the source's tensors, in the source's names and
        layouts (each row's inverse transform; a stacked row split back into its parts). Source tensors the table
        ignores are not produced: the library's own model keeps its values for them."""
        missing = [row.target for row in self.rows if row.target not in params]
        if missing:
            raise PortingError(f"weight map {self.name}{' for ' + context if context else ''}: the checkpoint has "
                               f"no parameter '{missing[0]}'" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                                 else ""))
        out: dict[str, np.ndarray] = {}
        for row in self.rows:
            value = row.transform.inverse(np.asarray(params[row.target]))
            if row.parts:
                out.update(zip(row.parts, (np.ascontiguousarray(v) for v in value)))
            else:
                out[row.source] = value
        return out

    def apply(
        self,
        source: Mapping[str, np.ndarray],
        target_shapes: Mapping[str, tuple[int, ...]],
        context: str = "",
    ) -> dict[str, np.ndarray]:
        """Map source tensors onto the target parameters; raise one error listing every problem."""
        problems: list[str] = []
        out: dict[str, np.ndarray] = {}
        used: set[str] = set()
        for row in self.rows:
            absent = [name for name in row.sources if name not in source]
            if absent:
                problems += [f"source tensor '{name}' missing" for name in absent]
                continue
            for name in row.sources:
                if name in used:
                    problems.append(f"source tensor '{name}' used twice")
                used.add(name)
            if row.target not in target_shapes:
                problems.append(f"target parameter '{row.target}' does not exist (from '{row.source}')")
                continue
            if row.target in out:
                problems.append(f"target parameter '{row.target}' filled twice")
                continue
            arrays = [np.asarray(source[name]) for name in row.sources]
            try:
                value = row.transform(arrays if row.parts else arrays[0])
            except ValueError:  # parts whose shapes cannot be stacked
                value = None
            want = tuple(target_shapes[row.target])
            if value is None or tuple(value.shape) != want:
                problems.append(
                    f"'{row.source}' {' + '.join(str(list(a.shape)) for a in arrays)} --{row.transform.name}--> "
                    f"{'?' if value is None else list(value.shape)} does not fit '{row.target}' {list(want)}"
                )
                continue
            out[row.target] = value.astype(np.float32, copy=False)
        if source and not used:  # nothing the table names is there: say what the file is instead of every tensor
            example = next(iter(source))
            raise PortingError(f"weight map {self.name} failed{' for ' + context if context else ''}: none of the "
                               f"{len(self.rows)} tensors it maps is in the file, which holds {len(source)} others "
                               f"(e.g. '{example}' {list(np.shape(source[example]))}): weights of another model or "
                               f"library?")
        for name in source:
            if name not in used and not self.is_ignored(name):
                problems.append(f"source tensor '{name}' {list(np.shape(source[name]))} is not mapped")
        for name in target_shapes:
            if name not in out and not any(p.startswith(f"target parameter '{name}'") for p in problems):
                problems.append(f"MindSpore parameter '{name}' {list(target_shapes[name])} is not filled")
        if problems:
            head = f"weight map {self.name} failed{' for ' + context if context else ''}"
            raise PortingError(f"{head} ({len(problems)} problems): " + "; ".join(problems))
        return out

    def table(self, source_shapes: Mapping[str, tuple[int, ...]] | None = None,
              target_shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[MapRow]:
        """The expanded table, one row per tensor (ignored source tensors last)."""
        rows = []
        for row in self.rows:
            shapes = [source_shapes[n] for n in row.sources if n in source_shapes] if source_shapes else []
            rows.append(MapRow(
                source=row.source,
                source_shape=(list(shapes[0]) if not row.parts else f"{len(shapes)} x {list(shapes[0])}")
                if shapes and len(shapes) == len(row.sources) else None,
                target=row.target,
                target_shape=list(target_shapes[row.target]) if target_shapes and row.target in target_shapes else None,
                transform=row.transform.name))
        for name in (source_shapes or {}):
            if self.is_ignored(name):
                rows.append(MapRow(source=name, source_shape=list(source_shapes[name]), target=None,
                                   target_shape=None, transform="drop"))
        return rows


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts, axis=0)

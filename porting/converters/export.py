"""Export a ported checkpoint: ONNX (our own writer, checked), MINDIR, AIR (Ascend only)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np

from porting import files
from porting.card import ExportInfo, ModelCard
from porting.converters.onnx_graph import OPSET
from porting.errors import PortingError, first_line

INPUT, OUTPUT = "input", "logits"
FEATURES = "features"  # the output of a feature extractor (a custom head without a classifier)
OPSETS = range(13, 22)  # checked by the tests at both ends; 17 is the default


@dataclass(frozen=True)
class OnnxOptions:
    """What deployers choose (as optimum-cli, tf2onnx, paddle2onnx and timm's onnx_export let them)."""

    opset: int = OPSET
    batch: int | None = None  # None: a dynamic batch dimension
    dynamic_size: bool = False  # dynamic height and width (every model here ends in a global pool)
    float16: bool = False  # weights and computation in float16; the input and logits stay float32
    fold_bn: bool = False  # BatchNormalization folded into the preceding Conv's weight and bias

    def input_shape(self, size: int) -> list:
        batch = self.batch or "batch"
        return [batch, 3, "height", "width"] if self.dynamic_size else [batch, 3, size, size]


def exported_card(card: ModelCard, export: ExportInfo | None = None) -> ModelCard:
    """The checkpoint's card plus what a deployment needs: class names (ImageNet's for a 1000-class model that
    has none of its own) and how the file was exported."""
    if not card.class_names and card.num_classes == 1000:
        from porting.images.labels import imagenet_classes

        card = card.replace(class_names=imagenet_classes())
    return card.replace(export=export) if export is not None else card


def onnx_export_options(options: OnnxOptions) -> ExportInfo:
    return ExportInfo(opset=options.opset, batch=options.batch, dynamic_size=options.dynamic_size,
                      precision="float16" if options.float16 else "float32", fold_bn=options.fold_bn)


def trace_onnx(net, card: ModelCard, size: int, taps: list[str] | None = None, options: OnnxOptions = OnnxOptions()):
    """The ONNX ModelProto of `net`; with `taps`, those cells' outputs become extra graph outputs.

    Returns (model, {cell name: ONNX output name}).
    """
    from porting.version import __version__
    from porting.converters.onnx_ops import trace

    graph, logits = trace(net, INPUT, options.opset)
    output = output_name(card)
    extra, tap_names = [], {}
    for name in taps or []:
        if name not in graph.taps:
            raise PortingError(f"ONNX graph has no layer '{name}'")
        value = graph.taps[name]
        tap_names[name] = output if value == logits.name else value
        if value != logits.name and value not in extra:
            extra.append(value)
    if options.fold_bn:
        graph.fold_batchnorm(keep={*extra, logits.name})
    model = graph.to_model({INPUT: options.input_shape(size)}, {output: (logits, output_shape(card, size, options))},
                           extra,
                           exported_card(card, onnx_export_options(options)).to_props(), graph_name=card.arch,
                           opset=options.opset, float16=options.float16, producer_version=__version__)
    return model, tap_names


def output_name(card: ModelCard) -> str:
    """'logits' (or the probabilities of a head that ends in a softmax), 'features' for a feature extractor."""
    return FEATURES if card.headless else OUTPUT


def output_shape(card: ModelCard, size: int, options: OnnxOptions) -> list:
    """[batch, classes]; a feature extractor's [batch, channels] after its pooling, or its whole last feature map."""
    batch = options.batch or "batch"
    head = card.custom_head
    if not card.headless:
        return [batch, card.num_classes]
    width = head.widths()[-1] if head.layers else head.pooled
    return [batch, width] if head.pooling != "none" else [batch, head.features, None, None]


def check_onnx_options(card: ModelCard, options: OnnxOptions) -> None:
    """What a model's head rules out: a head that flattens a feature map of fixed size takes one input size."""
    if options.dynamic_size and card.fixed_size:
        raise PortingError(f"--dynamic-size: the model's head flattens its {card.custom_head.map_size[0]}x"
                           f"{card.custom_head.map_size[1]} feature map, so it takes {card.fixed_size}x"
                           f"{card.fixed_size} inputs only")


def export_onnx(net, card: ModelCard, out: str | Path, size: int | None = None, inputs: tuple = (),
                options: OnnxOptions = OnnxOptions()) -> Path:
    """The checked ONNX file of `net`; `inputs` are files the output must not overwrite."""
    files.check_output(out, inputs, what="ONNX output")
    if options.opset not in OPSETS:
        raise PortingError(f"--opset {options.opset}: porting writes ONNX opsets {OPSETS[0]} to {OPSETS[-1]}")
    size = size or card.input_size
    check_onnx_options(card, options)
    model, _ = trace_onnx(net, card, size, options=options)
    return write_onnx(model, out, inputs)


def write_onnx(model, out: str | Path, inputs: tuple = ()) -> Path:
    """Check `model` with onnx.checker (full check), then write it whole or not at all."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    with files.atomic_output(out, inputs, what="ONNX output") as staged:
        onnx.save(model, str(staged.file))
    return Path(out)


def without_extra_outputs(model):
    """A copy of a traced model with the logits as its only output (what export_onnx writes)."""
    import onnx

    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    del plain.graph.output[1:]
    return plain


def export_ms(net, fmt: str, out: str | Path, size: int, batch: int = 1, inputs: tuple = (),
              card: ModelCard | None = None) -> Path:
    """MINDIR or AIR through ms.export, written in a private folder and moved into place whole; a MINDIR
    carries the checkpoint's card in its user_info (read_mindir_metadata).

    The batch is fixed: MindSpore 2.10 exports these graphs with a dynamic batch, but `mindspore.load` of
    the result then fails inside shape inference ("primitive name: raise"), so we never write such a file.
    """
    from porting.version import __version__

    fmt = fmt.upper()
    suffix = ".mindir" if fmt == "MINDIR" else ".air"
    sample = ms.Tensor(np.zeros([batch, 3, size, size], np.float32))
    extra = {}
    if fmt == "MINDIR" and card is not None:
        info = exported_card(card, ExportInfo(batch=batch, size=size)).to_props()

        def with_metadata(proto):
            proto.producer_name, proto.producer_version = "porting", __version__
            for key, value in info.items():
                proto.user_info[key] = value
        extra["custom_func"] = with_metadata
    with files.atomic_output(out, inputs, what=f"{fmt} output") as staged:
        stem = staged.dir / "model"
        try:
            ms.export(net, sample, file_name=str(stem), file_format=fmt, **extra)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError for write failures
            raise PortingError(f"cannot export {fmt} to '{out}': {first_line(exc)}") from None
        staged.file = stem.with_suffix(suffix)
    return Path(out)


def read_mindir_metadata(path: str | Path) -> dict[str, str]:
    """The user_info porting wrote into a MINDIR (empty for MINDIR files from elsewhere)."""
    from mindspore.train.mind_ir_pb2 import ModelProto

    proto = ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise PortingError(f"cannot read '{path}' as a MINDIR file: {first_line(exc)}") from None
    info = dict(proto.user_info)
    info.pop("porting_version", None)  # porting 0.2.0 wrote its version here too (now: producer_version)
    return info

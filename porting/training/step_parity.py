"""parity --train-step: one training step of the source library's own model against one call of finetune's step.

Same weights, one seeded batch of images and labels, dropout off on both sides. The source library, in its
worker, runs forward in train mode, the recipe's loss, backward and one step of the recipe's optimizer, written
from its own classes with the conversions below. porting runs one call of the step cell `finetune` trains with
(porting.training.step.train_step, GRAPH mode). Compared, each source tensor moved to MindSpore's names and
layouts by the spec's weight map: the loss, the gradient of every parameter, the update of every parameter (after
- before: the weights themselves would hide an update 1e-4 of their size), which the source library's optimizer
makes from MindSpore's own gradients in a second job, and the update of every BN moving mean and variance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from porting import archs, checkpoint, msenv
from porting.compare import compare_tensor
from porting.converters.port import port, source_head, target_shapes, weight_map_for
from porting.errors import PortingError
from porting.heads import Head
from porting.job import SourceResult, TrainStep
from porting.report import Report, ReportInfo, TrainStepInfo
from porting.sources import library
from porting.sources.inputs import make_images
from porting.sources.jobs import run_source, source_job
from porting.sources.registry import own_model
from porting.specs import ModelSpec
from porting.training.step import BN_MOMENTUM

# The reference is the source library's step in float64, from the same float32 tensors; MindSpore computes in
# float32. Per tensor t of a kind k (README "Training-step parity"):
#
#     max |ref - ms| <= (RTOL_k + NOISE x spread_k) x max |ref|   (+ 1 float32 ulp of the weights for updates)
#
# The loss and the BN statistics are forward quantities: float32 keeps them to ~1e-5 (measured), RTOL_k = 1e-4 as
# for inference parity. The updates are the source library's optimizer applied to MindSpore's own gradients from
# the same weights: the same arithmetic on the same numbers, 1e-4. Gradients are not that well defined in float32:
# a random network in train mode has pre-activations within rounding of a ReLU's kink (and max pools with
# near-ties); which of them flip depends on the summation order, and a train-mode BN's backward spreads each flip
# over its whole channel (its mean terms), moving every gradient before it by ~1 / (N x H x W). PyTorch's own
# float32 step differs from its float64 step by up to 1.3e-1 of a tensor's largest gradient (Xception,
# SE-ResNeXt50), depending on nothing but the order it sums in (measured, README). spread_k is the source's own
# float32 error in this very run (two samples: the images as given and moved by 1e-6), the largest over the kind's
# tensors: for a model or size beyond those measured (InceptionV4, without residuals, far more).
TRAIN_RTOL = 1e-4
GRAD_RTOL = 2e-1
NOISE = 2.0
ZERO = 1e-6  # a gradient under this fraction of the step's largest is zero at float32's resolution

# How the recipe, given in MindSpore's terms, is written in each source library (README "Training-step parity").
CONVERSIONS = {
    "BN momentum": "MindSpore m (moving = m moving + (1 - m) batch): PyTorch momentum = 1 - m; Keras and Paddle m",
    "label smoothing": "MindSpore f (1 - f on the class, f / (K - 1) elsewhere): PyTorch, Keras and Paddle "
                       "eps = f K / (K - 1) (their 1 - eps + eps / K, eps / K)",
    "weight decay": "L2 added to the gradient of conv / dense weights only, as MindSpore's decay_filter in "
                    "finetune's parameter groups (no decoupled form anywhere)",
    "loss scale": "MindSpore scales the loss by it and divides the gradients (and scales the decay up by it "
                  "first); the sources run unscaled: in float32 a power of two is exact",
    "Momentum": "first step v = g, w -= lr v: torch.optim.SGD, keras.optimizers.SGD, paddle.optimizer.Momentum",
    "RMSProp": "MindSpore's (TensorFlow 1's): mean square starts at 1, epsilon inside the root; no library's own "
               "optimizer computes that, so the sources update by hand in their own tensors",
}


def _labels(seed: int, batch: int, num_classes: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, num_classes, batch).astype(np.int64)


def request(spec: ModelSpec, labels: np.ndarray, batch: int, **changes) -> tuple[TrainStep, object]:
    """(the step asked of the source, the recipe) for the spec's architecture: the model zoo's recipe as
    finetune trains it on this CPU (float32) at its own peak learning rate, not scaled to the batch: one step at
    the scaled rate (4e-4 at batch 2) moves many weights by less than their float32 resolution, and this step is
    a comparison, not training. `changes` alter what the source is asked (the mutation tests: bn_momentum,
    label_smooth_factor, decay_bn)."""
    from porting.training.recipes import load

    recipe, _ = load(None, spec.arch, device="CPU")
    step = TrainStep(labels=[int(v) for v in labels], lr=recipe.lr_max, optimizer=recipe.optimizer,
                     momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                     label_smooth_factor=recipe.label_smooth_factor, bn_momentum=BN_MOMENTUM,
                     rmsprop_decay=recipe.rmsprop_decay, rmsprop_epsilon=recipe.rmsprop_epsilon)
    return replace(step, **changes), recipe


def train_step_parity(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None, batch: int = 2,
                      size: int | None = None, input_seed: int = 1234, rtol: float = TRAIN_RTOL,
                      variants: list[dict] | None = None, head: Head | None = None,
                      log=lambda msg: None) -> list[Report]:
    """One report per variant of the source's step (rows 'loss', 'grad', 'update', 'bn-update' per MindSpore
    tensor), against one MindSpore step. A variant alters the source's step only (TrainStep fields: what the
    mutation tests get wrong on purpose); [{}] (the default) is the step as the recipe says. `head`: the user's own
    head the source's model has (else the one its worker reports): finetune's step holds the backbone as the head
    says its source trained it (its BatchNorms' statistics, frozen parameters), with dropout off on both sides."""
    from porting.training.step import train_step

    variants = variants or [{}]
    file_head, file_size = own_model(spec, weights)  # a user's Keras model: its head, the size it was built at
    head, size = head or file_head, size or file_size
    if head is not None and head.headless:
        raise PortingError(f"--train-step: {spec.id} here is a feature extractor (no classifier): no loss to step on")
    num_classes = head.num_classes if head is not None else spec.num_classes
    wm = weight_map_for(spec, head)
    x = make_images(input_seed, batch, size, spec.mean, spec.std)
    labels = _labels(input_seed, batch, num_classes)
    steps = [request(spec, labels, batch, **changes) for changes in variants]
    recipe = steps[0][1]
    t0 = time.perf_counter()
    log(f"one training step of {spec.id} ({batch}x3x{size}x{size}, {recipe.optimizer}, lr {recipe.lr_max:g}) in its "
        f"{spec.source} worker, in float32 (twice, the images moved by 1e-6 the second time) and float64")
    with source_job(spec, weights=weights, seed=seed, inputs=x, train_step=steps[0][0], head=head) as done:
        msenv.setup(graph=True)  # GRAPH mode, as finetune trains
        net = archs.build(spec.arch, spec.arch_config, num_classes, *((head, spec.head) if head else ()))
        result = done()
    if head is None and result.info.head is not None:  # the file's own head (Keras): its classes draw the labels
        log("the model has its own head: the step again, with labels of its classes")
        return train_step_parity(spec, weights=weights, seed=seed, batch=batch, size=size, input_seed=input_seed,
                                 rtol=rtol, variants=variants, head=source_head(spec, result), log=log)
    ported = port(spec, result, weight_map=wm, net=net, head=head, log=log)
    if ported.card.background_dropped or ported.card.head_reinitialized:
        raise PortingError(f"--train-step compares {spec.id} as its source computes it; its port drops or "
                           f"re-draws classes")
    checkpoint.load_params(net, ported.params, spec.id)
    shapes = target_shapes(spec, int(result.info.num_classes), net, head)
    folded = {row.target: row.transform.name for row in wm.rows if not row.transform.exact}
    held = _hold_as_source(net, ported.card, log) if head is not None else set()

    # finetune's step cell, returning its gradients (x the loss scale)
    import mindspore as ms

    net, cell = train_step(net, recipe, num_classes, float(recipe.lr_max), return_grad=True)
    before = {p.name: p.asnumpy().astype(np.float64) for p in net.get_parameters()}
    log("one call of finetune's training step in MindSpore (GRAPH mode)")
    loss, grads = cell(ms.Tensor(x), ms.Tensor(labels.astype(np.int32)))
    ours = MindSporeStep(np.float64(loss.asnumpy()),
                         {k: v.asnumpy().astype(np.float64) / recipe.loss_scale for k, v in grads.items()},
                         before, {p.name: p.asnumpy().astype(np.float64) for p in net.get_parameters()})
    # MindSpore's gradients in the source's names and layouts, for the source's optimizer (folded rows aside)
    given = wm.invert({**{k: np.zeros(v.shape, np.float32) for k, v in ours.before.items()},
                       **{k: v.astype(np.float32) for k, v in ours.grads.items()}}, context=spec.id)
    given_for = {row.source: row.target for row in wm.rows if not row.parts}
    given = {k: v for k, v in given.items() if given_for.get(k) in ours.grads and given_for[k] not in folded}

    reports = []
    for i, (step, _) in enumerate(steps):
        if i:
            log(f"the source's step with {variants[i]}")
            result = run_source(spec, weights=weights, seed=seed, inputs=x, train_step=step, head=head)
        log(f"the {spec.source} optimizer on MindSpore's gradients")
        optimized = run_source(spec, weights=weights, seed=seed, train_step=step, step_grads=given, head=head)
        reports.append(_report(spec, wm, shapes, folded, result, optimized, ours, step, recipe, rtol, held))
        info = reports[-1].info
        info.batch, info.size, info.inputs = batch, size, "seeded synthetic images and labels"
        info.weights = weights or (f"random-init:{seed}" if seed is not None else "pretrained")
        info.train_step.source_changes = variants[i] or None
        info.seconds = round(time.perf_counter() - t0, 1)
    return reports


@dataclass
class MindSporeStep:
    """One call of finetune's step cell: its loss, its gradients (loss scale divided out), the parameters and BN
    statistics before and after it, all float64 copies by MindSpore name."""

    loss: np.float64
    grads: dict[str, np.ndarray]
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]


def _hold_as_source(net, card, log) -> set[str]:
    """finetune's hold on a custom head's backbone (training.step.hold_backbone: its BatchNorms on their moving
    statistics, its parameters frozen, where its source trained it so), dropout off, a closing softmax trained on
    its log, as finetune trains; returns the moving statistics held (their update must be none, on both sides)."""
    from porting.training.step import hold_backbone, without_dropout

    head = card.custom_head
    bn_inference = head.backbone_bn == "inference"
    held, frozen = hold_backbone(net, card.head, bn_inference, not head.backbone_trainable)
    without_dropout(net)
    if card.output == "probabilities":
        dict(net.cells_and_names())[card.head].log_probabilities()
    if held or frozen:
        log(f"the backbone as its source trains it: {held} BatchNorms on their moving statistics, {frozen} parameters "
            f"frozen")
    inside = f"{card.head}."
    return {name for name, _ in net.parameters_and_names()
            if bn_inference and not name.startswith(inside) and name.endswith((".moving_mean", ".moving_variance"))}


def _head_momenta(spec: ModelSpec, result: SourceResult) -> dict[str, float]:
    """The momentum of each BatchNorm of the source model's own head (SourceInfo.head) by its moving variance's
    MindSpore name: the head keeps its own (a Keras head's 0.99) where the backbone takes the recipe's."""
    if result.info.head is None:
        return {}
    head = Head.from_dict(result.info.head, spec.id)
    return {f"{spec.head}.{i}.moving_variance": layer.momentum for i, layer in enumerate(head.layers)
            if layer.kind == "batchnorm"}


def _report(spec, wm, shapes, folded, result: SourceResult, optimized: SourceResult, ours: MindSporeStep,
            step: TrainStep, recipe, rtol: float, held: set[str] = frozenset()) -> Report:
    """The rows of one source step (`result`, and its optimizer on MindSpore's gradients: `optimized`) against
    MindSpore's (`ours`). `held`: moving statistics both sides leave as they are (their updates are zero: a
    result, not a dead layer)."""
    report = Report(spec=spec.id, rtol=rtol, info=ReportInfo(
        noise=NOISE, grad_rtol=GRAD_RTOL,
        train_step=TrainStepInfo(optimizer=recipe.optimizer, lr=recipe.lr_max, momentum=recipe.momentum,
                                 weight_decay=recipe.weight_decay, label_smooth_factor=recipe.label_smooth_factor,
                                 loss_scale=recipe.loss_scale, bn_momentum=BN_MOMENTUM, conversions=CONVERSIONS)))
    before = {k: v.astype(np.float64) for k, v in result.tensors.items()}

    def mapped(prefix: str, arrays: dict, default=None) -> dict[str, np.ndarray]:
        got = {k[len(prefix):]: v.astype(np.float64) for k, v in arrays.items() if k.startswith(prefix)}
        return wm.apply({k: got[k] if k in got else default(v) for k, v in before.items()}, shapes, context=spec.id)

    src_before = mapped("", before)
    runs = {run: (mapped(f"grad/{run}/", result.step, np.zeros_like), mapped(f"after/{run}/", result.step))
            for run in ("32", "32p", "64")}
    optimizer_after = mapped("after/", optimized.step)
    counts = {k[len("count/"):]: int(v) for k, v in result.step.items() if k.startswith("count/")}
    variance_of = {row.target: row.sources[0] for row in wm.rows if row.target.endswith(".moving_variance")}

    # (name, kind, reference, the source's float32 runs, MindSpore, resolution)
    entries: list[tuple] = [("loss", "loss", result.step["loss/64"], [result.step["loss/32"], result.step["loss/32p"]],
                             ours.loss, 0.0)]
    skipped = {}
    trainable = list(ours.grads)
    for name in trainable:
        if name in folded:  # W = f W_src: its gradient is g_src / f and one SGD step moves f W_src by lr g_src / f
            skipped[name] = (f"{folded[name]}: a folded inference scale f; its update differs from the source's by "
                             f"f squared, so a port with it fine-tunes that layer at lr / f^2")
            continue
        entries.append((name, "grad", runs["64"][0][name], [runs[r][0][name] for r in ("32", "32p")],
                        ours.grads[name], 0.0))
    for name in trainable:  # the source's optimizer on MindSpore's own gradients: the same arithmetic
        if name not in folded:
            entries.append((name, "update", optimizer_after[name] - src_before[name], [],
                            ours.after[name] - ours.before[name], _resolution(ours.after[name])))
    for name in [n for n in ours.before if n.endswith((".moving_mean", ".moving_variance"))]:
        deltas = [runs[r][1][name] - src_before[name] for r in ("64", "32", "32p")]
        # a library whose BN running variance takes the biased batch variance (its record says why; MindSpore's
        # and PyTorch's take the unbiased one): its update is converted with the layer's count n, then compared
        # (a BN the source did not update has no count: a layer it froze alone, which MindSpore's step trains:
        # its update, none, is compared as it is and disagrees)
        if name.endswith(".moving_variance") and library(spec.source).biased_bn_variance and name not in held \
                and variance_of[name] in counts:
            n = counts[variance_of[name]]
            momentum = _head_momenta(spec, result).get(name, step.bn_momentum)  # a head's BN: its own
            deltas = [_unbiased_update(d, src_before[name], n, momentum) for d in deltas]
        entries.append((name, "bn-update", deltas[0], deltas[1:], ours.after[name] - ours.before[name],
                        _resolution(ours.after[name])))
    # A gradient that is zero in exact arithmetic (a BN's beta before a linear layer and another train-mode BN,
    # which removes any shift) is float32's rounding in every library: compared at the step's scale, not its own;
    # it and its update (zero at the weights' resolution) may be constant: a result, not a dead tensor.
    floor = {"grad": ZERO * max(float(np.abs(e[2]).max()) for e in entries if e[1] == "grad")}
    zero = {e[0] for e in entries if e[1] == "grad" and float(np.abs(e[2]).max()) <= floor["grad"]}
    spread = spreads(entries, floor)
    for name, kind, ref, _singles, got, resolution in entries:
        report.rows.append(compare_tensor(name, "mindspore", ref, got,
                                          (GRAD_RTOL if kind == "grad" else rtol) + NOISE * spread.get(kind, 0.0),
                                          target="" if kind == "loss" else name, kind=kind,
                                          floor=floor.get(kind, 0.0), atol=resolution,
                                          constant_ok=(name in zero and kind in ("grad", "update"))
                                          or (name in held and kind == "bn-update")))
    report.info.skipped, report.info.spread = skipped, spread
    return report


def spreads(entries, floor: dict[str, float]) -> dict[str, float]:
    """Per kind, the source's own float32 error: the largest max |ref - float32| / max(max |ref|, the kind's floor)
    over its tensors."""
    spread: dict[str, float] = {}
    for _name, kind, ref, singles, _got, _resolution in entries:
        if not singles:
            continue
        ref = np.asarray(ref, np.float64)
        scale = max(float(np.abs(ref).max()), floor.get(kind, 0.0), 1e-30)
        own = max((float(np.abs(ref - np.asarray(v, np.float64)).max()) / scale for v in singles), default=0.0)
        spread[kind] = max(spread.get(kind, 0.0), own)
    return spread


def _resolution(weights: np.ndarray) -> float:
    """An update read as after - before of float32 weights is known to one float32 ulp of the largest of them
    (each side rounds its new weights by half an ulp)."""
    return float(np.spacing(np.float32(np.abs(weights).max())))


def _unbiased_update(delta: np.ndarray, before: np.ndarray, n: int, momentum: float) -> np.ndarray:
    """A biased-variance update (1 - m)(b - v) as the unbiased one: b = v + delta / (1 - m), u = b n / (n - 1)."""
    biased = before + delta / (1.0 - momentum)
    return (1.0 - momentum) * (biased * n / (n - 1) - before)

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
from porting.converters.port import port, target_shapes
from porting.errors import PortingError
from porting.job import SourceResult, TrainStep
from porting.report import Report, ReportInfo, TrainStepInfo
from porting.sources import library
from porting.sources.inputs import make_images
from porting.sources.jobs import run_source, source_job
from porting.specs import ModelSpec, build_weight_map
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
                      variants: list[dict] | None = None, log=lambda msg: None) -> list[Report]:
    """One report per variant of the source's step (rows 'loss', 'grad', 'update', 'bn-update' per MindSpore
    tensor), against one MindSpore step. A variant alters the source's step only (TrainStep fields: what the
    mutation tests get wrong on purpose); [{}] (the default) is the step as the recipe says."""
    from porting.training.step import train_step

    variants = variants or [{}]
    size = size or spec.input_size
    wm = build_weight_map(spec)
    x = make_images(input_seed, batch, size, spec.mean, spec.std)
    labels = _labels(input_seed, batch, spec.num_classes)
    steps = [request(spec, labels, batch, **changes) for changes in variants]
    recipe = steps[0][1]
    t0 = time.perf_counter()
    log(f"one training step of {spec.id} ({batch}x3x{size}x{size}, {recipe.optimizer}, lr {recipe.lr_max:g}) in its "
        f"{spec.source} worker, in float32 (twice, the images moved by 1e-6 the second time) and float64")
    with source_job(spec, weights=weights, seed=seed, inputs=x, train_step=steps[0][0]) as done:
        msenv.setup(graph=True)  # GRAPH mode, as finetune trains
        net = archs.build(spec.arch, spec.arch_config, spec.num_classes)
        result = done()
    ported = port(spec, result, weight_map=wm, net=net, log=log)
    if ported.card.background_dropped or ported.card.head_reinitialized:
        raise PortingError(f"--train-step compares {spec.id} as its source computes it; its port drops or "
                           f"re-draws classes")
    checkpoint.load_params(net, ported.params, spec.id)
    shapes = target_shapes(spec, int(result.info.num_classes), net)
    folded = {row.target: row.transform.name for row in wm.rows if not row.transform.exact}

    # finetune's step cell, returning its gradients (x the loss scale)
    import mindspore as ms

    net, cell = train_step(net, recipe, spec.num_classes, float(recipe.lr_max), return_grad=True)
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
            result = run_source(spec, weights=weights, seed=seed, inputs=x, train_step=step)
        log(f"the {spec.source} optimizer on MindSpore's gradients")
        optimized = run_source(spec, weights=weights, seed=seed, train_step=step, step_grads=given)
        reports.append(_report(spec, wm, shapes, folded, result, optimized, ours, step, recipe, rtol))
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


def _report(spec, wm, shapes, folded, result: SourceResult, optimized: SourceResult, ours: MindSporeStep,
            step: TrainStep, recipe, rtol: float) -> Report:
    """The rows of one source step (`result`, and its optimizer on MindSpore's gradients: `optimized`) against
    MindSpore's (`ours`)."""
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
        if name.endswith(".moving_variance") and library(spec.source).biased_bn_variance:
            n = counts[variance_of[name]]
            deltas = [_unbiased_update(d, src_before[name], n, step.bn_momentum) for d in deltas]
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
                                          constant_ok=name in zero and kind in ("grad", "update")))
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

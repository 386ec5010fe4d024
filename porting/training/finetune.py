"""Fine-tune a ported checkpoint in MindSpore, on one device or data-parallel under msrun.

Checkpoints hold the model, the optimizer state (moments, global step) and the porting metadata, so
`--resume`, `porting eval` and `porting export` work on them directly. Only rank 0 writes files. The
recipe's learning rates are scaled to the global batch (recipes.scaled); a loss that explodes stops the run
with a line that names the fix; with DATA/val, validation top-1/top-5 is logged after every epoch.
"""
from __future__ import annotations

import math
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from porting import checkpoint, files, models
from porting.errors import PortingError
from porting.models.layers import init_head
from porting.training import data as data_mod
from porting.training.evaluate import run_dataset, scores
from porting.training.recipes import Recipe, as_dict, lr_schedule, scaled

DIVERGED = 3.0  # stop when the recent mean loss is this many times its start (or chance level)


class CrossEntropySmooth(nn.Cell):
    """Softmax cross entropy with label smoothing, as in the model zoo's loss.py."""

    def __init__(self, num_classes: int, smooth_factor: float = 0.0):
        super().__init__()
        self.onehot = ops.OneHot()
        self.on_value = ms.Tensor(1.0 - smooth_factor, ms.float32)
        self.off_value = ms.Tensor(smooth_factor / max(1, num_classes - 1), ms.float32)
        self.num_classes = num_classes
        self.ce = nn.SoftmaxCrossEntropyWithLogits(sparse=False, reduction="mean")

    def construct(self, logits, label):
        target = self.onehot(label, self.num_classes, self.on_value, self.off_value)
        return self.ce(logits, target)


@dataclass
class Options:
    ckpt: Path
    data: Path
    output: Path
    recipe: Recipe
    num_classes: int | None = None
    image_size: int | None = None
    device: str | None = None
    distributed: bool = False
    resume: bool = False
    workers: int | None = None
    log_every: int = 0  # 0: once per epoch, like the model zoo's LossMonitor
    seed: int = 0
    shard: tuple[int, int] | None = None  # (shard_id, num_shards) on a single worker
    max_steps: int = 0  # > 0: stop this invocation after N steps (a budgeted run; --resume continues)
    save_rank_weights: bool = False  # every rank writes OUTPUT/rank_R.npz of its trainable weights at the end
    lr_given: tuple[str, ...] = ()  # learning rates the user set: not scaled to the batch


class TrainLog:
    """OUTPUT/train.log in the model zoo's format, created with its folder only when the first line comes."""

    def __init__(self, folder: Path, enabled: bool):
        self.path, self.enabled, self.file = folder / "train.log", enabled, None

    def write(self, line: str) -> None:
        if not self.enabled:
            return
        if self.file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", buffering=1)
        self.file.write(line + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _parallel_setup(distributed: bool) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    return rank, size


def _check_amp(level: str, device: str) -> str:
    if level != "O0" and device == "CPU":
        raise PortingError(f"--amp-level {level} computes in float16, which MindSpore's CPU backend does not train; "
                           f"use --amp-level O0 on CPU, or --device GPU/Ascend")
    return level


def _checkpoints(output: Path) -> list[tuple[int, int, Path]]:
    found = []
    for path in output.glob("*.ckpt") if output.is_dir() else []:
        m = re.search(r"-(\d+)_(\d+)\.ckpt$", path.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), path))
    return sorted(found)


def _newest(output: Path) -> Path | None:
    found = _checkpoints(output)
    return found[-1][2] if found else None


def _param_groups(net, weight_decay: float):
    """Weight decay on conv/dense weights only, as the model zoo does (not on BN or biases)."""
    decay = [p for p in net.trainable_params() if p.name.endswith(".weight")]
    no_decay = [p for p in net.trainable_params() if not p.name.endswith(".weight")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": net.trainable_params()}]


def _train_labels(train_root: Path, meta: dict, num_classes: int) -> tuple[dict[str, int], bool]:
    """(class folder -> index, new head?): the checkpoint's own head is kept only if its classes are the folders'."""
    if num_classes == int(meta["num_classes"]):
        try:
            labels = data_mod.label_mapping(train_root, meta)
            if sorted(labels.values()) == list(range(num_classes)):
                return labels, False
        except PortingError:
            pass
    return {name: i for i, name in enumerate(data_mod.class_names(train_root))}, True


def _divergence(recent: deque, start: float, global_step: int, lr_max: float) -> PortingError | None:
    """A NaN/Inf loss at once; otherwise the mean over a full window of recent steps against the start."""
    mean = sum(recent) / len(recent)
    if math.isfinite(mean) and (len(recent) < recent.maxlen or mean <= DIVERGED * start):
        return None
    return PortingError(f"training diverged: mean loss {mean:.4g} over the last {len(recent)} step(s) at global "
                        f"step {global_step}, against {start:.4g} at the start; lower the learning rate (e.g. "
                        f"--lr-max {lr_max / 10:.2g}) or raise --batch-size")


def finetune(opts: Options, log=print, progress=None) -> Path:
    from porting import msenv

    device = msenv.setup(opts.device)
    _check_amp(opts.recipe.amp_level, device)
    ckpt, data = Path(os.path.abspath(opts.ckpt)), Path(os.path.abspath(opts.data))
    output = files.writable_folder(opts.output)
    if not opts.resume and _newest(output) is not None:
        raise PortingError(f"'{opts.output}' already holds checkpoints of a run ({_newest(output).name}): --resume "
                           f"continues it; or choose another --output-dir")
    if opts.resume and _newest(output) is None:
        raise PortingError(f"--resume: no checkpoint named like '*-E_S.ckpt' in '{opts.output}'")
    rank, world = _parallel_setup(opts.distributed)
    is_main = rank == 0
    ms.set_seed(opts.seed)  # every rank draws the same new head and the same shuffles

    params, meta = checkpoint.load(ckpt)
    train_root, val_root = data / "train", data / "val"
    if not train_root.is_dir():
        raise PortingError(f"'{opts.data}' has no train/ folder (expected {opts.data}/train/<class>/<image>)")
    classes = data_mod.class_names(train_root)
    num_classes = opts.num_classes or len(classes)
    if num_classes != len(classes):
        raise PortingError(f"--num-classes {num_classes} but '{train_root}' has {len(classes)} class folders")
    size = models.check_input_size(meta["arch"], opts.image_size or int(meta["input_size"]), what="--image-size")
    labels, new_head = _train_labels(train_root, meta, num_classes)
    class_order = sorted(labels, key=labels.get)
    val_labels = data_mod.label_mapping(val_root, dict(meta, num_classes=num_classes, class_names=class_order)) \
        if val_root.is_dir() else None
    for root in (train_root, val_root) if val_labels else (train_root,):
        data_mod.check_images(root, log if is_main else (lambda msg: None), progress if is_main else None)

    net = models.build(meta["arch"], meta["arch_config"], num_classes)
    head = meta.get("head", "fc")
    if new_head:
        params = {k: v for k, v in params.items() if not k.startswith(head + ".")}
        init_head(net, head, num_classes, seed=opts.seed)
        if is_main:
            log(f"new head '{head}' for {num_classes} classes ({', '.join(class_order[:5])}"
                f"{'...' if num_classes > 5 else ''}); the checkpoint had {meta['num_classes']}")
        params.update({n: p.asnumpy() for n, p in net.parameters_and_names() if n.startswith(head + ".")})
    checkpoint.load_params(net, params, str(ckpt), train_state_ok=True)

    shards = (world, rank) if opts.distributed else (opts.shard[1], opts.shard[0]) if opts.shard else (None, None)
    global_batch = opts.recipe.batch_size * world
    recipe, factor = scaled(opts.recipe, global_batch, opts.lr_given)
    dataset = data_mod.image_folder(train_root, meta, size, recipe.batch_size, train=True, workers=opts.workers,
                                    num_shards=shards[0], shard_id=shards[1], seed=opts.seed, labels=labels)
    val_set = data_mod.image_folder(val_root, meta, size, recipe.batch_size, train=False, workers=opts.workers,
                                    labels=val_labels) if (val_labels and is_main) else None
    steps_per_epoch = dataset.get_dataset_size()
    total_steps = steps_per_epoch * recipe.epochs
    lr = ms.Tensor(np.asarray(lr_schedule(recipe, steps_per_epoch, recipe.epochs), np.float32))
    groups = _param_groups(net, recipe.weight_decay)
    if recipe.optimizer == "momentum":
        opt = nn.Momentum(groups, lr, recipe.momentum, loss_scale=recipe.loss_scale)
    else:
        opt = nn.RMSProp(groups, lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                         epsilon=recipe.rmsprop_epsilon, loss_scale=recipe.loss_scale)
    if recipe.amp_level != "O0":
        net = ms.amp.auto_mixed_precision(net, recipe.amp_level)
    loss_fn = CrossEntropySmooth(num_classes, recipe.label_smooth_factor)
    # Fixed loss scale without overflow skipping, as the model zoo: loss x scale, gradients / scale in the optimizer.
    step_cell = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt, sens=float(recipe.loss_scale))
    step_cell.set_train(True)

    start = _resume(step_cell, output, steps_per_epoch, log if is_main else (lambda msg: None)) if opts.resume else 0
    if start >= total_steps:
        raise PortingError(f"nothing to do: '{opts.output}' already holds {start} of {total_steps} steps")

    out_meta = dict(meta, num_classes=num_classes, class_names=class_order, input_size=size,
                    head_reinitialized=bool(meta.get("head_reinitialized") or new_head),
                    finetuned_from=ckpt.name)
    out_meta.pop("background_class", None)  # the classes are now the folders'
    prefix = meta["arch"]
    train_log = TrainLog(output, is_main)
    if is_main:
        scaling = ", ".join(f"{k} {getattr(opts.recipe, k):g} -> {getattr(recipe, k):g}" for k in
                            ("lr_init", "lr_max", "lr_end") if k not in opts.lr_given)
        if scaling and factor != 1:
            log(f"learning rates scaled to the global batch {global_batch} (recipe tuned for "
                f"{recipe.reference_batch}, x{factor:g}): {scaling}")
        log(f"training {prefix} on {num_classes} classes at {size}px: {steps_per_epoch} steps/epoch x "
            f"{recipe.epochs} epochs, batch {recipe.batch_size}{f' x {world} ranks' if world > 1 else ''}, "
            f"{recipe.optimizer}, lr {recipe.lr_init:g} -> {recipe.lr_max:g} -> {recipe.lr_end:g} "
            f"({recipe.lr_decay_mode}), device {device}")

    def save(global_step: int, loss_value: float) -> None:
        epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        epoch_label = epoch if step_in_epoch == 0 else epoch + 1
        tensors = {p.name: p.asnumpy() for _, p in step_cell.parameters_and_names()}
        tensors = {k: v for k, v in tensors.items() if k != "learning_rate"}  # rebuilt from the recipe
        path = output / f"{prefix}-{epoch_label}_{step_in_epoch or steps_per_epoch}.ckpt"
        checkpoint.save(tensors, path, dict(out_meta, train_state={
            "global_step": global_step, "steps_per_epoch": steps_per_epoch, "epochs": recipe.epochs,
            "world_size": world, "loss": loss_value, "recipe": as_dict(recipe)}), inputs=(ckpt,))
        kept = [p for _, _, p in _checkpoints(output) if p.name.startswith(prefix + "-")]
        for old in sorted(kept, key=lambda p: p.stat().st_mtime)[: max(0, len(kept) - recipe.keep_checkpoint_max)]:
            old.unlink()

    def validate(epoch: int) -> None:
        net.set_train(False)
        result = scores(*run_dataset(net, val_set, progress, f"val {epoch}"))
        net.set_train(True)
        line = (f"epoch: {epoch} validation: top-1 {result['Top_1_Acc']:.4f}, top-5 {result['Top_5_Acc']:.4f}, "
                f"loss {result['Loss']:.4f}")
        train_log.write(line)
        log(line)

    global_step, ran = start, 0
    first_epoch = start // steps_per_epoch
    recent: deque = deque(maxlen=min(20, steps_per_epoch))
    start_loss = None
    iterator = dataset.create_tuple_iterator(num_epochs=recipe.epochs - first_epoch)
    with data_mod.pipeline_cwd():
        try:
            for epoch in range(first_epoch, recipe.epochs):
                t_epoch = time.perf_counter()
                steps_this_epoch = 0
                skip = start % steps_per_epoch if epoch == first_epoch else 0
                task = progress.add_task(f"epoch {epoch + 1}/{recipe.epochs}", total=steps_per_epoch,
                                         completed=skip) if (progress and is_main) else None
                loss_value = float("nan")
                for i, (images, batch_labels) in enumerate(iterator):
                    if i < skip:
                        continue
                    loss_value = float(step_cell(images, batch_labels).asnumpy())
                    global_step += 1
                    ran += 1
                    steps_this_epoch += 1
                    if start_loss is None:
                        start_loss = max(loss_value, math.log(num_classes)) if math.isfinite(loss_value) else 1.0
                    recent.append(loss_value)
                    diverged = _divergence(recent, start_loss, global_step, recipe.lr_max)
                    if diverged:
                        raise diverged
                    if task is not None:
                        progress.update(task, advance=1,
                                        description=f"epoch {epoch + 1}/{recipe.epochs} loss {loss_value:.4f}")
                    if opts.log_every and (i + 1) % opts.log_every == 0 or i + 1 == steps_per_epoch:
                        train_log.write(f"epoch: {epoch + 1} step: {i + 1}, loss is {loss_value}")
                    save_now = (recipe.save_checkpoint_steps and global_step % recipe.save_checkpoint_steps == 0) or (
                        not recipe.save_checkpoint_steps and i + 1 == steps_per_epoch
                        and (epoch + 1) % recipe.save_checkpoint_epochs == 0) or global_step == total_steps
                    stop = opts.max_steps and ran >= opts.max_steps
                    if is_main and (save_now or stop):
                        save(global_step, loss_value)
                    if stop:
                        break
                if steps_this_epoch:
                    ms_total = (time.perf_counter() - t_epoch) * 1000
                    train_log.write(f"epoch time: {ms_total:.3f} ms, per step time: {ms_total / steps_this_epoch:.3f} ms")
                    if val_set is not None and steps_this_epoch + skip == steps_per_epoch:
                        validate(epoch + 1)
                if opts.max_steps and ran >= opts.max_steps:
                    if is_main:
                        log(f"stopped after {ran} steps (--max-steps) at global step {global_step}; --resume continues")
                    break
        finally:
            train_log.close()
    if opts.save_rank_weights:
        # Data parallel keeps trainable weights identical on every rank; BN moving statistics are each rank's own
        # (no SyncBN, as in the model zoo), and only rank 0's are checkpointed.
        with files.atomic_output(output / f"rank_{rank}.npz") as staged, open(staged.file, "wb") as f:
            np.savez(f, **{p.name: p.asnumpy() for p in net.trainable_params()})
    newest = _newest(output) if is_main else None
    if is_main:
        log(f"done: global step {global_step} of {total_steps}; newest checkpoint {newest}")
    return newest


def _resume(step_cell, output: Path, steps_per_epoch: int, log) -> int:
    """Restore model and optimizer state from the newest checkpoint in `output`; returns its global step."""
    last = _newest(output)
    state, last_meta = checkpoint.load(last)
    train_state = last_meta.get("train_state") or {}
    if train_state.get("steps_per_epoch") not in (None, steps_per_epoch):
        raise PortingError(f"--resume: '{last}' was saved with {train_state['steps_per_epoch']} steps per epoch, "
                           f"this run has {steps_per_epoch} (same data, batch size and workers needed)")
    restored = 0
    for _, param in step_cell.parameters_and_names():
        if param.name in state:
            dtype = np.int32 if param.dtype == ms.int32 else np.float32
            param.set_data(ms.Tensor(state[param.name].astype(dtype)))
            restored += 1
    start = int(train_state.get("global_step", 0))
    log(f"resuming from {last.name}: global step {start} (epoch {start // steps_per_epoch + 1}, "
        f"step {start % steps_per_epoch}), {restored} tensors of model and optimizer state restored")
    return start

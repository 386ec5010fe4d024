"""Fine-tune a ported checkpoint in MindSpore, on one device or data-parallel under msrun.

Checkpoints hold the model, the optimizer state (moments, global step) and the porting metadata, so
`--resume`, `porting eval` and `porting export` work on them directly. Only rank 0 writes files.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from porting import checkpoint, models
from porting.errors import PortingError
from porting.models.layers import init_head
from porting.training import data as data_mod
from porting.training.recipes import Recipe, as_dict, lr_schedule


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


def _parallel_setup(distributed: bool) -> tuple[int, int]:
    if not distributed:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, size = get_rank(), get_group_size()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    return rank, size


def _check_amp(level: str, device: str) -> str:
    if level not in ("O0", "O1", "O2", "O3"):
        raise PortingError(f"--amp-level must be O0, O1, O2 or O3, not '{level}'")
    if level != "O0" and device == "CPU":
        raise PortingError(f"--amp-level {level} computes in float16, which MindSpore's CPU backend does not train; "
                           f"use --amp-level O0 on CPU, or --device GPU/Ascend")
    return level


def _newest(output: Path) -> Path | None:
    found = []
    for path in output.glob("*.ckpt"):
        m = re.search(r"-(\d+)_(\d+)\.ckpt$", path.name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), path))
    return max(found)[2] if found else None


def _param_groups(net, weight_decay: float):
    """Weight decay on conv/dense weights only, as the model zoo does (not on BN or biases)."""
    decay = [p for p in net.trainable_params() if p.name.endswith(".weight")]
    no_decay = [p for p in net.trainable_params() if not p.name.endswith(".weight")]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": net.trainable_params()}]


def finetune(opts: Options, log=print, progress=None) -> Path:
    from porting import msenv

    device = msenv.setup(opts.device)
    recipe = opts.recipe
    _check_amp(recipe.amp_level, device)
    rank, world = _parallel_setup(opts.distributed)
    is_main = rank == 0
    ms.set_seed(opts.seed)  # every rank draws the same new head and the same shuffles

    params, meta = checkpoint.load(opts.ckpt)
    train_root = opts.data / "train"
    if not train_root.is_dir():
        raise PortingError(f"'{opts.data}' has no train/ folder (expected {opts.data}/train/<class>/<image>)")
    classes = data_mod.class_names(train_root)
    num_classes = opts.num_classes or len(classes)
    if num_classes != len(classes):
        raise PortingError(f"--num-classes {num_classes} but '{train_root}' has {len(classes)} class folders")
    size = opts.image_size or int(meta["input_size"])

    net = models.build(meta["arch"], meta["arch_config"], num_classes)
    head = meta.get("head", "fc")
    new_head = num_classes != int(meta["num_classes"])
    if new_head:
        params = {k: v for k, v in params.items() if not k.startswith(head + ".")}
        init_head(net, head, num_classes, seed=opts.seed)
        if is_main:
            log(f"new head '{head}' for {num_classes} classes ({', '.join(classes[:5])}"
                f"{'...' if len(classes) > 5 else ''}); the checkpoint had {meta['num_classes']}")
        params.update({n: p.asnumpy() for n, p in net.parameters_and_names() if n.startswith(head + ".")})
    checkpoint.load_params(net, params, str(opts.ckpt), train_state_ok=True)

    shards = (world, rank) if opts.distributed else (opts.shard[1], opts.shard[0]) if opts.shard else (None, None)
    per_rank_batch = recipe.batch_size
    dataset = data_mod.image_folder(train_root, meta, size, per_rank_batch, train=True, workers=opts.workers,
                                    num_shards=shards[0], shard_id=shards[1], seed=opts.seed)
    steps_per_epoch = dataset.get_dataset_size()
    total_steps = steps_per_epoch * recipe.epochs
    lrs = lr_schedule(recipe, steps_per_epoch, recipe.epochs)
    lr = ms.Tensor(np.asarray(lrs, np.float32))
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

    start = 0
    if opts.resume:
        last = _newest(opts.output)
        if last is None:
            raise PortingError(f"--resume: no checkpoint named like '*-E_S.ckpt' in '{opts.output}'")
        state, last_meta = checkpoint.load(last)
        train_state = last_meta.get("train_state") or {}
        if train_state.get("steps_per_epoch") not in (None, steps_per_epoch):
            raise PortingError(f"--resume: '{last}' was saved with {train_state['steps_per_epoch']} steps per epoch, "
                               f"this run has {steps_per_epoch} (same data, batch size and workers needed)")
        restored = 0
        for name, param in step_cell.parameters_and_names():
            if param.name in state:
                dtype = np.int32 if param.dtype == ms.int32 else np.float32
                param.set_data(ms.Tensor(state[param.name].astype(dtype)))
                restored += 1
        start = int(train_state.get("global_step", 0))
        if is_main:
            log(f"resuming from {last.name}: global step {start} (epoch {start // steps_per_epoch + 1}, "
                f"step {start % steps_per_epoch}), {restored} tensors of model and optimizer state restored")
    if start >= total_steps:
        raise PortingError(f"nothing to do: '{opts.output}' already holds {start} of {total_steps} steps")

    out_meta = dict(meta, num_classes=num_classes, class_names=classes, input_size=size,
                    head_reinitialized=bool(meta.get("head_reinitialized") or new_head),
                    finetuned_from=str(opts.ckpt.name))
    prefix = meta["arch"]
    logfile = None
    if is_main:
        opts.output.mkdir(parents=True, exist_ok=True)
        logfile = open(opts.output / "train.log", "a", buffering=1)
        log(f"training {prefix} on {len(classes)} classes at {size}px: {steps_per_epoch} steps/epoch x "
            f"{recipe.epochs} epochs, batch {per_rank_batch}{f' x {world} ranks' if world > 1 else ''}, "
            f"{recipe.optimizer}, lr {recipe.lr_init:g} -> {recipe.lr_max:g} -> {recipe.lr_end:g} "
            f"({recipe.lr_decay_mode}), device {device}")

    def save(global_step: int, loss_value: float) -> None:
        epoch, step_in_epoch = divmod(global_step, steps_per_epoch)
        epoch_label = epoch if step_in_epoch == 0 else epoch + 1
        tensors = {p.name: p.asnumpy() for _, p in step_cell.parameters_and_names()}
        tensors = {k: v for k, v in tensors.items() if k != "learning_rate"}  # rebuilt from the recipe
        path = opts.output / f"{prefix}-{epoch_label}_{step_in_epoch or steps_per_epoch}.ckpt"
        checkpoint.save(tensors, path, dict(out_meta, train_state={
            "global_step": global_step, "steps_per_epoch": steps_per_epoch, "epochs": recipe.epochs,
            "world_size": world, "loss": loss_value, "recipe": as_dict(recipe)}))
        kept = sorted(opts.output.glob(f"{prefix}-*_*.ckpt"), key=lambda p: p.stat().st_mtime)
        for old in kept[: max(0, len(kept) - recipe.keep_checkpoint_max)]:
            old.unlink()

    global_step = start
    ran = 0
    iterator = dataset.create_tuple_iterator(num_epochs=recipe.epochs - start // steps_per_epoch)
    first_epoch = start // steps_per_epoch
    for epoch in range(first_epoch, recipe.epochs):
        t_epoch = time.perf_counter()
        steps_this_epoch = 0
        skip = start % steps_per_epoch if epoch == first_epoch else 0
        task = progress.add_task(f"epoch {epoch + 1}/{recipe.epochs}", total=steps_per_epoch,
                                 completed=skip) if (progress and is_main) else None
        loss_value = float("nan")
        for i, (images, labels) in enumerate(iterator):
            if i < skip:
                continue
            loss_value = float(step_cell(images, labels).asnumpy())
            global_step += 1
            ran += 1
            steps_this_epoch += 1
            if not np.isfinite(loss_value):
                raise PortingError(f"loss became {loss_value} at global step {global_step}: lower --lr-max")
            if task is not None:
                progress.update(task, advance=1, description=f"epoch {epoch + 1}/{recipe.epochs} loss {loss_value:.4f}")
            if is_main and (opts.log_every and (i + 1) % opts.log_every == 0 or i + 1 == steps_per_epoch):
                logfile.write(f"epoch: {epoch + 1} step: {i + 1}, loss is {loss_value}\n")
            save_now = (recipe.save_checkpoint_steps and global_step % recipe.save_checkpoint_steps == 0) or (
                not recipe.save_checkpoint_steps and i + 1 == steps_per_epoch
                and (epoch + 1) % recipe.save_checkpoint_epochs == 0) or global_step == total_steps
            stop = opts.max_steps and ran >= opts.max_steps
            if is_main and (save_now or stop):
                save(global_step, loss_value)
            if stop:
                break
        if is_main and steps_this_epoch:
            ms_total = (time.perf_counter() - t_epoch) * 1000
            logfile.write(f"epoch time: {ms_total:.3f} ms, per step time: {ms_total / steps_this_epoch:.3f} ms\n")
        if opts.max_steps and ran >= opts.max_steps:
            if is_main:
                log(f"stopped after {ran} steps (--max-steps) at global step {global_step}; --resume continues")
            break
    if logfile:
        logfile.close()
    if opts.save_rank_weights:
        # Data parallel keeps trainable weights identical on every rank; BN moving statistics are each rank's own
        # (no SyncBN, as in the model zoo), and only rank 0's are checkpointed.
        opts.output.mkdir(parents=True, exist_ok=True)
        np.savez(opts.output / f"rank_{rank}.npz", **{p.name: p.asnumpy() for p in net.trainable_params()})
    newest = _newest(opts.output) if is_main else None
    if is_main:
        log(f"done: global step {global_step} of {total_steps}; newest checkpoint {newest}")
    return newest

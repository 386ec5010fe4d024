"""Fine-tune a ported checkpoint in MindSpore, on one device or data-parallel under msrun.

Checkpoints hold the model, the optimizer state (moments, global step) and the porting metadata, so
`--resume`, `porting eval` and `porting export` work on them directly. Only rank 0 writes files. The
recipe's learning rates are scaled to the global batch (recipes.scaled); a loss that explodes stops the run
with a line that names the fix; with DATA/val, validation top-1/top-5 is logged after every epoch.
"""
from __future__ import annotations

import json
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

from porting import archs, checkpoint, files
from porting.card import ModelCard, TrainState
from porting.converters.port import added_dense_name
from porting.options import TrainingRun
from porting.errors import PortingError
from porting.archs.layers import init_head
from porting.images.folders import check_images, class_names
from porting.images.labels import label_mapping
from porting.images.pipelines import TrainFolder, default_workers, folder_dataset, pipeline_cwd
from porting.images.preprocessing import preprocessing
from porting.deploy.evaluate import score_dataset
from porting.runtimes.mindspore_runtime import MindSporeRuntime
from porting.training.recipes import LR_KEYS, Recipe, as_dict, lr_schedule, scaled
from porting.training.step import (CrossEntropySmooth, bn_settings, hold_backbone, set_bn_momentum,  # noqa: F401
                                   train_step)

DIVERGED = 3.0  # stop when the recent mean loss is this many times its start (or chance level)
# recipe fields that say when checkpoints are written, not what is trained: a resumed run may change them
CHECKPOINTING = ("save_checkpoint_epochs", "save_checkpoint_steps", "keep_checkpoint_max")


@dataclass(frozen=True)
class Options:
    ckpt: Path
    data: Path
    output: Path
    recipe: Recipe
    run: TrainingRun = TrainingRun()
    lr_given: tuple[str, ...] = ()  # learning rates the user set: not scaled to the batch


def net_head(net, card: ModelCard):
    """The classifier cell of a built network (card.head: 'fc')."""
    return dict(net.cells_and_names())[card.head]


class TrainLog:
    """OUTPUT/train.log in the model zoo's format, created with its folder by the first line written: the
    trainer writes its opening line once the first step is done, so a run stopped before any step (Ctrl-C
    during graph compilation) leaves no output folder behind."""

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


def _train_labels(train_root: Path, card: ModelCard, num_classes: int) -> tuple[dict[str, int], bool]:
    """(class folder -> index, new head?): the checkpoint's own head is kept only if its classes are the folders'."""
    if num_classes == card.num_classes:
        try:
            labels = label_mapping(train_root, card)
            if sorted(labels.values()) == list(range(num_classes)):
                return labels, False
        except PortingError:
            pass
    return {name: i for i, name in enumerate(class_names(train_root))}, True


def _divergence(recent: deque, start: float, global_step: int, lr_max: float) -> PortingError | None:
    """A NaN/Inf loss at once; otherwise the mean over a full window of recent steps against the start."""
    mean = sum(recent) / len(recent)
    if math.isfinite(mean) and (len(recent) < recent.maxlen or mean <= DIVERGED * start):
        return None
    return PortingError(f"training diverged: mean loss {mean:.4g} over the last {len(recent)} step(s) at global "
                        f"step {global_step}, against {start:.4g} at the start; lower the learning rate (e.g. "
                        f"--lr-max {lr_max / 10:.2g}) or raise --batch-size")


@dataclass(frozen=True)
class TrainStream:
    """A run's training batches from global step `start` to `total`, epoch after epoch, each epoch from a pipeline
    of its own (TrainFolder.epoch): the batch of every step is the same whichever step the run started from."""

    data: TrainFolder
    start: int
    total: int
    numpy: bool = False  # NumPy arrays (for a GeneratorDataset) instead of MindSpore tensors

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self):
        first, skip = divmod(self.start, self.data.steps_per_epoch)
        for epoch in range(first, self.total // self.data.steps_per_epoch):
            yield from self.data.epoch(epoch, skip if epoch == first else 0, numpy=self.numpy)


class HostSteps:
    """One training step per call, on the next batch of the stream (CPU, or --no-dataset-sink)."""

    def __init__(self, step_cell, stream: TrainStream):
        self.size, self.step_cell = 1, step_cell
        self.batches = iter(stream)

    def run(self) -> float:
        images, labels = next(self.batches)
        return float(self.step_cell(images, labels).asnumpy())


class SinkSteps:
    """`size` training steps per call with the data sunk to the device (Ascend/GPU), as the model zoo trains. The
    device reads the stream's batches, those HostSteps would take, through one GeneratorDataset: one sink graph
    for the whole run, though each epoch is a pipeline of its own."""

    def __init__(self, step_cell, stream: TrainStream, size: int, graph: bool):
        import mindspore.dataset as ds

        self.size = size
        batches = ds.GeneratorDataset(stream, ["image", "label"], shuffle=False, num_parallel_workers=1,
                                      python_multiprocessing=False)
        self.fn = ms.data_sink(step_cell, batches, sink_size=size, jit_config=ms.JitConfig() if graph else None)

    def run(self) -> float:
        return float(self.fn().asnumpy())


def sink_size(steps_per_epoch: int, *intervals: int) -> int:
    """The largest number of steps per sink call that still lands on every epoch end, log line, checkpoint,
    --max-steps stop and resume point."""
    size = steps_per_epoch
    for interval in intervals:
        if interval:
            size = math.gcd(size, interval)
    return size


def finetune(opts: Options, log=print, progress=None) -> Path:
    from porting import msenv

    device = msenv.setup(opts.run.device, graph=not opts.run.pynative)
    _check_amp(opts.recipe.amp_level, device)
    sink = device != "CPU" if opts.run.dataset_sink is None else opts.run.dataset_sink
    if sink and device == "CPU":
        raise PortingError("--dataset-sink needs an Ascend or GPU device; MindSpore's CPU backend feeds batches "
                           "from the host")
    ckpt, data = Path(os.path.abspath(opts.ckpt)), Path(os.path.abspath(opts.data))
    output = files.writable_folder(opts.output)
    newest = _newest(output)
    if not opts.run.resume and newest is not None:
        raise PortingError(f"'{opts.output}' already holds checkpoints of a run ({newest.name}): --resume "
                           f"continues it; or choose another --output-dir")
    if opts.run.resume and newest is None:
        raise PortingError(f"--resume: no checkpoint named like '*-E_S.ckpt' in '{opts.output}'")
    rank, world = _parallel_setup(opts.run.distributed)
    ms.set_seed(opts.run.seed)  # every rank draws the same new head (the data seeds each epoch: TrainFolder)
    trainer = Trainer(opts, ckpt, data, output, device, rank, world, log, progress)
    with pipeline_cwd():
        trainer.train(sink)
    if opts.run.save_rank_weights:
        # Data parallel keeps trainable weights identical on every rank; BN moving statistics are each rank's own
        # (no SyncBN, as in the model zoo), and only rank 0's are checkpointed.
        with files.atomic_output(output / f"rank_{rank}.npz") as staged, open(staged.file, "wb") as f:
            np.savez(f, **{p.name: p.asnumpy() for p in trainer.net.trainable_params()})
    newest = _newest(output) if trainer.is_main else None
    if trainer.is_main:
        log(f"done: global step {trainer.global_step} of {trainer.total_steps}; newest checkpoint {newest}")
    return newest


class Trainer:
    """One fine-tuning run: the data, the network and its optimizer, then the loop (checkpoints, log lines,
    validation, the divergence stop) over a stepper that runs one step (host) or several (sink) per call."""

    def __init__(self, opts: Options, ckpt: Path, data: Path, output: Path, device: str, rank: int, world: int,
                 log, progress):
        self.opts, self.ckpt, self.output, self.world, self.rank = opts, ckpt, output, world, rank
        self.is_main = rank == 0
        self.log = log if self.is_main else (lambda msg: None)
        self.progress = progress if self.is_main else None
        resumed = Resumed.newest(output) if opts.run.resume else None
        params, card = checkpoint.load(ckpt)
        train_root, val_root = data / "train", data / "val"
        if not train_root.is_dir():
            raise PortingError(f"'{opts.data}' has no train/ folder (expected {opts.data}/train/<class>/<image>)")
        classes = class_names(train_root)
        num_classes = opts.run.num_classes or len(classes)
        if num_classes != len(classes):
            raise PortingError(f"--num-classes {num_classes} but '{train_root}' has {len(classes)} class folders")
        size = card.check_size(archs.check_input_size(card.arch, opts.run.image_size or card.input_size,
                                                      what="--image-size"), "--image-size")
        labels, new_head = _train_labels(train_root, card, num_classes)
        class_order = sorted(labels, key=labels.get)
        val_labels = label_mapping(val_root, card.replace(num_classes=num_classes, class_names=class_order)) \
            if val_root.is_dir() else None
        shards = (world, rank) if opts.run.distributed else (opts.run.shard[1], opts.run.shard[0]) if opts.run.shard else (None, None)
        global_batch = opts.recipe.batch_size * world
        recipe, factor = scaled(opts.recipe, global_batch, opts.lr_given)
        self.recipe = recipe
        # the augmentation's random draws depend on the number of workers: a resumed run keeps its run's
        workers = opts.run.workers or (resumed.train_state.workers if resumed else None) or default_workers()
        custom = card.custom_head
        backbone_bn = opts.run.backbone_bn or (custom.backbone_bn if custom is not None else "train")
        train_backbone = opts.run.train_backbone or custom is None or custom.backbone_trainable
        self.settings = {"seed": opts.run.seed, "workers": workers, "image_size": size, "num_classes": num_classes,
                         "ranks": world, "shard": "{}/{}".format(*opts.run.shard) if opts.run.shard else None,
                         "bn_momentum": opts.run.bn_momentum,
                         **({"backbone_bn": backbone_bn, "train_backbone": train_backbone}
                            if custom is not None or backbone_bn != "train" else {}),
                         **{k: v for k, v in as_dict(recipe).items() if k not in CHECKPOINTING}}
        if resumed:
            resumed.check(self.settings)
        for root in (train_root, val_root) if val_labels else (train_root,):
            check_images(root, self.log, self.progress)

        head = card.head  # the cell a new classifier replaces: the head's last dense layer where it has its own
        if new_head and custom is not None:
            custom = custom.with_classes(num_classes, added_dense_name(custom, card.head))
            head = f"{card.head}.{custom.last_dense}"
        elif custom is not None:
            head = f"{card.head}.{custom.last_dense}"
        self.net = net = archs.build(card.arch, card.arch_config, num_classes, custom, card.head)
        if new_head:
            params = {k: v for k, v in params.items() if not k.startswith(head + ".")}
            init_head(net, head, num_classes, seed=opts.run.seed)
            what = "new head" if card.custom_head is None else "new classifier (the head's last dense layer)"
            self.log(f"{what} '{head}' for {num_classes} classes ({', '.join(class_order[:5])}"
                     f"{'...' if num_classes > 5 else ''}); the checkpoint had "
                     + (f"{card.num_classes}" if not card.headless else "none (a feature extractor)"))
            params.update({n: p.asnumpy() for n, p in net.parameters_and_names() if n.startswith(head + ".")})
        checkpoint.load_params(net, params, str(ckpt), train_state_ok=True)
        self._hold_backbone(net, card.replace(custom_head=custom), backbone_bn, train_backbone)

        self.data = TrainFolder(train_root, card, size, recipe.batch_size, labels, workers, num_shards=shards[0],
                                shard_id=shards[1], seed=opts.run.seed)
        self.val_set = folder_dataset(val_root, val_labels, preprocessing(card, size=size),
                                               recipe.batch_size, opts.run.workers) if (val_labels and self.is_main) else None
        self.steps_per_epoch = self.data.steps_per_epoch
        self.total_steps = self.steps_per_epoch * recipe.epochs
        lr = ms.Tensor(np.asarray(lr_schedule(recipe, self.steps_per_epoch, recipe.epochs), np.float32))
        if opts.run.bn_momentum is not None:
            set_bn_momentum(net, opts.run.bn_momentum)
        momenta, eps = bn_settings(net)
        origin = "from --bn-momentum" if opts.run.bn_momentum is not None else "the recipe's own"
        self.log(f"BatchNorm: momentum {', '.join(f'{m:g}' for m in momenta)} in MindSpore's convention (moving = m x "
                 f"moving + (1 - m) x batch: PyTorch's momentum = 1 - m, Keras's and Paddle's m), {origin}; eps "
                 f"{', '.join(f'{e:g}' for e in eps)}, the checkpoint's ({card.arch} as its source built it)")
        self.net, self.step_cell = train_step(net, recipe, num_classes, lr)
        self.start = resumed.restore(self.step_cell, self.steps_per_epoch, self.log) if resumed else 0
        # the divergence stop's state: a resumed run stops where the run it continues would have
        self.start_loss = resumed.train_state.start_loss if resumed else None
        self.recent_losses = list(resumed.train_state.recent_losses) if resumed else []
        if self.start >= self.total_steps:
            raise PortingError(f"nothing to do: '{opts.output}' already holds {self.start} of {self.total_steps} "
                               f"steps")
        self.global_step = self.start
        self.num_classes = num_classes
        self.card = card.replace(num_classes=num_classes, class_names=class_order, input_size=size,
                                 head_reinitialized=card.head_reinitialized or new_head, finetuned_from=ckpt.name,
                                 custom_head=custom, background_class=None)  # the classes are now the folders'
        self.prefix = card.arch
        self.train_log = TrainLog(output, self.is_main)
        scaling = ", ".join(f"{k} {getattr(opts.recipe, k):g} -> {getattr(recipe, k):g}" for k in
                            LR_KEYS if k not in opts.lr_given)
        if scaling and factor != 1:
            self.log(f"learning rates scaled to the global batch {global_batch} (recipe tuned for "
                     f"{recipe.reference_batch}, x{factor:g}): {scaling}")
        self.opening = (f"training {self.prefix} on {num_classes} classes at {size}px: {self.steps_per_epoch} "
                        f"steps/epoch x {recipe.epochs} epochs, batch {recipe.batch_size}"
                        f"{f' x {world} ranks' if world > 1 else ''}, {recipe.optimizer}, lr {recipe.lr_init:g} -> "
                        f"{recipe.lr_max:g} -> {recipe.lr_end:g} ({recipe.lr_decay_mode}), device {device}, "
                        f"{'PYNATIVE' if opts.run.pynative else 'GRAPH'} mode")
        self.log(self.opening)

    def _hold_backbone(self, net, card: ModelCard, backbone_bn: str, train_backbone: bool) -> None:
        """The backbone as its source trained it (a custom head's backbone_bn and backbone_trainable) unless the
        run says otherwise; a head that ends in a softmax trains on its log (the loss takes logits). Logged."""
        custom = card.custom_head
        held, frozen = hold_backbone(net, card.head, backbone_bn == "inference", not train_backbone)
        if held:
            why = ("as its source ran it (training=False)" if custom is not None and custom.backbone_bn == "inference"
                   and self.opts.run.backbone_bn is None else "--backbone-bn inference")
            self.log(f"backbone BatchNorm: inference mode, {why}: its {held} BatchNorms normalise with their moving "
                     f"statistics, which stay as they are (--backbone-bn train updates them)")
        elif custom is not None:
            why = "--backbone-bn train" if self.opts.run.backbone_bn else "as its source trained it"
            self.log(f"backbone BatchNorm: training mode, {why}: batch statistics, moving statistics updated")
        if frozen:
            self.log(f"backbone frozen, as its source froze it (trainable=False): {frozen} parameters stay as they are, "
                     f"the head trains (--train-backbone trains them too)")
        elif custom is not None and not custom.backbone_trainable:
            self.log("backbone trained (--train-backbone), though its source froze it")
        if custom is not None and card.output == "probabilities" and net_head(net, card).log_probabilities():
            self.log("the head ends in a softmax: it trains on the log of its probabilities, which the loss reads "
                     "as logits (the same cross entropy)")

    def save(self, loss_value: float, start_loss: float, recent: deque) -> None:
        epoch, step_in_epoch = divmod(self.global_step, self.steps_per_epoch)
        epoch_label = epoch if step_in_epoch == 0 else epoch + 1
        tensors = {p.name: p.asnumpy() for _, p in self.step_cell.parameters_and_names()}
        tensors = {k: v for k, v in tensors.items() if k != "learning_rate"}  # rebuilt from the recipe
        path = self.output / f"{self.prefix}-{epoch_label}_{step_in_epoch or self.steps_per_epoch}.ckpt"
        checkpoint.save(tensors, path, self.card.replace(train_state=TrainState(
            global_step=self.global_step, steps_per_epoch=self.steps_per_epoch, epochs=self.recipe.epochs,
            world_size=self.world, loss=loss_value, recipe=as_dict(self.recipe), settings=self.settings,
            start_loss=start_loss, recent_losses=list(recent))), inputs=(self.ckpt,))
        kept = [p for _, _, p in _checkpoints(self.output) if p.name.startswith(self.prefix + "-")]
        for old in sorted(kept, key=lambda p: p.stat().st_mtime)[: max(0, len(kept) - self.recipe.keep_checkpoint_max)]:
            old.unlink()

    def validate(self, epoch: int) -> None:
        self.net.set_train(False)
        with MindSporeRuntime(self.net) as runtime:
            result = score_dataset(runtime.logits, self.val_set, self.progress, f"val {epoch}")
        self.net.set_train(True)
        line = f"epoch: {epoch} validation: top-1 {result.top1:.4f}, top-5 {result.top5:.4f}, loss {result.loss:.4f}"
        self.train_log.write(line)
        self.log(line)

    def train(self, sink: bool) -> None:
        opts, recipe, spe = self.opts, self.recipe, self.steps_per_epoch
        stream = TrainStream(self.data, self.start, self.total_steps, numpy=sink)
        if sink:
            steps = SinkSteps(self.step_cell, stream, sink_size(spe, opts.run.log_every, recipe.save_checkpoint_steps,
                                                                opts.run.max_steps, self.start % spe),
                              graph=not opts.run.pynative)
        else:
            steps = HostSteps(self.step_cell, stream)
        recent: deque = deque(self.recent_losses, maxlen=max(1, min(20, spe) // steps.size))
        start_loss, ran, task, t_epoch, in_epoch = self.start_loss, 0, None, time.perf_counter(), 0
        opening = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.opening}"
                   + (f", resuming at global step {self.start}" if self.start else ""))
        try:
            while self.global_step < self.total_steps:
                epoch = self.global_step // spe + 1
                if task is None and self.progress is not None:
                    task = self.progress.add_task(f"epoch {epoch}/{recipe.epochs}", total=spe,
                                                  completed=self.global_step % spe)
                loss = steps.run()
                if not ran:
                    self.train_log.write(opening)
                self.global_step += steps.size
                ran += steps.size
                in_epoch += steps.size
                position = self.global_step % spe or spe  # the step within its epoch, 1-based
                if start_loss is None:
                    start_loss = max(loss, math.log(self.num_classes)) if math.isfinite(loss) else 1.0
                recent.append(loss)
                diverged = _divergence(recent, start_loss, self.global_step, recipe.lr_max)
                if diverged:
                    raise diverged
                if task is not None:
                    self.progress.update(task, advance=steps.size,
                                         description=f"epoch {epoch}/{recipe.epochs} loss {loss:.4f}")
                if opts.run.log_every and position % opts.run.log_every == 0 or position == spe:
                    self.train_log.write(f"epoch: {epoch} step: {position}, loss is {loss}")
                stop = opts.run.max_steps and ran >= opts.run.max_steps
                save_now = (recipe.save_checkpoint_steps and self.global_step % recipe.save_checkpoint_steps == 0) or (
                    not recipe.save_checkpoint_steps and position == spe and epoch % recipe.save_checkpoint_epochs == 0
                ) or self.global_step == self.total_steps
                if self.is_main and (save_now or stop):
                    self.save(loss, start_loss, recent)
                if position == spe:
                    ms_total = (time.perf_counter() - t_epoch) * 1000
                    self.train_log.write(f"epoch time: {ms_total:.3f} ms, per step time: {ms_total / in_epoch:.3f} ms")
                    if self.val_set is not None:
                        self.validate(epoch)
                    task, t_epoch, in_epoch = None, time.perf_counter(), 0
                if stop:
                    self.log(f"stopped after {ran} steps (--max-steps) at global step {self.global_step}; --resume "
                             f"continues")
                    break
        finally:
            self.train_log.close()


def _shown(setting) -> str:
    return "unset" if setting is None else str(setting)


@dataclass(frozen=True)
class Resumed:
    """The newest checkpoint of the run that --resume continues: its tensors (model and optimizer state) and
    train_state (step, the settings it trained with, the divergence stop's state)."""

    path: Path
    tensors: dict
    train_state: TrainState

    @classmethod
    def newest(cls, output: Path) -> Resumed:
        path = _newest(output)
        tensors, card = checkpoint.load(path)
        return cls(path, tensors, card.train_state or TrainState())

    @property
    def settings(self) -> dict:
        return self.train_state.settings

    def check(self, settings: dict) -> None:
        """A resumed run is the run it continues only with the same settings (recipe, seed, workers...): refuse
        others. (Checkpoints written before the settings were recorded have none to check.)"""
        current = json.loads(json.dumps(settings))  # as the checkpoint keeps them: tuples become lists
        changed = [f"{key} {_shown(self.settings[key])} (this run: {_shown(value)})" for key, value in current.items()
                   if key in self.settings and self.settings[key] != value]
        if changed:
            raise PortingError(f"--resume: {self.path.name} was trained with {', '.join(changed)}; resume with its "
                               f"settings, or start a new run in another --output-dir")
        workers, cpus = current["workers"], os.cpu_count() or 1
        if workers > cpus:
            raise PortingError(f"--resume: {self.path.name} was trained with {workers} dataset workers (its random "
                               f"crops depend on their number) and this machine has {cpus} CPUs")

    def restore(self, step_cell, steps_per_epoch: int, log) -> int:
        """Model and optimizer state into `step_cell`; returns the global step to continue from."""
        if self.train_state.steps_per_epoch not in (None, steps_per_epoch):
            raise PortingError(f"--resume: '{self.path}' was saved with {self.train_state.steps_per_epoch} steps "
                               f"per epoch, this run has {steps_per_epoch}: the training folder or the batch size "
                               f"changed")
        restored = 0
        for _, param in step_cell.parameters_and_names():
            if param.name in self.tensors:
                dtype = np.int32 if param.dtype == ms.int32 else np.float32
                param.set_data(ms.Tensor(self.tensors[param.name].astype(dtype)))
                restored += 1
        start = self.train_state.global_step
        log(f"resuming from {self.path.name}: global step {start} (epoch {start // steps_per_epoch + 1}, "
            f"step {start % steps_per_epoch}), {restored} tensors of model and optimizer state restored")
        return start

"""The MindSpore model-zoo training recipes (../shared/seeds 000, 001, 002) as overridable defaults.

Precedence: recipe < YAML config file (--config) < flags. The YAML takes the keys below and the model zoo's
own names for them (`epoch_size`, `use_label_smooth`, `device_target`...: a default_config.yaml works as it
is); keys of the model zoo's scripts that porting has no use for are ignored with a warning, anything else
(a typo) is refused. Every value is checked for type and range.

The recipes' learning rates were tuned for the model zoo's global batch (8 devices x 128 = 1024). Fine-tuning
runs at other batches, so the recipe's own learning rates are scaled linearly by global batch / 1024 (the
linear scaling rule, Goyal et al. 2017); a learning rate the user sets (flag or YAML) is used as given.
"""
from __future__ import annotations

import math
from dataclasses import asdict, fields, replace
from pathlib import Path

from porting.archs import DEVICE_CHANGES, RECIPES, Recipe  # noqa: F401 - declared by the families
from porting.errors import PortingError


DEVICES = ("Ascend", "GPU", "CPU")


def for_device(name: str, device: str) -> Recipe:
    """The model zoo's recipe `name` as its configs set it for `device` (Ascend, GPU or CPU)."""
    changes = DEVICE_CHANGES[name].get("GPU" if device == "CPU" else device, {})
    recipe = replace(RECIPES[name], **changes)
    return replace(recipe, amp_level="O0") if device == "CPU" else recipe


LR_KEYS = ("lr_init", "lr_max", "lr_end")

# (kind, lowest, highest, lowest_open, highest_open) per key; choices for the strings
_RANGES = {
    "lr_init": ("float", 0, None), "lr_max": ("float", 0, None), "lr_end": ("float", 0, None),
    "warmup_epochs": ("float", 0, None), "momentum": ("float", 0, 1, False, True),
    "weight_decay": ("float", 0, None), "rmsprop_decay": ("float", 0, 1, False, True),
    "rmsprop_epsilon": ("float", 0, None, True), "label_smooth_factor": ("float", 0, 1, False, True),
    "loss_scale": ("float", 1, None), "batch_size": ("int", 1, None), "epochs": ("int", 1, None),
    "save_checkpoint_epochs": ("int", 1, None), "save_checkpoint_steps": ("int", 0, None),
    "keep_checkpoint_max": ("int", 1, None), "reference_batch": ("int", 1, None),
}
_CHOICES = {"optimizer": ("momentum", "rmsprop"), "lr_decay_mode": ("linear", "cosine"),
            "amp_level": ("O0", "O1", "O2", "O3")}

# the model zoo's names (default_config*.yaml) -> ours. SE_ResNeXt50's ckpt_interval counts epochs (its train.py
# saves every ckpt_interval x steps_per_epoch steps).
ALIASES = {"epoch_size": "epochs", "max_epoch": "epochs", "per_batch_size": "batch_size", "lr": "lr_max",
           "eta_min": "lr_end", "smooth_factor": "label_smooth_factor", "decay": "rmsprop_decay",
           "epsilon": "rmsprop_epsilon", "ckpt_save_max": "keep_checkpoint_max",
           "ckpt_interval": "save_checkpoint_epochs", "lr_scheduler": "lr_decay_mode"}
_VALUE_ALIASES = {"lr_decay_mode": {"liner": "linear", "cosine_annealing": "cosine"}}  # 'liner': seed 000's
# model-zoo keys with no meaning here (paths, ModelArts, launch settings: porting takes those as flags)
IGNORED = {"save_checkpoint", "save_checkpoint_path", "finish_epoch", "start_epoch", "is_save_on_master",
           "rank_save_ckpt_flag", "outputs_dir", "log_path", "enable_modelarts", "data_url", "train_url",
           "checkpoint_url", "data_path", "dataset_path", "output_path", "load_path", "device_id", "device_num",
           "run_distribute", "distribute", "is_distributed", "need_modelarts_dataset_unzip",
           "modelarts_dataset_unzip_name", "num_classes", "work_nums", "image_size", "is_dynamic_loss_scale",
           "lr_epochs", "lr_gamma", "checkpoint_path", "checkpoint_file_path", "ckpt_file", "ckpt_path",
           "file_name", "file_format", "width", "height", "config_path", "pretrained", "enable_profiling",
           "train_image_size", "eval_image_size", "ds_type", "is_cast_fp16", "dataset_sink_mode", "ds_sink_mode",
           "folder_name_under_zip_file", "train_data_dir", "test_data_dir", "resume", "class_num", "platform",
           "ckpt_save_dir", "result_path", "label_file", "label_path", "network", "num_parallel_workers",
           "group_size"}
# Xception's default_config.yaml keeps its recipes in per-device sections; its top-level keys are then the scripts'
# path, launch and export settings (batch_size 1 is export.py's), device_target aside
DEVICE_SECTIONS = {"Ascend": "config_ascend", "GPU": "config_gpu", "CPU": "config_gpu"}
SMOOTH_SWITCHES = ("use_label_smooth", "label_smooth")  # false/0 means no label smoothing


def _check(key: str, value, origin: str):
    where = f"{origin}: " if origin else ""
    if key in _CHOICES:
        if not isinstance(value, str) or _VALUE_ALIASES.get(key, {}).get(value, value) not in _CHOICES[key]:
            raise PortingError(f"{where}{key} must be one of {', '.join(_CHOICES[key])}, not {value!r}")
        return _VALUE_ALIASES.get(key, {}).get(value, value)
    kind, lo, hi, *open_ends = _RANGES[key]
    lo_open, hi_open = (list(open_ends) + [False, False])[:2]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and not (is_number and float(value).is_integer()):
        raise PortingError(f"{where}{key} must be a whole number, not {value!r}")
    if kind == "float" and not (is_number and math.isfinite(value)):
        raise PortingError(f"{where}{key} must be a number, not {value!r}")
    if (lo is not None and (value < lo or (lo_open and value == lo))) or (
            hi is not None and (value > hi or (hi_open and value == hi))):
        span = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{')' if hi_open or hi is None else ']'}"
        raise PortingError(f"{where}{key} must be in {span}, not {value!r}")
    return int(value) if kind == "int" else float(value)


def _read_yaml(config: Path) -> dict:
    """The file's first YAML document (the model zoo's configs carry their help texts and choices as more)."""
    import yaml

    if not config.is_file():
        raise PortingError(f"config file '{config}' does not exist")
    try:
        documents = list(yaml.safe_load_all(config.read_text()))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PortingError(f"config file '{config}' is not valid YAML: {' '.join(str(exc).split())}") from None
    values = (documents[0] if documents else None) or {}
    if not isinstance(values, dict):
        raise PortingError(f"config file '{config}' must hold a mapping of recipe keys")
    return values


def config_device(config: Path) -> str | None:
    """The device a config file names (the model zoo's device_target), if any."""
    from porting.msenv import canonical_device

    target = _read_yaml(config).get("device_target")
    return canonical_device(str(target)) if target is not None else None


def _read_config(config: Path, device: str | None, log) -> tuple[dict, dict]:
    """(recipe values, other settings) from a YAML file of our keys or the model zoo's; `device` picks the section
    of a file with per-device sections (DEVICE_SECTIONS)."""
    from porting.msenv import canonical_device

    values = _read_yaml(config)
    known = {f.name for f in fields(Recipe)}
    recipe, settings, ignored, smooth = {}, {}, [], True
    if "device_target" in values:
        settings["device"] = canonical_device(str(values["device_target"]))
    if any(section in values for section in DEVICE_SECTIONS.values()):
        section = DEVICE_SECTIONS[device or settings.get("device") or "Ascend"]
        if not isinstance(values.get(section), dict):
            raise PortingError(f"config file '{config}' has no '{section}' section for {device}")
        outer = values
        values = dict(values[section])
        if outer.get("is_fp32"):  # Xception's train.py: --is_fp32 trains without mixed precision
            recipe["amp_level"] = "O0"
        ignored += [f"{k} (outside {section})" for k in outer if k not in ("device_target", "is_fp32", section)
                    and k not in DEVICE_SECTIONS.values()]
    if "per_batch_size" in values and "batch_size" in values:  # SE_ResNeXt50: batch_size is export.py's
        values = {k: v for k, v in values.items() if k != "batch_size"}
        ignored.append("batch_size (per_batch_size is the training batch)")
    for raw_key, value in values.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        if key in known:
            recipe[key] = value
        elif key == "device_target":
            continue
        elif key in SMOOTH_SWITCHES:
            smooth = bool(value)
        elif key == "is_dynamic_loss_scale":
            if value:
                raise PortingError(f"config file '{config}': is_dynamic_loss_scale {value}: porting trains with the "
                                   f"fixed loss scale (loss_scale); set it to 0")
        elif key == "is_fp32":  # Xception's train.py: --is_fp32 trains without mixed precision
            if value:
                recipe["amp_level"] = "O0"
        elif key == "T_max":  # the cosine's period: porting's cosine spans the whole training
            settings["T_max"] = value
        elif key in IGNORED:
            ignored.append(str(raw_key))
        else:
            raise PortingError(f"config file '{config}': unknown key '{raw_key}'; known: {', '.join(sorted(known))} "
                               f"(and the model zoo's {', '.join(sorted(ALIASES))})")
    if not smooth:
        recipe["label_smooth_factor"] = 0.0
    if ignored:
        log(f"warning: config file '{config}': ignored model-zoo key(s) {', '.join(ignored)} (flags set those here)")
    return recipe, settings


def load(name: str | None, arch: str, config: Path | None = None, overrides: dict | None = None,
         log=lambda msg: None, device: str | None = None) -> tuple[Recipe, dict]:
    """(recipe, settings) for training on `device` (else the config's device_target, else Ascend, the model zoo's
    own): settings has 'device' (from device_target) and 'lr_given' (learning rates set)."""
    from porting.archs import get_arch

    name = name or get_arch(arch).recipe  # the architecture's own (its package registers it)
    if name not in RECIPES:
        raise PortingError(f"unknown recipe '{name}'; known: {', '.join(RECIPES)}")
    values, settings = _read_config(config, device, log) if config is not None else ({}, {})
    origin = f"config file '{config}'"
    checked = {k: _check(k, v, origin) for k, v in values.items()}
    checked.update({k: _check(k, v, "") for k, v in (overrides or {}).items() if v is not None})
    settings["lr_given"] = sorted(k for k in LR_KEYS if k in checked)
    recipe = replace(for_device(name, device or settings.get("device") or "Ascend"), **checked)
    t_max = settings.pop("T_max", None)
    if t_max is not None and recipe.lr_decay_mode == "cosine" and t_max != recipe.epochs:
        raise PortingError(f"{origin}: T_max {t_max} differs from the {recipe.epochs} epochs: porting's cosine "
                           f"decays over the whole training (set T_max to the epochs)")
    return recipe, settings


def scaled(recipe: Recipe, global_batch: int, given=()) -> tuple[Recipe, float]:
    """The recipe's own learning rates x global_batch / reference_batch (the ones in `given` stay)."""
    factor = global_batch / recipe.reference_batch
    return replace(recipe, **{k: getattr(recipe, k) * factor for k in LR_KEYS if k not in given}), factor


def trained_with(recipe: Recipe, ranks: int = 1, given=()) -> dict:
    """The learning rates a run of `ranks` ranks trains with (finetune's scaling, `scaled`): what --print-recipe
    shows beside the recipe, whose own are the model zoo's for its reference batch."""
    global_batch = recipe.batch_size * ranks
    run, factor = scaled(recipe, global_batch, given)
    return {"global_batch": global_batch, "lr_scale": factor, **{k: getattr(run, k) for k in LR_KEYS},
            "lr_as_given": [k for k in LR_KEYS if k in given]}


def as_dict(recipe: Recipe) -> dict:
    return asdict(recipe)


def lr_schedule(recipe: Recipe, steps_per_epoch: int, epochs: int) -> list[float]:
    """Per-step learning rates: linear warmup lr_init -> lr_max, then linear or cosine decay to lr_end."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, int(round(recipe.warmup_epochs * steps_per_epoch)))
    lrs = []
    for step in range(total):
        if step < warmup:
            lr = recipe.lr_init + (recipe.lr_max - recipe.lr_init) * (step + 1) / warmup
        else:
            frac = (step - warmup) / max(1, total - warmup)
            if recipe.lr_decay_mode == "linear":
                lr = recipe.lr_max + (recipe.lr_end - recipe.lr_max) * frac
            else:
                lr = recipe.lr_end + 0.5 * (recipe.lr_max - recipe.lr_end) * (1 + math.cos(math.pi * frac))
        lrs.append(float(lr))
    return lrs

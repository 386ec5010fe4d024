"""porting's model-zoo recipes against the model zoo's own configs (../shared/reference/mindspore-models): each
default_config*.yaml, read by `finetune --config`, must give the recipe porting already has, and every recipe value
the file sets must equal the file's, key by key (path and launch keys aside). Values the files do not hold come
from the scripts (train.py), checked here by the line that sets them."""
import json

import pytest
from conftest import porting

CONFIGS = [  # (recipe, config file, device it is for)
    ("xception", "official/cv/Inception/xception/default_config.yaml", "Ascend"),
    ("xception", "official/cv/Inception/xception/default_config.yaml", "GPU"),
    ("inceptionv4", "official/cv/Inception/inceptionv4/default_config.yaml", "Ascend"),
    ("inceptionv4", "official/cv/Inception/inceptionv4/default_config_gpu.yaml", "GPU"),
    ("inceptionv4", "official/cv/Inception/inceptionv4/default_config_cpu.yaml", "CPU"),
    ("se_resnext50", "research/cv/SE_ResNeXt50/default_config.yaml", "Ascend"),
    ("se_resnext50", "research/cv/SE_ResNeXt50/default_config.yaml", "GPU"),
]
# where each recipe value sits in the model zoo's files (this test's own reading of them)
YAML_KEYS = {
    "lr_init": ["lr_init"], "lr_max": ["lr_max", "lr"], "lr_end": ["lr_end", "eta_min"],
    "warmup_epochs": ["warmup_epochs"], "lr_decay_mode": ["lr_decay_mode", "lr_scheduler"], "momentum": ["momentum"],
    "weight_decay": ["weight_decay"], "rmsprop_decay": ["decay"], "rmsprop_epsilon": ["epsilon"],
    "label_smooth_factor": ["label_smooth_factor", "smooth_factor"], "loss_scale": ["loss_scale"],
    "batch_size": ["per_batch_size", "batch_size"], "epochs": ["epoch_size", "max_epoch"],
    "amp_level": ["amp_level"], "save_checkpoint_epochs": ["save_checkpoint_epochs", "ckpt_interval"],
    "keep_checkpoint_max": ["keep_checkpoint_max", "ckpt_save_max"],
}
SPELLINGS = {"liner": "linear", "cosine_annealing": "cosine"}  # the configs' names for porting's schedules
SECTIONS = {"Ascend": "config_ascend", "GPU": "config_gpu"}  # Xception's per-device sections
# values only the scripts set: (recipe, device or None for all) -> [(key, value, the line of train.py that sets it)]
SCRIPTS = {
    ("xception", "Ascend"): [("amp_level", "O3", "amp_level='O3'"), ("optimizer", "momentum", "opt = Momentum(")],
    ("xception", "GPU"): [("amp_level", "O2", "amp_level='O2'"), ("optimizer", "momentum", "opt = Momentum(")],
    ("inceptionv4", None): [("optimizer", "rmsprop", "opt = RMSProp("),
                            ("lr_decay_mode", "cosine", "lr = Tensor(generate_cosine_lr(")],
    ("se_resnext50", None): [("amp_level", "O3", 'amp_level="O3"'), ("optimizer", "momentum", "opt = Momentum(")],
}


@pytest.fixture(scope="module")
def ckpt(modelzoo_checkout, source_weights, work):
    out = work / "x.ckpt"
    run = porting("port-weights", "modelzoo:xception", "--weights", source_weights("modelzoo:xception", ".ckpt"),
                  "-o", out)
    assert run.code == 0, run.stderr
    return out


def recipe(ckpt, name: str, device: str, *config) -> dict:
    """What `finetune --print-recipe` prints, from the API it prints (test_print_recipe_is_the_apis_recipe)."""
    from porting.api import finetune_recipe
    from porting.training.recipes import as_dict

    chosen, _, on = finetune_recipe(ckpt, recipe=name, device=device, config=config[1] if config else None)
    assert on == device
    return json.loads(json.dumps(as_dict(chosen)))  # as printed


def test_print_recipe_is_the_apis_recipe(ckpt, modelzoo_checkout):
    config = modelzoo_checkout / CONFIGS[0][1]
    run = porting("finetune", ckpt, "--recipe", CONFIGS[0][0], "--device", CONFIGS[0][2], "--print-recipe",
                  "--config", config)
    assert run.code == 0, run.stderr
    printed = json.loads(run.stdout)
    assert {k: printed[k] for k in ("device", "recipe")} == {
        "device": CONFIGS[0][2], "recipe": recipe(ckpt, *CONFIGS[0][::2], "--config", config)}
    # the file sets its learning rates: used as given, not scaled to the batch (README "Fine-tuning")
    assert printed["trained_with"]["lr_max"] == printed["recipe"]["lr_max"] and printed["trained_with"]["lr_as_given"]


def first_document(path) -> dict:
    import yaml

    return next(yaml.safe_load_all(path.read_text()))


@pytest.mark.parametrize("name,config,device", CONFIGS)
def test_the_recipe_is_the_model_zoos_config(modelzoo_checkout, ckpt, name, config, device):
    path = modelzoo_checkout / config
    builtin = recipe(ckpt, name, device)
    assert recipe(ckpt, name, device, "--config", path) == builtin, "the config changes porting's recipe"
    values = first_document(path)
    values = values.get(SECTIONS.get(device, ""), values)
    compared = 0
    for key, spellings in YAML_KEYS.items():
        spelled = next((s for s in spellings if s in values), None)
        if spelled is None:
            continue
        want = values[spelled]
        if key == "label_smooth_factor" and not values.get("use_label_smooth", values.get("label_smooth", True)):
            want = 0.0
        want = SPELLINGS.get(want, want)
        assert builtin[key] == pytest.approx(want) if isinstance(want, float) else builtin[key] == want, \
            f"{key}: porting {builtin[key]!r}, {config} {spelled}: {values[spelled]!r}"
        compared += 1
    assert compared >= 12, f"only {compared} recipe values found in {config}"
    script = (path.parent / "train.py").read_text()
    for key, value, line in SCRIPTS.get((name, device), SCRIPTS.get((name, None), [])):
        assert line in script, f"{path.parent / 'train.py'} no longer says {line!r}"
        assert builtin[key] == value, f"{key}: porting {builtin[key]!r}, train.py {line!r}"

"""The seeds' own networks: the MindSpore model zoo's Xception, InceptionV4 and SE_ResNeXt50, run from a model-zoo
checkout (../shared/reference, or $PORTING_MODELZOO) in their own worker, beside the port, layer by layer.

The checkpoints are written as the model zoo's train.py saves them (the weights and the optimizer's state and
counters), from seeded weights. Sizes: Xception at 299 (its AvgPool2d(10) head needs 10x10 maps: 295-326 px;
299 has an even 74x74 map, where 'same' max pools pad (0, 1)), InceptionV4 at its 299, SE_ResNeXt50 at its 224;
the mapping-mistake runs use smaller sizes where the network allows.
"""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_agrees_before, assert_parity, error_line, porting, swap_targets

from porting import api
from porting.sources.modelzoo import NETWORKS
from porting.proof import parity
from porting.specs import build_weight_map, resolve

SPECS = [f"modelzoo:{name}" for name in NETWORKS]
FOLDERS = {f"modelzoo:{name}": net.folder for name, net in NETWORKS.items()}  # in the models repository


@pytest.fixture(scope="module")
def zoo_weights(modelzoo_checkout, source_weights):
    return lambda spec, seed=0: source_weights(spec, ".ckpt", seed)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_the_seeds_spellings_resolve():
    for seed_name, spec in (("Xception", "xception"), ("InceptionV4", "inceptionv4"),
                            ("SE_ResNeXt50", "se_resnext50")):
        assert resolve(f"modelzoo:{seed_name}").id == f"modelzoo:{spec}"


# Xception's AvgPool2d(10) fixes its input to 295-326 px; the others run at a size that keeps the test short
SIZES = {"modelzoo:xception": 299, "modelzoo:inceptionv4": 171, "modelzoo:se_resnext50": 160}


@pytest.mark.slow
@pytest.mark.parametrize("spec", SPECS)
def test_modelzoo_checkpoints_port_exactly(modelzoo_checkout, zoo_weights, spec):
    import mindspore as ms

    weights = zoo_weights(spec)
    saved = ms.load_checkpoint(str(weights))
    assert "global_step" in saved and any(k.startswith(("moments.", "moment.")) for k in saved), \
        "the checkpoint holds what the model zoo's train.py saves beside the weights"
    folder = modelzoo_checkout / FOLDERS[spec]
    before = snapshot(folder)
    report = parity(resolve(spec), weights=str(weights), size=SIZES[spec], batch=1, onnx=True, mindir=True)
    assert_parity(report)
    assert snapshot(folder) == before, "the user's model-zoo checkout was modified"


def _swap_parts(wm, target: str, i: int, j: int):
    """A deliberate mistake in a stacked row: two of a GroupConv's per-group kernels trade places."""
    k = next(n for n, r in enumerate(wm.rows) if r.target == target)
    parts = list(wm.rows[k].parts)
    parts[i], parts[j] = parts[j], parts[i]
    wm.rows[k] = replace(wm.rows[k], parts=tuple(parts))
    return wm


@pytest.mark.parametrize("spec,size,mistake,first", [
    ("modelzoo:xception", 299, lambda wm: swap_targets(wm, "block4.rep.2.gamma", "block4.rep.5.gamma"),
     "block4.rep.2"),
    ("modelzoo:inceptionv4", 139,
     lambda wm: swap_targets(wm, "features.2.branch_1.0.conv.batchnorm.gamma",
                             "features.2.branch_2.0.conv.batchnorm.gamma"), "features.2.branch_1.0"),
    ("modelzoo:se_resnext50", 128, lambda wm: _swap_parts(wm, "layer1.0.conv2.weight", 3, 4),
     "backbone.layer1.0.conv2"),
])
def test_a_mapping_mistake_is_named_at_its_layer(zoo_weights, spec, size, mistake, first):
    model = resolve(spec)
    report = parity(model, weights=str(zoo_weights(spec)), size=size, batch=1,
                    weight_map=mistake(build_weight_map(model)))
    failure = report.first_failure()
    assert failure is not None and failure.layer.startswith(first), failure
    assert_agrees_before(report, failure)


def test_port_weights_without_a_checkout_reads_the_same_tensors(zoo_weights, tmp_path, monkeypatch):
    """port-weights needs no checkout: the weight map checks every name and shape; with one, the file is also
    loaded into the model zoo's own network. Both give the same checkpoint tensors."""
    from porting import checkpoint

    weights = zoo_weights("modelzoo:se_resnext50")
    assert porting("port-weights", "modelzoo:se_resnext50", "--weights", weights, "-o", tmp_path / "a.ckpt").code == 0
    monkeypatch.delenv("PORTING_MODELZOO")
    assert porting("port-weights", "modelzoo:SE_ResNeXt50", "--weights", weights, "-o", tmp_path / "b.ckpt").code == 0
    (a, meta), (b, _) = checkpoint.load(tmp_path / "a.ckpt"), checkpoint.load(tmp_path / "b.ckpt")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert meta.source == "modelzoo:se_resnext50" and meta.resize_backend == "mindspore-square"
    assert (meta.input_size, round(meta.input_size / meta.crop_pct)) == (224, 256)


# ------------------------------------------------------------------------------------------ refusals

def _refused(run, out: Path, *words: str) -> None:
    line = error_line(run)
    assert all(w in line for w in words), line
    assert not out.exists()


def test_no_checkout_named_says_both_ways(zoo_weights, tmp_path, monkeypatch):
    weights, out = zoo_weights("modelzoo:xception"), tmp_path / "r.json"
    monkeypatch.delenv("PORTING_MODELZOO")
    run = porting("parity", "modelzoo:xception", "--weights", weights, "--report", out)
    _refused(run, out, "--modelzoo", "PORTING_MODELZOO")


def test_a_missing_or_wrong_checkout_is_named(zoo_weights, tmp_path):
    weights = zoo_weights("modelzoo:xception")
    out = tmp_path / "x.ckpt"
    _refused(porting("random-weights", "modelzoo:xception", "-o", out, "--modelzoo", tmp_path / "nowhere"), out,
             "nowhere", "does not exist")
    # a folder laid out like the repository, but without the model's src/
    (tmp_path / "models" / FOLDERS["modelzoo:xception"]).mkdir(parents=True)
    (tmp_path / "models" / FOLDERS["modelzoo:xception"] / "README.md").write_text("Xception\n")
    _refused(porting("parity", "modelzoo:xception", "--weights", weights, "--modelzoo", tmp_path / "models",
                     "--report", out), out, "src/Xception.py")
    _refused(porting("port-weights", "timm:xception", "--random-init", "0", "-o", out, "--modelzoo",
                     tmp_path / "models"), out, "--modelzoo is for modelzoo")


def test_a_checkpoint_of_another_model_is_named(zoo_weights, tmp_path, monkeypatch):
    out = tmp_path / "x.ckpt"
    other = zoo_weights("modelzoo:inceptionv4")
    for _ in ("with the checkout", "without"):  # the classifier is checked first: the file is named as it is
        _refused(porting("port-weights", "modelzoo:xception", "--weights", other, "-o", out),
                 out, "has no 'fc.weight'", "not a model-zoo xception checkpoint", "features.0.")
        monkeypatch.delenv("PORTING_MODELZOO", raising=False)


def test_a_checkpoint_whose_class_count_does_not_hold_together_is_refused(modelzoo_checkout, tmp_path):
    import mindspore as ms

    ten = tmp_path / "x10.ckpt"
    api.random_weights("modelzoo:xception", ten, num_classes=10)
    broken = tmp_path / "x10-1000.ckpt"  # a 10-class classifier with a 1000-class bias
    params = ms.load_checkpoint(str(ten))
    params["fc.bias"] = ms.Parameter(ms.Tensor(np.zeros(1000, np.float32)), name="fc.bias")
    ms.save_checkpoint([{"name": k, "data": v} for k, v in params.items()], str(broken))
    out = tmp_path / "p.ckpt"
    _refused(porting("port-weights", "modelzoo:xception", "--weights", broken, "-o", out),
             out, "10 classes", "fc.bias [1000] != [10]")
    assert api.port("modelzoo:xception", ten, output=out).card.num_classes == 10  # 10 classes: fine


def test_a_checkpoint_that_is_not_the_model_zoos_is_named(zoo_weights, tmp_path, source_weights):
    ported = tmp_path / "ported.ckpt"
    api.port("modelzoo:xception", zoo_weights("modelzoo:xception"), output=ported)
    out = tmp_path / "again.ckpt"
    _refused(porting("port-weights", "modelzoo:xception", "--weights", ported, "-o", out), out,
             "a checkpoint porting wrote")
    mindcv = source_weights("mindcv:xception", ".ckpt")  # mindcv's names: blocks.N, classifier
    _refused(porting("port-weights", "modelzoo:xception", "--weights", mindcv, "-o", out), out,
             "not a model-zoo xception checkpoint")


def test_the_xception_head_fixes_the_parity_size(zoo_weights, tmp_path):
    """The model zoo's AvgPool2d(10) runs only where the last maps are 10x10: parity says so before any work."""
    out = tmp_path / "r.json"
    _refused(porting("parity", "modelzoo:xception", "--weights", zoo_weights("modelzoo:xception"), "--size", "256",
                     "--report", out), out, "--size 256", "295 to 326")


def test_a_model_zoo_inceptionv4_fine_tunes_with_its_own_head(zoo_weights, tiny_data, tmp_path):
    """The model zoo's head (Dense -> BN over the classes -> log-softmax) trains as any head: a new 3-class one
    starts with its BN as the identity, takes training steps with the architecture's recipe (RMSProp) and
    evaluates."""
    import json

    from porting import checkpoint

    ported = tmp_path / "i.ckpt"
    api.port("modelzoo:InceptionV4", zoo_weights("modelzoo:inceptionv4"), output=ported)
    # PYNATIVE: two steps need no compiled training graph (test_training proves both modes train alike)
    run = porting("finetune", ported, "--data", tiny_data, "--image-size", "96", "--batch-size", "4", "--epochs", "1",
                  "--max-steps", "2", "--workers", "2", "--log-every", "1", "--pynative", "-o", tmp_path / "ft")
    assert run.code == 0, run.stderr
    assert "rmsprop" in run.stderr and "new head 'fc' for 3 classes" in run.stderr
    tuned = tmp_path / "ft" / "inception_v4-1_2.ckpt"
    params, meta = checkpoint.load(tuned)
    assert meta.num_classes == 3 and params["fc.bn.gamma"].shape == (3,)
    assert not np.allclose(params["fc.bn.moving_mean"], 0.0), "the head's BN statistics moved in training"
    run = porting("eval", tuned, "--data", tiny_data, "--json")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert np.isfinite(result["Loss"]) and 0.0 <= result["Top_1_Acc"] <= 1.0

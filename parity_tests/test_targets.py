"""export --to (issue 19): a checkpoint written back to timm, Keras, PaddleClas, mindcv and the model zoo, read by
that library's own loader in its worker and compared layer by layer with the checkpoint in MindSpore."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import error_line, porting, ulps

from porting import api
from porting.converters.target import fit, targets_table
from porting.errors import PortingError
from porting.runners.source import run_source
from porting.specs import all_specs, resolve

README = Path(__file__).resolve().parents[1] / "README.md"

# one seeded file per library, each through the transforms its table has: timm (copies; a folder timm's
# local-dir loads), Keras (kernel transposes), PaddleClas (Linear transposed, Dropout x0.8 folded: within one ulp),
# mindcv (renames), the model zoo (a grouped conv stacked from 32 convs, split again)
ROUND_TRIPS = [("timm:legacy_xception", ".pth", "timm", "x.safetensors"),
               ("keras:xception", ".weights.h5", "keras", "x.weights.h5"),
               ("paddleclas:InceptionV4", ".pdparams", "paddleclas", "x.pdparams"),
               ("mindcv:xception", ".ckpt", "mindcv", "x.ckpt"), ("modelzoo:se_resnext50", ".ckpt", "modelzoo", "x.ckpt")]
PROOF = dict(size=96, batch=1)  # the proof's inputs here: small, as CI's 2 cores want (the CLI: the model's size)


@pytest.fixture(scope="module")
def ported(work, source_weights):
    """ported(spec, suffix) -> (seeded source file, its porting .ckpt), made once per module."""
    done = {}

    def make(spec: str, suffix: str):
        if spec not in done:
            weights, ckpt = source_weights(spec, suffix), work / f"{spec.replace(':', '_')}.ckpt"
            api.port(spec, weights, output=ckpt)
            done[spec] = weights, ckpt
        return done[spec]

    return make


@pytest.mark.parametrize("spec,suffix,to,name", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_gives_the_source_file_back(spec, suffix, to, name, ported, tmp_path):
    """source file -> port-weights -> export --to LIBRARY: the library's own loader reads every tensor the weight
    map ports back as the file had it, and the model it loads agrees with the checkpoint layer by layer."""
    weights, ckpt = ported(spec, suffix)
    report, how, target = api.export_to(ckpt, tmp_path / name, to, **PROOF)
    assert target.id == spec and how.exact and not how.folds
    assert report.ok and len(report.layers(target.source)) > 10, report.first_failure()
    model = resolve(spec)
    original = run_source(model, weights=str(weights)).tensors
    written = run_source(model, weights=str(tmp_path / name)).tensors
    wm = model.build_weight_map()
    scaled = {s for row in wm.rows if not row.transform.exact for s in row.sources}
    for row in wm.rows:
        for source in row.sources:
            if source in scaled:
                assert ulps(original[source], written[source]) <= 1.0, source
            else:
                assert written[source].tobytes() == original[source].tobytes(), source
    assert set(written) == set(original)  # the step counters porting does not port keep the library's own


@pytest.mark.parametrize("source,suffix,to,folded", [
    ("keras:xception", ".weights.h5", "modelzoo:xception", "BN eps 0.001 -> 1e-05"),
    ("mindcv:xception", ".ckpt", "modelzoo:xception", None),  # the same graph (mindcv's came from the model zoo's)
    ("paddleclas:SE_ResNeXt50_32x4d", ".pdparams", "timm:seresnext50_32x4d", "SE as 1x1 convs"),
])
def test_across_libraries_in_the_targets_own_code(source, suffix, to, folded, ported, tmp_path):
    _, ckpt = ported(source, suffix)
    small = {} if to.startswith("modelzoo:xception") else PROOF  # its AvgPool2d(10) head needs 295-326 px
    report, how, target = api.export_to(ckpt, tmp_path / ("x.ckpt" if to.startswith("modelzoo") else "x"), to,
                                        batch=1, size=small.get("size"))
    assert how.exact and report.ok, report.first_failure()
    assert len(report.layers(target.source)) > 10 and report.top1_agree[target.source] == 1.0
    assert [f[:len(folded)] for f in how.folds] == ([folded] if folded else [])


def test_an_inexact_target_is_written_with_approximate_and_measured(ported, tmp_path):
    """timm pads its max pools by 1, Keras TF 'same': refused without --approximate, written and measured with."""
    _, ckpt = ported("timm:legacy_xception", ".pth")
    with pytest.raises(PortingError, match="--approximate"):
        api.export_to(ckpt, tmp_path / "k.weights.h5", "keras:xception")
    assert not (tmp_path / "k.weights.h5").exists()
    report, how, _ = api.export_to(ckpt, tmp_path / "k.weights.h5", "keras:xception", approximate=True, **PROOF)
    assert not how.exact and "max pools" in how.differences[0]
    assert (tmp_path / "k.weights.h5").is_file() and report.rows  # measured: the pools' outputs differ
    assert not report.ok


def test_refusals_are_one_line_and_write_nothing(ported, tmp_path):
    _, ckpt = ported("timm:legacy_xception", ".pth")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    commands = {  # through the command: one error line, exit 2
        "timm:no_such_model": ("unknown model", tmp_path / "a"),
        "timm:inception_v4": ("that is a inception_v4", tmp_path / "b"),  # another architecture
        "keras:xception": ("--approximate", tmp_path / "c.weights.h5"),  # inexact
        "timm": ("exists: remove it", tmp_path / "full"),  # a folder target onto a folder with files in it
    }
    for to, (message, out) in commands.items():
        line = error_line(porting("export", ckpt, "--to", to, "-o", out))
        assert message in line, (to, line)
    calls = {  # the same errors in the API, cheaper than a process each
        "paddleclas": ("no paddleclas model has the checkpoint's architecture", tmp_path / "d.pdparams"),
        "keras": ("name the keras model: keras:xception", tmp_path / "e.weights.h5"),
        "timm:legacy_xception": ("is written as a folder (no suffix), .safetensors, .pth", tmp_path / "f.h5"),
    }
    for to, (message, out) in calls.items():
        with pytest.raises(PortingError, match=re.escape(message)):
            api.export_to(ckpt, out, to)
    assert [p.name for p in tmp_path.iterdir()] == ["full"] and [p.name for p in (tmp_path / "full").iterdir()] == ["f"]
    assert "apply to ONNX" in error_line(porting("export", ckpt, "--to", "timm", "--fp16", "-o", tmp_path / "h"))


def test_fit_rules():
    x = {s.id: s.arch_config for s in all_specs()}
    assert fit("xception", x["keras:xception"], x["modelzoo:xception"]).exact
    assert fit("xception", x["mindcv:xception"], x["modelzoo:xception"]).verdict() == "exact"
    assert not fit("xception", x["timm:legacy_xception"], x["keras:xception"]).exact
    assert fit("inception_v4", x["paddleclas:InceptionV4"], x["timm:inception_v4"]).mismatch
    assert fit("se_resnext", x["paddleclas:SE_ResNeXt50_32x4d"], x["timm:seresnext50_32x4d"]).exact


def test_readme_has_the_targets_table():
    assert targets_table() in README.read_text(), "README's targets table is stale: paste " \
                                                  "`porting models --targets --markdown`"

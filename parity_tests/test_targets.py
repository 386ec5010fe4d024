"""export --to (issue 19): a checkpoint written back to timm, Keras, PaddleClas, mindcv and the model zoo, read by
that library's own loader in its worker and compared layer by layer with the checkpoint in MindSpore."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ulps  # noqa: F401 - ported: a fixture

from porting import api
from porting.converters.target import fit_between, targets_table
from porting.sources.jobs import run_source
from porting.specs import all_specs, build_weight_map, resolve

README = Path(__file__).resolve().parents[1] / "README.md"

# one seeded file per library (timm's: test_targets_timm.py), each through the transforms its table has: Keras (kernel transposes), PaddleClas (Linear transposed, Dropout x0.8 folded: within one ulp),
# mindcv (renames), the model zoo (a grouped conv stacked from 32 convs, split again)
ROUND_TRIPS = [("keras:xception", ".weights.h5", "keras", "x.weights.h5"),
               ("paddleclas:InceptionV4", ".pdparams", "paddleclas", "x.pdparams"),
               ("mindcv:xception", ".ckpt", "mindcv", "x.ckpt"), ("modelzoo:se_resnext50", ".ckpt", "modelzoo", "x.ckpt")]
PROOF = dict(size=96, batch=1)  # the proof's inputs here: small, as CI's 2 cores want (the CLI: the model's size)


def assert_round_trip(ported, spec: str, suffix: str, to: str, name: str, tmp_path) -> None:
    """source file -> port-weights -> export --to LIBRARY: the library's own loader reads every tensor the weight
    map ports back as the file had it (the proofs in the target's code: the cross-library tests)."""
    weights, ckpt = ported(spec, suffix)
    report, fit, target = api.export_to(ckpt, tmp_path / name, to, check=False)
    assert target.id == spec and fit.exact and not fit.folds and report is None
    model = resolve(spec)
    original = run_source(model, weights=str(weights)).tensors
    written = run_source(model, weights=str(tmp_path / name)).tensors
    wm = build_weight_map(model)
    scaled = {s for row in wm.rows if not row.transform.exact for s in row.sources}
    for row in wm.rows:
        for source in row.sources:
            if source in scaled:
                assert ulps(original[source], written[source]) <= 1.0, source
            else:
                assert written[source].tobytes() == original[source].tobytes(), source
    assert set(written) == set(original)  # the step counters porting does not port keep the library's own


@pytest.mark.parametrize("spec,suffix,to,name", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_round_trip_gives_the_source_file_back(spec, suffix, to, name, ported, tmp_path, request):
    if to == "modelzoo":
        request.getfixturevalue("modelzoo_checkout")  # the model zoo's own network, from the checkout
    assert_round_trip(ported, spec, suffix, to, name, tmp_path)


@pytest.mark.parametrize("source,suffix,to,folded", [
    ("keras:xception", ".weights.h5", "modelzoo:xception", "BN eps 0.001 -> 1e-05"),
    ("mindcv:xception", ".ckpt", "modelzoo:xception", None),  # the same graph (mindcv's came from the model zoo's)
])
def test_across_libraries_in_the_targets_own_code(source, suffix, to, folded, ported, tmp_path, modelzoo_checkout):
    _, ckpt = ported(source, suffix)
    small = {} if to.startswith("modelzoo:xception") else PROOF  # its AvgPool2d(10) head needs 295-326 px
    report, fit, target = api.export_to(ckpt, tmp_path / ("x.ckpt" if to.startswith("modelzoo") else "x"), to,
                                        batch=1, size=small.get("size"))
    assert fit.exact and report.ok, report.first_failure()
    assert len(report.layers(target.source)) > 10 and report.top1_agree[target.source] == 1.0
    assert [f[:len(folded)] for f in fit.folds] == ([folded] if folded else [])


def test_fit_rules():
    x = {s.id: s.arch_config for s in all_specs()}
    assert fit_between("xception", x["keras:xception"], x["modelzoo:xception"]).exact
    assert fit_between("xception", x["mindcv:xception"], x["modelzoo:xception"]).verdict() == "exact"
    assert not fit_between("xception", x["timm:legacy_xception"], x["keras:xception"]).exact
    assert fit_between("inception_v4", x["paddleclas:InceptionV4"], x["timm:inception_v4"]).mismatch
    assert fit_between("se_resnext", x["paddleclas:SE_ResNeXt50_32x4d"], x["timm:seresnext50_32x4d"]).exact


def test_readme_has_the_targets_table():
    assert targets_table() in README.read_text(), "README's targets table is stale: paste " \
                                                  "`porting models --targets --markdown`"


def test_the_model_zoo_target_without_a_checkout_is_written_and_says_so(ported, tmp_path, monkeypatch):
    """No checkout: the .ckpt is written from the table alone, and one line says the proof was skipped and how."""
    monkeypatch.delenv("PORTING_MODELZOO", raising=False)
    _, ckpt = ported("mindcv:xception", ".ckpt")
    said = []
    report, fit, spec = api.export_to(ckpt, tmp_path / "zoo.ckpt", "modelzoo:xception", log=said.append)
    assert report is None and fit.exact and spec.id == "modelzoo:xception" and (tmp_path / "zoo.ckpt").is_file()
    assert any("without the proof" in line and "--modelzoo DIR" in line for line in said), said

"""Parity in bounded memory (issue 30, point 4): the inputs go through the source and every runtime a chunk at a
time and the comparator folds each chunk into running statistics, so the memory is one chunk's, whatever the
number of images, and the report is the one the same comparison gives in small batches."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from treemem import run_measured

from porting import api
from porting.compare import TensorStats, compare_tensor

XCEPTION = "timm:legacy_xception"


def _photos(folder: Path, count: int) -> Path:
    """`count` photograph-like JPEGs of assorted sizes."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(170, 260, 2))
        coarse = Image.fromarray(rng.uniform(0, 255, (5, 7, 3)).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        pixels = np.asarray(coarse, np.float64) + rng.normal(0, 12, (h, w, 3))
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"p{i:02d}.jpg", quality=90)
    return folder


def test_folded_statistics_are_those_of_the_whole_batch():
    """Every statistic of a row folds over chunks of the batch axis: max abs, max rel, bound and verdict exactly, the
    cosine to float64 rounding; a constant reference (a dead layer), a non-finite output and a shape mismatch are
    caught whichever chunk shows them."""
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 3, (7, 4, 5, 5)).astype(np.float32)
    out = (ref + rng.normal(0, 1e-4, ref.shape)).astype(np.float32)
    dead = np.zeros_like(ref)
    broken = out.copy()
    broken[5, 1, 2, 3] = np.nan
    for r, o in ((ref, out), (dead, dead), (ref, broken)):
        whole = compare_tensor("layer", "onnx", r, o)
        stats = TensorStats()
        for start, stop in ((0, 1), (1, 4), (4, 7)):
            stats.add(r[start:stop], o[start:stop])
        folded = stats.row("layer", "onnx")
        assert repr((folded.shape, folded.max_abs, folded.max_rel, folded.bound, folded.ok, folded.note)) == repr(
            (whole.shape, whole.max_abs, whole.max_rel, whole.bound, whole.ok, whole.note))  # NaN as NaN
        assert folded.cosine == pytest.approx(whole.cosine, abs=1e-12, nan_ok=True)
    stats = TensorStats()
    stats.add(ref[:3], out[:3])
    stats.add(ref[3:], out[3:, :2])
    assert stats.row("layer", "onnx").note == "shape [7, 2, 5, 5] != reference [7, 4, 5, 5]"


def test_seeded_inputs_are_the_same_in_chunks():
    """--batch N without --images compares the N seeded images it always compared, drawn a chunk at a time."""
    from porting.sources.inputs import SeededImages, make_images

    whole = make_images(1234, 7, 48, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    drawn = SeededImages(1234, 7, 48, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert np.array_equal(whole, np.concatenate([drawn.take(1), drawn.take(3), drawn.take(3)]))


def test_chunks_of_unequal_size_reach_every_runtime():
    """Without --chunk the first input measures the recorded layers and the rest go in chunks sized from it (here
    1, then 2); the MINDIR, whose batch is fixed, is exported at the largest chunk and takes the first one padded;
    OpenVINO's dynamic batch takes both sizes: every runtime compares all 3 inputs."""
    from conftest import assert_parity

    from porting.proof import parity
    from porting.specs import resolve

    messages = []
    report = parity(resolve(XCEPTION), seed=0, size=64, batch=3, onnx=True, mindir=True, openvino=True,
                    log=messages.append)
    assert "comparing the 3 inputs in 2 chunks of at most 2" in messages
    assert_parity(report, ("mindspore", "onnx", "openvino", "mindir"))
    assert report.info.default_precision["openvino-default"].inputs == "seeded synthetic images"
    assert report.info.batch == 3 and {r.shape[0] for r in report.rows} == {3}


def _worst(report) -> dict:
    return {(r.runtime, r.layer): r for r in report.rows}


# The cap on the process tree (the sum of its processes' resident memory, polled every 20 ms from /proc:
# treemem.py), the inputs and the chunk: all 12 at once pass the cap (the run is killed there), 3 chunks of 4 fit.
CAP = 4.5 * 2**30
SIZE, COUNT, CHUNK = 160, 12, 4


def test_parity_on_more_images_than_fit_at_once_under_a_memory_cap(tmp_path):
    """`parity --images DIR --onnx --openvino` on 12 photographs under a 4.5 GiB cap on its whole process tree: all
    of them at once (--chunk 12, what parity did before it went in chunks) passes the cap and is killed there; in
    chunks of 4 it completes under it, with the verdict and the worst error of every layer in every runtime that
    the same comparison gives in small batches (three runs of 4 images)."""
    photos = _photos(tmp_path / "photos", COUNT)
    command = [sys.executable, "-m", "porting", "parity", XCEPTION, "--random-init", "0", "--size", str(SIZE),
               "--onnx", "--openvino", "--images", str(photos), "--batch", str(COUNT)]
    (tmp_path / "tmp").mkdir()  # what a run killed at the cap cannot clean up goes with the test's folder
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    at_once = run_measured([*command, "--chunk", str(COUNT)], cap=int(CAP), env=env)
    assert at_once.capped, f"all {COUNT} images at once fit under the cap: peak {at_once.peak / 2**30:.2f} GiB"
    chunked = run_measured([*command, "--chunk", str(CHUNK), "--report", str(tmp_path / "r.json")], cap=int(CAP),
                           env=env)
    assert not chunked.capped and chunked.code == 0, (chunked.peak / 2**30, chunked.stderr)
    assert chunked.peak < CAP
    from porting.report import Report

    report = Report.from_json((tmp_path / "r.json").read_text())
    assert report.ok and report.info.batch == COUNT and report.info.inputs == f"{COUNT} image file(s)"
    assert {"mindspore", "onnx", "openvino"} <= set(report.runtimes())
    files = sorted(photos.iterdir())
    from porting.proof import parity
    from porting.specs import resolve

    # each small batch at once (MindSpore's kernels round differently at another batch size: 1e-6 of a layer)
    small = [parity(resolve(XCEPTION), seed=0, size=SIZE, onnx=True, openvino=True, images=files[i:i + CHUNK],
                    chunk=CHUNK) for i in range(0, COUNT, CHUNK)]
    assert report.ok == all(s.ok for s in small)
    assert report.top1_agree == {rt: np.mean([s.top1_agree[rt] for s in small]) for rt in report.top1_agree}
    rows, parts = _worst(report), [_worst(s) for s in small]
    assert rows.keys() == parts[0].keys() and len(rows) > 3 * 30
    for key, row in rows.items():
        assert row.max_abs == max(p[key].max_abs for p in parts), key
        assert row.bound == max(p[key].bound for p in parts), key
        assert row.ok == all(p[key].ok for p in parts), key
        assert row.shape == [COUNT, *parts[0][key].shape[1:]], key


def test_a_training_step_takes_a_bounded_batch():
    """One training step needs its whole batch at once (a train-mode BatchNorm joins its images), so --train-step
    bounds the batch instead of splitting it: above 16 is refused in one line."""
    from conftest import error_line, porting

    line = error_line(porting("parity", XCEPTION, "--random-init", "0", "--train-step", "--batch", "17"))
    assert "--batch 17 is more than the 16 it takes" in line and "whole batch" in line

"""Source workers kept for several jobs (porting.reusing_workers): the same answers as fresh workers, a bad
file answered without losing the worker, a killed one replaced, the least recently used one closed when another
library needs a worker beyond KEPT_AT_MOST, and the block's end takes them all."""
from __future__ import annotations

import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from porting.errors import PortingError
from porting.sources import jobs as source
from porting.specs import resolve

SPEC = replace(resolve("timm:legacy_xception"), input_size=64)  # seeded BN statistics measured at 64 px: quick


def test_a_kept_worker_serves_jobs_in_turn_and_goes_with_its_block(monkeypatch, tmp_path):
    monkeypatch.setattr(source, "_KEPT", None)  # a block of its own, not the test session's
    with source.reusing_workers():
        first = source.run_source(SPEC, seed=0)
        (worker,) = source._KEPT.values()
        second = source.run_source(SPEC, seed=1)
        bad = tmp_path / "bad.pth"
        bad.write_bytes(b"not a checkpoint")
        with pytest.raises(PortingError, match="bad.pth"):
            source.run_source(SPEC, weights=str(bad))
        again = source.run_source(SPEC, seed=0)
        assert list(source._KEPT.values()) == [worker] and worker.alive()  # one process did all four
        assert first.tensors.keys() == again.tensors.keys()
        assert all(np.array_equal(first.tensors[k], again.tensors[k]) for k in first.tensors)
        assert not np.array_equal(first.tensors["conv1.weight"], second.tensors["conv1.weight"])

        with source.source_job(SPEC, seed=0) as result:
            os.kill(worker.proc.pid, signal.SIGKILL)
            with pytest.raises(PortingError, match="killed by SIGKILL"):
                result()
        assert source._KEPT == {} and not worker.scratch.exists()
        last = source.run_source(SPEC, seed=0)  # a fresh one takes over
        (kept,) = source._KEPT.values()
        assert np.array_equal(last.tensors["fc.weight"], first.tensors["fc.weight"])

        monkeypatch.setattr(source, "KEPT_AT_MOST", 1)  # another library's job: the least recently used goes
        source.run_source(resolve("mindcv:xception"), untrained=True, want_tensors=False)
        assert [key for key, _ in source._KEPT.items()] == [("mindcv", None)] and not kept.alive()
        (other,) = source._KEPT.values()
    assert source._KEPT is None and not other.alive() and not other.scratch.exists() and not kept.scratch.exists()


def test_a_kept_model_answers_every_chunk_without_loading_again(monkeypatch, tmp_path):
    """parity's chunks: the job that loads a model with a keep_model key leaves it in its kept worker, and the next
    jobs with that key run on it (its weights file is not read again: here it is gone by then); a job with another
    key loads its own."""
    from porting.sources.inputs import make_images

    monkeypatch.setattr(source, "_KEPT", None)
    weights = tmp_path / "w.pth"
    from porting import api

    api.random_weights(SPEC, weights, seed=0)
    x = make_images(0, 3, 64, SPEC.mean, SPEC.std)
    with source.reusing_workers():
        fresh = [source.run_source(SPEC, weights=str(weights), inputs=part, taps=["block2"], want_tensors=False)
                 for part in (x[:1], x[1:])]
        first = source.run_source(SPEC, weights=str(weights), inputs=x[:1], taps=["block2"], keep_model="k")
        weights.unlink()
        rest = source.run_source(SPEC, weights=str(weights), inputs=x[1:], taps=["block2"], want_tensors=False,
                                 keep_model="k")
        with pytest.raises(PortingError, match="w.pth"):
            source.run_source(SPEC, weights=str(weights), inputs=x[1:], want_tensors=False, keep_model="other")
    for name in ("block2", "logits"):  # the same model, bit for bit
        assert np.array_equal(first.outputs[name], fresh[0].outputs[name])
        assert np.array_equal(rest.outputs[name], fresh[1].outputs[name])

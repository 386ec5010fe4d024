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

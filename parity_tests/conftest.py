"""Shared fixtures. The test process itself may import MindSpore (and torch), never TensorFlow or Paddle:
every source model runs in its own worker process, exactly as in the CLI."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("PORTING_DEVICE", "CPU")
# Two xdist workers share CI's 2 cores, and each test runs a source worker beside MindSpore: one kernel thread
# per process (porting.threads), and OpenMP threads that sleep rather than spin while they wait (measured on
# test_timm_xception_aligned.py with 2 workers: 205 s with every library's default threads, 177 s so).
os.environ.setdefault("PORTING_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "ONEDNN_MAX_CPU_ISA" not in os.environ:  # before MindSpore loads; see porting/msenv.py (20-100x faster convs)
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["PORTING_CAPPED_ONEDNN"] = "1"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def porting(*args: str, cwd: Path | None = None) -> Run:
    """Run the real CLI in a fresh process."""
    proc = subprocess.run([sys.executable, "-m", "porting", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, COLUMNS="200"))
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session", autouse=True)
def kept_workers():
    """The tests' in-process jobs share one source worker per library (porting.reusing_workers): torch + timm
    cost ~7 s of CPU to import, TensorFlow ~5 s, once per xdist worker instead of once per job. Every command
    run through `porting(...)` still starts its own fresh worker, as a user's command does."""
    from porting import api

    with api.reusing_workers():
        yield


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory, request) -> Path:
    """One folder for the whole run: with pytest-xdist, its workers share it (see source_weights)."""
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: the run's base folder is one level up
        root = root.parent
    path = root / "weights"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory, request) -> Path:
    """A folder for the files a test module shares, removed when the module is done: the whole run writes
    about 14 GB of checkpoints and ONNX files, more than CI's disk holds at once (per-test folders go as
    each test passes, see tmp_path_retention_policy in pyproject.toml)."""
    path = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def source_weights(weights_dir):
    """source_weights(spec, suffix, seed=0) -> a file of seeded random weights in the source's own format,
    written by the source library itself (torch.save, safetensors, model.save_weights, paddle.save).
    Each file is written once per run, whichever test (or xdist worker) asks first; the others wait for it."""

    def make(spec: str, suffix: str, seed: int = 0) -> Path:
        path = weights_dir / f"{spec.replace(':', '_')}_{seed}{suffix}"
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                from porting import api

                api.random_weights(spec, path, seed=seed)
        return path

    return make


@pytest.fixture(scope="module")
def ported(work, source_weights):
    """ported(spec, suffix) -> (seeded source file, its porting .ckpt made through the API), once per module."""
    done = {}

    def make(spec: str, suffix: str):
        from porting import api

        if spec not in done:
            weights, ckpt = source_weights(spec, suffix), work / f"{spec.replace(':', '_')}.ckpt"
            api.port(spec, weights, output=ckpt)
            done[spec] = weights, ckpt
        return done[spec]

    return make


def assert_parity(report, runtimes=("mindspore", "onnx", "mindir")):
    """Every runtime was compared, every layer within tolerance, top-1 equal on every sample."""
    seen = {row.runtime for row in report.rows}
    assert set(runtimes) <= seen, f"runtimes compared: {seen}"
    failure = report.first_failure()
    assert failure is None, f"first failing layer {failure}"
    assert all(report.top1_agree[r] == 1.0 for r in runtimes), report.top1_agree
    assert not report.errors, report.errors
    # the check must have looked at real layers, not just the logits
    assert sum(1 for r in report.rows if r.runtime == "mindspore") > 10


def assert_openvino(report):
    """OpenVINO at f32 compared layer by layer (in the verdict, as assert_parity checks), and its default
    precision reported beside: the precision the compiled model ran at, its logits error and top-1 agreement."""
    import openvino

    assert len(report.layers("openvino")) == len(report.layers("mindspore")) > 10
    default = report.info.default_precision["openvino-default"]
    chosen = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    assert default.precision == f"{chosen}: OpenVINO's default on this CPU", default
    assert 0 <= default.top1_agree <= 1 and default.max_abs >= 0
    if chosen == "f32":  # this machine's CPU has no bf16: the default is the f32 the table proved
        assert default.within_tolerance and default.top1_agree == 1.0, default


def ulps(a, b) -> float:
    """The largest difference between two float32 arrays in units in the last place of `a`."""
    import numpy as np

    return float(np.max(np.abs(a.astype(np.float64) - b) / np.spacing(np.abs(a).astype(np.float32)), initial=0.0))


def error_line(run: Run) -> str:
    """The single `error: ...` line a failed command must print (progress lines aside)."""
    assert run.code == 2, (run.code, run.stderr)
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def swap_targets(wm, a: str, b: str):
    """A deliberate mapping bug: source tensors `a` and `b` (same shape) trade their targets."""
    from dataclasses import replace

    ia = next(i for i, r in enumerate(wm.rows) if r.source == a)
    ib = next(i for i, r in enumerate(wm.rows) if r.source == b)
    ra, rb = wm.rows[ia], wm.rows[ib]
    wm.rows[ia], wm.rows[ib] = replace(ra, target=rb.target), replace(rb, target=ra.target)
    return wm


def assert_agrees_before(report, failure) -> None:
    """Every comparison before the first failure passes: the check names the layer where the port broke."""
    before = report.rows[: report.rows.index(failure)]
    assert before and all(r.ok for r in before), [r for r in before if not r.ok]


CLASSES = ["circle", "square", "stripes"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """3 classes, 8 train + 4 val images each, 72x72 PNG; each class has its own dominant colour."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = rng.uniform(0, 60, size=(72, 72, 3))
                img[..., c] += 150
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


# The model zoo's code (seeds 000-002): a checkout named by $PORTING_MODELZOO, else the reference copy in
# ../shared beside the repository. CI sets PORTING_REQUIRE_MODELZOO=1 (.ci/run): there, not finding it fails.
SHARED_MODELZOO = Path(__file__).resolve().parents[2] / "shared" / "reference" / "mindspore-models"


@pytest.fixture(scope="session")
def modelzoo_checkout() -> Path:
    """The model-zoo checkout the modelzoo: tests run in, exported as PORTING_MODELZOO to every command."""
    given = os.environ.get("PORTING_MODELZOO")
    root = Path(given) if given else SHARED_MODELZOO
    if not (root / "official" / "cv" / "Inception" / "xception" / "src" / "Xception.py").is_file():
        why = (f"no MindSpore model-zoo checkout at {root}: set PORTING_MODELZOO to a clone of the MindSpore models "
               f"repository (git clone of mindspore/models) to run the modelzoo: tests")
        if os.environ.get("PORTING_REQUIRE_MODELZOO"):
            pytest.fail(why)
        pytest.skip(why)
    os.environ["PORTING_MODELZOO"] = str(root)
    return root

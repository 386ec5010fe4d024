"""porting's benchmark: every figure a ratio of medians measured side by side in one run.

    .venv/bin/python benchmarks/run.py              # everything (about 10 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/run.py --only train,port --reps 5
    .venv/bin/python benchmarks/run.py --quick      # one model, batch 1, 3 repetitions: a smoke run

What is compared, each contender in a process of its own (benchmarks/contender.py), their calls interleaved
(one call of each, in a rotating order, per repetition) so that the machine's drift hits all of them alike:

- forward, per model (timm legacy_xception, inception_v4, seresnext50_32x4d) and batch (1, 8): timm in PyTorch
  eager; porting's MindSpore model in PYNATIVE and GRAPH mode; porting's ONNX export in onnxruntime; the same
  timm model exported by torch.onnx in onnxruntime; mindcv's model of the same architecture in MindSpore GRAPH
  and PYNATIVE (mindcv is a benchmark-only extra: `pip install --no-deps mindcv==0.3.0`);
- deploy, per model and batch: porting's ONNX in onnxruntime against OpenVINO at f32 and at OpenVINO's own
  default precision (bf16 on CPUs that have it);
- one fine-tuning step of Xception (batch 4, 96 px) in GRAPH against PYNATIVE;
- `porting port-weights` against a bare script (benchmarks/bare_port.py), whole commands, wall time.

The weights are seeded (porting random-weights), so nothing is downloaded.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
# (timm name, porting spec, mindcv name, input size)
MODELS = [("legacy_xception", "timm:legacy_xception", "xception", 299),
          ("inception_v4", "timm:inception_v4", "inception_v4", 299),
          ("seresnext50_32x4d", "timm:seresnext50_32x4d", "seresnext50_32x4d", 224)]
TORCH_ONNX = """
import sys, torch, timm
name, weights, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model = timm.create_model(name, pretrained=False)
model.load_state_dict(torch.load(weights, weights_only=True))
model.eval()
torch.onnx.export(model, torch.zeros(1, 3, size, size), out, opset_version=17, input_names=["input"],
                  output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
"""


def porting_cli(*args: str) -> None:
    proc = subprocess.run([PYTHON, "-m", "porting", *map(str, args)], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"porting {' '.join(map(str, args))} failed: {proc.stderr.strip().splitlines()[-1]}")


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Contender:
    """A benchmark/contender.py process: built once, then timed one call at a time."""

    def __init__(self, label: str, work: Path, **spec):
        self.label = label
        path = work / f"contender-{abs(hash(label))}.json"
        path.write_text(json.dumps(spec))
        env = dict(os.environ)
        if spec["kind"] in ("torch",):  # PyTorch gets its full ISA; MindSpore's processes cap oneDNN themselves
            env.pop("ONEDNN_MAX_CPU_ISA", None)
        self.proc = subprocess.Popen([PYTHON, str(HERE / "contender.py"), str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self.times: list[float] = []

    def ready(self) -> None:
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            sys.exit(f"contender '{self.label}' failed to start")

    def run(self) -> None:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        self.times.append(float(self.proc.stdout.readline()))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleave(contenders: list[Contender], reps: int, what: str) -> None:
    for c in contenders:
        c.ready()
    for rep in range(reps):
        log(f"{what}: repetition {rep + 1}/{reps}")
        order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
        for c in order:
            c.run()
    for c in contenders:
        c.close()


def prepare(work: Path, models) -> dict:
    """Seeded weights, their port and both ONNX exports, per model."""
    files = {}
    for timm_name, spec, _, size in models:
        log(f"preparing {spec}: seeded weights, port-weights, ONNX exports")
        pth, ckpt, onnx, tonnx = (work / f"{timm_name}{s}" for s in (".pth", ".ckpt", ".onnx", ".torch.onnx"))
        porting_cli("random-weights", spec, "-o", pth)
        porting_cli("port-weights", spec, "--weights", pth, "-o", ckpt)
        porting_cli("export", ckpt, "--format", "onnx", "-o", onnx)
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        proc = subprocess.run([PYTHON, "-c", TORCH_ONNX, timm_name, str(pth), str(size), str(tonnx)],
                              capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.exit(f"torch.onnx export of {timm_name} failed: {proc.stderr.strip().splitlines()[-1]}")
        files[timm_name] = {"pth": pth, "ckpt": ckpt, "onnx": onnx, "torch_onnx": tonnx}
    return files


def forward(work: Path, files: dict, models, batches, reps: int, with_mindcv: bool) -> list[dict]:
    rows = []
    for timm_name, spec, mindcv_name, size in models:
        f = files[timm_name]
        for batch in batches:
            common = dict(batch=batch, size=size)
            contenders = [
                Contender("timm eager (PyTorch)", work, kind="torch", timm=timm_name, weights=str(f["pth"]), **common),
                Contender("porting MindSpore PYNATIVE", work, kind="porting-mindspore", ckpt=str(f["ckpt"]),
                          graph=False, **common),
                Contender("porting MindSpore GRAPH", work, kind="porting-mindspore", ckpt=str(f["ckpt"]),
                          graph=True, **common),
                Contender("porting ONNX in onnxruntime", work, kind="onnxruntime", onnx=str(f["onnx"]), **common),
                Contender("torch.onnx in onnxruntime", work, kind="onnxruntime", onnx=str(f["torch_onnx"]), **common),
            ]
            if with_mindcv:
                contenders += [
                    Contender("mindcv MindSpore PYNATIVE", work, kind="mindcv", mindcv=mindcv_name, graph=False,
                              **common),
                    Contender("mindcv MindSpore GRAPH", work, kind="mindcv", mindcv=mindcv_name, graph=True, **common)]
            interleave(contenders, reps, f"{timm_name} batch {batch}")
            rows.append({"model": timm_name, "batch": batch, "size": size,
                         "median_s": {c.label: c.median for c in contenders}})
    return rows


def deploy(work: Path, files: dict, models, batches, reps: int) -> list[dict]:
    """porting's ONNX in onnxruntime against OpenVINO at f32 and at OpenVINO's own default precision."""
    import openvino as ov

    chosen = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    rows = []
    for timm_name, _, _, size in models:
        onnx = str(files[timm_name]["onnx"])
        for batch in batches:
            common = dict(batch=batch, size=size, onnx=onnx)
            contenders = [Contender("onnxruntime", work, kind="onnxruntime", **common),
                          Contender("OpenVINO f32", work, kind="openvino", precision="f32", **common),
                          Contender(f"OpenVINO default ({chosen})", work, kind="openvino", precision="default",
                                    **common)]
            interleave(contenders, reps, f"{timm_name} batch {batch}: onnxruntime vs OpenVINO")
            rows.append({"model": timm_name, "batch": batch, "size": size, "default": chosen,
                         "median_s": {c.label: c.median for c in contenders}})
    return rows


def train(work: Path, files: dict, reps: int) -> dict:
    ckpt = str(files["legacy_xception"]["ckpt"])
    contenders = [Contender(f"train step {mode}", work, kind="train-step", ckpt=ckpt, graph=mode == "GRAPH", batch=4,
                            size=96) for mode in ("PYNATIVE", "GRAPH")]
    interleave(contenders, reps, "xception fine-tune step, batch 4, 96 px")
    return {c.label: c.median for c in contenders}


def port(work: Path, files: dict, reps: int) -> dict:
    pth = files["legacy_xception"]["pth"]
    commands = {"porting port-weights": [PYTHON, "-m", "porting", "port-weights", "timm:legacy_xception",
                                         "--weights", str(pth), "-o", str(work / "timed.ckpt")],
                "bare script": [PYTHON, str(HERE / "bare_port.py"), str(pth), str(work / "bare.ckpt")]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for rep in range(reps):
        log(f"port-weights vs bare script: repetition {rep + 1}/{reps}")
        for label in (list(commands) if rep % 2 == 0 else list(commands)[::-1]):
            t0 = time.perf_counter()
            subprocess.run(commands[label], capture_output=True, check=True)
            times[label].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _print_times(title: str, times: dict, unit: str) -> None:
    print(f"\n{title}")
    for label, seconds in times.items():
        print(f"  {label:32s} {seconds * 1000:9.1f} ms" if unit == "ms" else f"  {label:32s} {seconds:9.2f} s")


def report_deploy(rows: list[dict]) -> None:
    """The deployment runtimes: ratios only (onnxruntime's time / OpenVINO's), no target."""
    for row in rows:
        t = row["median_s"]
        print(f"\n{row['model']} at {row['size']} px, batch {row['batch']}: porting's ONNX, median seconds per call, "
              f"and onnxruntime's time / this runtime's (x > 1: faster than onnxruntime)")
        for label, seconds in t.items():
            print(f"  {label:32s} {seconds * 1000:9.1f} ms  x{t['onnxruntime'] / seconds:5.2f}")


def report(rows: list[dict], train_times: dict | None, port_times: dict | None) -> list[tuple[str, float, float]]:
    """Print the tables; return the targets as (what, ratio, required)."""
    targets = []
    for row in rows:
        t = row["median_s"]
        ref = t["timm eager (PyTorch)"]
        print(f"\n{row['model']} at {row['size']} px, batch {row['batch']}: median seconds per call, and speed "
              f"relative to timm eager (x > 1: faster)")
        for label, seconds in t.items():
            print(f"  {label:32s} {seconds * 1000:9.1f} ms  {row['batch'] / seconds:7.2f} img/s  x{ref / seconds:5.2f}")
        targets.append((f"{row['model']} b{row['batch']}: porting ONNX vs torch.onnx, both in onnxruntime",
                        t["torch.onnx in onnxruntime"] / t["porting ONNX in onnxruntime"], 1.0))
        if "mindcv MindSpore GRAPH" in t:
            targets.append((f"{row['model']} b{row['batch']}: porting MindSpore GRAPH vs mindcv GRAPH",
                            t["mindcv MindSpore GRAPH"] / t["porting MindSpore GRAPH"], 1.0))
    if train_times:
        _print_times("xception fine-tune step (batch 4, 96 px): median seconds", train_times, "ms")
        targets.append(("fine-tune step: GRAPH vs PYNATIVE",
                        train_times["train step PYNATIVE"] / train_times["train step GRAPH"], 1.5))
    if port_times:
        _print_times("port timm legacy_xception to a .ckpt, whole command: median wall seconds", port_times, "s")
        targets.append(("port-weights: bare script time / porting time (1/1.5: porting within 1.5x)",
                        port_times["bare script"] / port_times["porting port-weights"], 1 / 1.5))
    print("\ntargets (speed ratio = the other's median time / ours; at least the required value):")
    for what, ratio, required in targets:
        print(f"  {'ok  ' if ratio >= required else 'MISS'} x{ratio:5.2f} (>= {required:.2f})  {what}")
    return targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions per contender (median)")
    parser.add_argument("--only", default="forward,deploy,train,port",
                        help="comma list of forward, deploy (onnxruntime vs OpenVINO), train, port")
    parser.add_argument("--models", default=",".join(m[0] for m in MODELS), help="comma list of timm names")
    parser.add_argument("--batches", default="1,8", help="comma list of batch sizes")
    parser.add_argument("--quick", action="store_true", help="legacy_xception only, batch 1, 3 repetitions")
    parser.add_argument("--json", type=Path, help="also write the medians as JSON")
    args = parser.parse_args()
    only = set(args.only.split(","))
    models = MODELS[:1] if args.quick else [m for m in MODELS if m[0] in args.models.split(",")]
    batches = (1,) if args.quick else tuple(int(b) for b in args.batches.split(","))
    reps = 3 if args.quick else args.reps
    with_mindcv = importlib.util.find_spec("mindcv") is not None
    if not with_mindcv and "forward" in only:
        log("mindcv is not installed (pip install --no-deps mindcv==0.3.0): its columns are left out")
    with tempfile.TemporaryDirectory(prefix="porting-bench-") as tmp:
        work = Path(tmp)
        with_openvino = importlib.util.find_spec("openvino") is not None
        if not with_openvino and "deploy" in only:
            log("OpenVINO is not installed (pip install 'porting[openvino]'): the deploy section is left out")
        files = prepare(work, models if only & {"forward", "deploy"} else MODELS[:1])
        rows = forward(work, files, models, batches, reps, with_mindcv) if "forward" in only else []
        deploy_rows = deploy(work, files, models, batches, reps) if "deploy" in only and with_openvino else []
        train_times = train(work, files, max(reps, 5)) if "train" in only else None
        port_times = port(work, files, reps) if "port" in only else None
    report_deploy(deploy_rows)
    report(rows, train_times, port_times)
    if args.json:
        args.json.write_text(json.dumps({"forward": rows, "deploy": deploy_rows, "train": train_times,
                                         "port": port_times}, indent=2))


if __name__ == "__main__":
    main()

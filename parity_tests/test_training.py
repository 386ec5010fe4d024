"""finetune / eval / predict / msrun on a tiny generated ImageFolder, at 64 px on CPU (issue 5)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, error_line, porting

from porting import api, checkpoint

SMALL = ["--image-size", "64", "--batch-size", "4", "--lr-init", "0.001", "--lr-max", "0.01", "--lr-end", "0.0001",
         "--workers", "2", "--log-every", "1"]


@pytest.fixture(scope="module")
def ported(work) -> Path:
    """A ported xception with a fresh 3-class head (random-init source weights)."""
    path = work / "x3.ckpt"
    api.port("timm:xception", seed=0, num_classes=3, output=path)  # in this process: its command is tested elsewhere
    return path


@pytest.fixture(scope="module")
def finetuned(work, ported, tiny_data) -> Path:
    out = work / "ft"
    run = porting("finetune", ported, "--data", tiny_data, "--epochs", "2", *SMALL, "-o", out)
    assert run.code == 0, run.stderr
    return out


def eval_json(ckpt: Path, data: Path, *extra) -> dict:
    run = porting("eval", ckpt, "--data", data, "--json", *extra)
    assert run.code == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_finetune_lowers_the_loss_on_a_fixed_batch(ported, finetuned, tiny_data):
    newest = finetuned / "xception-2_6.ckpt"
    assert newest.exists(), os.listdir(finetuned)
    before = eval_json(ported, tiny_data, "--size", "64")
    after = eval_json(newest, tiny_data)
    assert after["Loss"] < before["Loss"], (before, after)
    log = (finetuned / "train.log").read_text()
    assert "epoch: 1 step: 1, loss is " in log and "epoch: 2 step: 6, loss is " in log
    assert "epoch time: " in log and " ms, per step time: " in log
    _, meta = checkpoint.load(newest)
    assert meta.class_names == CLASSES and meta.num_classes == 3 and meta.input_size == 64
    assert meta.train_state.global_step == 12


def test_eval_agrees_with_topk_from_the_logits(finetuned, tiny_data, tmp_path):
    result = eval_json(finetuned / "xception-2_6.ckpt", tiny_data, "--dump-logits", tmp_path / "l.npz")
    dump = np.load(tmp_path / "l.npz")
    logits, labels = dump["logits"], dump["labels"]
    assert sorted(np.bincount(labels).tolist()) == [4, 4, 4] and logits.shape == (12, 3)
    top1 = float(np.mean(logits.argmax(axis=1) == labels))
    ranks = (logits > logits[np.arange(12), labels][:, None]).sum(axis=1)  # how many classes beat the true one
    top5 = float(np.mean(ranks < 5))
    shifted = logits - logits.max(axis=1, keepdims=True)
    loss = float(np.mean(np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(12), labels]))
    assert result["Top_1_Acc"] == pytest.approx(top1) and result["Top_5_Acc"] == pytest.approx(top5)
    assert result["Loss"] == pytest.approx(loss, rel=1e-6)
    plain = porting("eval", finetuned / "xception-2_6.ckpt", "--data", tiny_data)
    assert plain.stdout.strip().startswith("result: {'Loss': ")


def test_predict_gives_sorted_probabilities_over_the_class_names(finetuned, tiny_data, tmp_path):
    images = [tiny_data / "val" / "circle" / "0.png", tiny_data / "val" / "stripes" / "1.png"]
    run = porting("predict", finetuned / "xception-2_6.ckpt", *images, "--topk", "3", "--json")
    assert run.code == 0, run.stderr
    results = json.loads(run.stdout)
    for r in results:
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert sorted(t["class"] for t in r["top"]) == CLASSES
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    assert "broken.jpg" in error_line(porting("predict", finetuned / "xception-2_6.ckpt", bad))


def test_interrupted_run_resumes_from_its_step_and_optimizer_state(ported, tiny_data, tmp_path):
    out = tmp_path / "run"
    # PYNATIVE: what is restored (step, optimizer moments, weights) is the same in either mode, and two compiled
    # training graphs are a minute of CPU (test_graph_and_pynative_training_agree proves the modes agree)
    cmd = [sys.executable, "-m", "porting", "finetune", str(ported), "--data", str(tiny_data), "--epochs", "2",
           *SMALL, "--save-checkpoint-steps", "2", "--pynative", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "xception-1_2.ckpt"
    deadline = time.time() + 900
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # a hard interruption, right after the step-2 checkpoint
    proc.wait()
    assert first.exists()
    for later in out.glob("xception-*.ckpt"):  # keep exactly the step-2 state, wherever the kill landed
        if later != first:
            later.unlink()
    state, meta = checkpoint.load(first)
    assert meta.train_state.global_step == 2
    assert any(k.startswith("moments.") and np.abs(v).max() > 0 for k, v in state.items())
    run = porting("finetune", ported, "--data", tiny_data, "--epochs", "2", *SMALL, "--save-checkpoint-steps", "2",
                  "--pynative", "-o", out, "--resume")
    assert run.code == 0, run.stderr
    assert "resuming from xception-1_2.ckpt: global step 2" in run.stderr
    final, final_meta = checkpoint.load(out / "xception-2_6.ckpt")
    assert final_meta.train_state.global_step == 12 and int(final["global_step"].reshape(-1)[0]) == 12
    text = (out / "train.log").read_text()
    assert "training xception" in text and ", resuming at global step 2" in text  # each run's opening line
    log = [ln for ln in text.splitlines() if ln.startswith("epoch: ")]
    last_step2 = max(i for i, ln in enumerate(log) if ln.startswith("epoch: 1 step: 2,"))
    assert log[last_step2 + 1].startswith("epoch: 1 step: 3,"), log  # it continued, it did not start over


def loss_lines(run_dir: Path) -> list[str]:
    """train.log's per-step loss and per-epoch validation lines (not the opening or timing lines)."""
    return re.findall(r"^epoch: \d+ (?:step: \d+, loss is|validation:) .*$", (run_dir / "train.log").read_text(), re.M)


def test_a_resumed_run_is_the_run_it_resumes(ported, finetuned, tiny_data, tmp_path):
    """Issue 30: stopped at an epoch boundary (step 6, the end of epoch 1) and resumed, stopped again in the
    middle of epoch 2 (step 9) and resumed: the same losses, validation and final checkpoint (every tensor,
    optimizer state included) as the uninterrupted run `finetuned`, bit for bit. Each epoch's order and crops were
    drawn from where the iterator left the one before, which a resumed run does not replay."""
    out = tmp_path / "parts"
    args = ["finetune", ported, "--data", tiny_data, "--epochs", "2", *SMALL, "-o", out]
    for extra, stopped in ((["--max-steps", "6"], "xception-1_6.ckpt"),
                           (["--max-steps", "3", "--resume"], "xception-2_3.ckpt")):
        run = porting(*args, *extra)
        assert run.code == 0, run.stderr
        assert (out / stopped).exists(), os.listdir(out)
    # a run with other settings would not be the same run: refused, naming them
    changed = error_line(porting(*args, "--resume", "--seed", "1", "--lr-max", "0.02"))
    assert "xception-2_3.ckpt was trained with" in changed and "seed 0 (this run: 1)" in changed
    assert "lr_max 0.01 (this run: 0.02)" in changed
    run = porting(*args, "--resume")
    assert run.code == 0, run.stderr
    assert "resuming from xception-2_3.ckpt: global step 9 (epoch 2, step 3)" in run.stderr
    assert loss_lines(out) == loss_lines(finetuned) and len(loss_lines(out)) == 14
    whole, whole_meta = checkpoint.load(finetuned / "xception-2_6.ckpt")
    resumed, resumed_meta = checkpoint.load(out / "xception-2_6.ckpt")
    assert whole.keys() == resumed.keys() and any(k.startswith("moments.") for k in whole)
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)
    assert resumed_meta.train_state == whole_meta.train_state  # the divergence stop's losses too


def test_every_epoch_is_rebuilt_the_same_from_any_step(ported, tiny_data):
    """The data a resumed run trains on, without training: from any step, and through the GeneratorDataset that
    the dataset sink (Ascend/GPU) reads, the batches are those of the same steps of a run started at step 0, on
    one shard of two as on the whole folder."""
    import mindspore.dataset as ds

    from porting.images.pipelines import TrainFolder
    from porting.training.finetune import TrainStream

    _, card = checkpoint.load(ported)
    labels = {name: i for i, name in enumerate(CLASSES)}
    for shards in ((None, None), (2, 1)):
        data = TrainFolder(tiny_data / "train", card, 64, 4, labels, workers=2, num_shards=shards[0],
                           shard_id=shards[1], seed=3)
        spe = data.steps_per_epoch
        whole = [(x.asnumpy(), y.asnumpy()) for x, y in TrainStream(data, 0, 3 * spe)]
        assert not np.array_equal(whole[0][0], whole[spe][0])  # a new order and new crops every epoch
        for start in (spe, spe + 1, 2 * spe + spe // 2):
            host = [(x.asnumpy(), y.asnumpy()) for x, y in TrainStream(data, start, 3 * spe)]
            sunk = ds.GeneratorDataset(TrainStream(data, start, 3 * spe, numpy=True), ["image", "label"],
                                       shuffle=False, python_multiprocessing=False)
            assert sunk.get_dataset_size() == len(host) == 3 * spe - start
            for batches in (host, list(sunk.create_tuple_iterator(num_epochs=1, output_numpy=True))):
                for (x, y), (x0, y0) in zip(batches, whole[start:], strict=True):
                    np.testing.assert_array_equal(x, x0)
                    np.testing.assert_array_equal(y, y0)


def test_default_recipe_finetunes_at_a_small_batch(ported, tiny_data, tmp_path):
    """Issue 8: the README example with the default recipe at batch 4. The model zoo's lr 0.4 (tuned for a
    global batch of 1024) diverged here; scaled to the batch it trains, and validation is reported per epoch."""
    out = tmp_path / "run"
    run = porting("finetune", ported, "--data", tiny_data, "--batch-size", "4", "--epochs", "3", "--image-size", "64",
                  "--log-every", "1", "--workers", "2", "-o", out)
    assert run.code == 0, run.stderr
    assert "learning rates scaled to the global batch 4" in run.stderr and "lr_max 0.4 -> 0.0015625" in run.stderr
    assert "BatchNorm: momentum 0.9 in MindSpore's convention" in run.stderr and "the recipe's own" in run.stderr
    log = (out / "train.log").read_text()
    losses = {e: [float(m) for m in re.findall(rf"^epoch: {e} step: \d+, loss is (\S+)$", log, re.M)] for e in (1, 3)}
    assert len(losses[1]) == len(losses[3]) == 6 and all(np.isfinite(losses[3]))
    assert np.mean(losses[3]) < np.mean(losses[1]), losses
    tops = [float(t) for t in re.findall(r"^epoch: \d validation: top-1 (\S+),", log, re.M)]
    assert len(tops) == 3 and "epoch: 3 validation: top-1" in run.stderr


def test_print_recipe_shows_the_learning_rates_the_run_trains_with(ported):
    """The recipe's lr_max 0.4 is the model zoo's for a global batch of 1024; beside it, what batch 2 trains with
    (0.4 x 2 / 1024, as the run logs it), and a learning rate the user set, as given."""
    run = porting("finetune", ported, "--print-recipe", "--batch-size", "2", "--lr-end", "0.001")
    assert run.code == 0, run.stderr
    printed = json.loads(run.stdout)
    assert printed["recipe"]["lr_max"] == 0.4 and printed["recipe"]["batch_size"] == 2
    trained = printed["trained_with"]
    assert trained["global_batch"] == 2 and trained["lr_max"] == pytest.approx(0.00078125), trained
    assert trained["lr_init"] == pytest.approx(4e-5 * 2 / 1024) and trained["lr_end"] == 0.001, trained
    assert trained["lr_as_given"] == ["lr_end"]


def test_a_diverging_run_stops_with_the_fix(ported, tiny_data, tmp_path):
    run = porting("finetune", ported, "--data", tiny_data, "--batch-size", "4", "--epochs", "2", "--image-size", "64",
                  "--lr-max", "50", "--lr-init", "50", "--workers", "2", "-o", tmp_path / "run")
    line = error_line(run)
    assert "training diverged" in line and "--lr-max 5" in line


def test_graph_and_pynative_training_agree(ported, tiny_data, tmp_path):
    """Fine-tuning compiles the training step (GRAPH mode) by default; --pynative runs it cell by cell. Same
    seeds, same batches: the two runs must end at the same weights and optimizer state."""
    args = ["--epochs", "1", *SMALL, "--max-steps", "3"]
    for mode in ("graph", "pynative"):
        run = porting("finetune", ported, "--data", tiny_data, *args, *(["--pynative"] if mode == "pynative" else []),
                      "-o", tmp_path / mode)
        assert run.code == 0, run.stderr
        assert f"{mode.upper()} mode" in run.stderr
    graph, _ = checkpoint.load(tmp_path / "graph" / "xception-1_3.ckpt")
    pynative, _ = checkpoint.load(tmp_path / "pynative" / "xception-1_3.ckpt")
    assert graph.keys() == pynative.keys() and any(k.startswith("moments.") for k in graph)
    for name in graph:  # the same kernels in the same order: bit for bit (seen on MindSpore 2.10 CPU)
        np.testing.assert_array_equal(graph[name], pynative[name], err_msg=name)


def test_sink_size_lands_on_every_event():
    from porting.training.finetune import sink_size

    assert sink_size(1251) == 1251  # one sink call per epoch, as the model zoo
    assert sink_size(1251, 0, 0, 0, 0) == 1251
    assert sink_size(12, 4, 6) == 2 and sink_size(12, 0, 0, 0, 3) == 3 and sink_size(7, 2) == 1


def test_dataset_sink_needs_a_device(ported, tiny_data, tmp_path):
    line = error_line(porting("finetune", ported, "--data", tiny_data, "--dataset-sink", "-o", tmp_path / "x"))
    assert "--dataset-sink" in line and "Ascend or GPU" in line


def test_bench_reports_every_runtime(ported):
    """MindSpore, onnxruntime and OpenVINO (installed here: at f32 and at its own default) side by side; the
    table's ratios against both; --runtime ort leaves OpenVINO out."""
    import openvino

    chosen = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    run = porting("bench", ported, "--batch", "1", "--batch", "2", "--size", "64", "--reps", "2", "--json")
    assert run.code == 0, run.stderr
    results = json.loads(run.stdout)
    assert [(r["batch"], r["runtime"].split(" ")[0], r["precision"]) for r in results] == [
        (b, name, precision) for b in (1, 2) for name, precision in (
            ("MindSpore", "f32"), ("ONNX", "f32"), ("OpenVINO", "f32"), ("OpenVINO", chosen))]
    assert results[3]["runtime"] == f"OpenVINO (CPU, {chosen}: OpenVINO's default on this CPU)"
    assert all(r["size"] == 64 and r["img_per_s"] > 0 and r["median_s"] > 0 for r in results)
    table = porting("bench", ported, "--batch", "1", "--size", "64", "--reps", "1", "--runtime", "ort")
    assert table.code == 0, table.stderr
    assert "vs ONNX Runtime" in table.stdout and "OpenVINO" not in table.stdout


def test_amp_fp16_on_cpu_is_a_clear_error(ported, tiny_data, tmp_path):
    line = error_line(porting("finetune", ported, "--data", tiny_data, "--amp-level", "O2", "-o", tmp_path))
    assert "O2" in line and "CPU" in line and "O0" in line


@pytest.mark.skipif(shutil.which("msrun", path=os.path.dirname(sys.executable)) is None, reason="msrun missing")
def test_msrun_two_workers_keep_identical_weights(ported, tiny_data, tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    args = ["finetune", str(ported), "--data", str(tiny_data), "--epochs", "1", "--image-size", "64",
            "--batch-size", "2", "--lr-max", "0.05", "--lr-init", "0.05", "--workers", "1", "--max-steps", "2",
            "--save-rank-weights"]
    porting_bin = shutil.which("porting", path=os.path.dirname(sys.executable))
    msrun = [shutil.which("msrun", path=os.path.dirname(sys.executable)), "--worker_num=2", "--local_worker_num=2",
             "--master_port=8231", f"--log_dir={tmp_path / 'logs'}", "--join=True", porting_bin]
    proc = subprocess.run(msrun + args + ["--distributed", "-o", str(tmp_path / "ddp")], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:]
    rank0, rank1 = np.load(tmp_path / "ddp" / "rank_0.npz"), np.load(tmp_path / "ddp" / "rank_1.npz")
    assert rank0.files == rank1.files and len(rank0.files) > 100
    for name in rank0.files:
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)
    assert sorted(os.listdir(tmp_path / "ddp")) == ["rank_0.npz", "rank_1.npz", "train.log", "xception-1_2.ckpt"]
    # one worker on rank 0's shard alone, same steps: without rank 1's gradients it must end elsewhere
    single = porting(*args, "--shard", "0/2", "-o", tmp_path / "single")
    assert single.code == 0, single.stderr
    alone = np.load(tmp_path / "single" / "rank_0.npz")
    changed = [n for n in rank0.files if not np.array_equal(rank0[n], alone[n])]
    assert "fc.weight" in changed and len(changed) > len(rank0.files) // 2


def test_finetuned_checkpoint_exports_to_onnx_with_parity(finetuned, tiny_data, tmp_path):
    import mindspore as ms
    import onnxruntime as ort

    from porting.compare import compare_tensor
    from porting.images.pipelines import load_image
    from porting.images.preprocessing import preprocessing

    ckpt = finetuned / "xception-2_6.ckpt"
    assert porting("export", ckpt, "--format", "onnx", "-o", tmp_path / "ft.onnx").code == 0
    net, meta = checkpoint.load_model(ckpt)
    x = np.stack([load_image(p, preprocessing(meta, size=64)) for p in sorted((tiny_data / "val").glob("*/*.png"))[:4]])
    expected = net(ms.Tensor(x)).asnumpy()
    got = ort.InferenceSession(str(tmp_path / "ft.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    row = compare_tensor("logits", "onnx", expected, got)
    assert row.ok, row
    assert (expected.argmax(1) == got.argmax(1)).all()


def test_recipes_and_overrides(tmp_path):
    from porting.errors import PortingError
    from porting.training import recipes

    assert recipes.load(None, "xception")[0].optimizer == "momentum"
    assert recipes.load("inceptionv4", "xception")[0].optimizer == "rmsprop"
    assert recipes.load(None, "se_resnext")[0].lr_decay_mode == "cosine"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr_max: 0.1\nepochs: 3\n")
    r, settings = recipes.load("xception", "xception", cfg, {"epochs": 5})
    assert (r.lr_max, r.epochs) == (0.1, 5)  # file over recipe, flag over file
    assert settings["lr_given"] == ["lr_max"]
    cfg.write_text("lr_maxx: 0.1\n")
    with pytest.raises(PortingError, match="lr_maxx"):
        recipes.load("xception", "xception", cfg)
    # the model zoo's own default_config.yaml keys (seeds 000-002): aliases, or ignored with a warning
    cfg.write_text("epoch_size: 7\nlr_decay_mode: liner\nuse_label_smooth: False\ndevice_target: cpu\n"
                   "save_checkpoint_path: ./ckpt\nenable_modelarts: False\nper_batch_size: 16\n")
    warnings = []
    r, settings = recipes.load("xception", "xception", cfg, log=warnings.append)
    assert (r.epochs, r.lr_decay_mode, r.label_smooth_factor, r.batch_size) == (7, "linear", 0.0, 16)
    assert settings["device"] == "CPU" and "save_checkpoint_path, enable_modelarts" in warnings[0]
    # the recipe's own learning rates follow the global batch (linear scaling), the user's stay as given
    base = recipes.RECIPES["xception"]
    half, factor = recipes.scaled(base, 512)
    assert factor == 0.5 and half.lr_max == pytest.approx(0.2) and half.lr_end == pytest.approx(2e-5)
    kept, _ = recipes.scaled(base, 4, given=("lr_max",))
    assert kept.lr_max == 0.4 and kept.lr_init == pytest.approx(4e-5 * 4 / 1024)
    lrs = recipes.lr_schedule(recipes.Recipe(lr_init=0.0, lr_max=1.0, lr_end=0.0, warmup_epochs=1), 10, 3)
    assert len(lrs) == 30 and lrs[9] == pytest.approx(1.0) and lrs[0] == pytest.approx(0.1) and lrs[-1] < 0.06

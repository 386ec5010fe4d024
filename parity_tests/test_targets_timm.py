"""export --to timm (issue 19): timm's own round trip, PaddleClas SE-ResNeXt weights into timm's model, and the
refusals, on one timm checkpoint (a file of its own, so that CI's two workers share the export tests)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import error_line, porting
from test_targets import PROOF, assert_round_trip

from porting import api
from porting.errors import PortingError

README = Path(__file__).resolve().parents[1] / "README.md"


def test_round_trip_gives_the_timm_file_back(ported, tmp_path):
    assert_round_trip(ported, "timm:legacy_xception", ".pth", "timm", "x.safetensors", tmp_path)


def test_the_proofs_size_stays_out_of_timms_config(ported, tmp_path):
    """export --to timm --size 96: --size is the size of the proof's inputs; config.json keeps the checkpoint's own
    input size, which timm's resolve_data_config hands to every user of the folder."""
    _, ckpt = ported("timm:legacy_xception", ".pth")
    api.export_to(ckpt, tmp_path / "x", "timm", size=96, check=False)
    config = json.loads((tmp_path / "x" / "config.json").read_text())["pretrained_cfg"]
    assert config["input_size"] == [3, 299, 299] and "test_input_size" not in config, config


def test_paddleclas_se_resnext_into_timms_model(ported, tmp_path):
    """The PaddleClas -> timm pair the graphs allow: same stem, pool, BN eps and SE, whose Dense layers become
    timm's 1x1 convs (reshaped); proven in timm."""
    _, ckpt = ported("paddleclas:SE_ResNeXt50_32x4d", ".pdparams")
    report, fit, target = api.export_to(ckpt, tmp_path / "se", "timm:seresnext50_32x4d", **PROOF)
    assert fit.exact and report.ok, report.first_failure()
    assert len(report.layers(target.source)) > 10 and report.top1_agree["timm"] == 1.0
    assert [f[:len("SE as 1x1 convs")] for f in fit.folds] == ["SE as 1x1 convs"]
    assert (tmp_path / "se" / "config.json").is_file() and (tmp_path / "se" / "model.safetensors").is_file()


def test_an_inexact_target_is_written_with_approximate_and_measured(ported, tmp_path):
    """timm pads its max pools by 1, Keras TF 'same': refused without --approximate, written and measured with."""
    _, ckpt = ported("timm:legacy_xception", ".pth")
    with pytest.raises(PortingError, match="--approximate"):
        api.export_to(ckpt, tmp_path / "k.weights.h5", "keras:xception")
    assert not (tmp_path / "k.weights.h5").exists()
    report, fit, _ = api.export_to(ckpt, tmp_path / "k.weights.h5", "keras:xception", approximate=True, **PROOF)
    assert not fit.exact and "max pools" in fit.differences[0]
    assert (tmp_path / "k.weights.h5").is_file() and report.rows  # measured: the pools' outputs differ
    assert not report.ok


def test_refusals_are_one_line_and_write_nothing(ported, tmp_path):
    _, ckpt = ported("timm:legacy_xception", ".pth")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    commands = {  # through the command: one error line, exit 2
        "timm:inception_v4": ("that is a inception_v4", tmp_path / "b"),  # another architecture
        "keras:xception": ("--approximate", tmp_path / "c.weights.h5"),  # inexact
    }
    for to, (message, out) in commands.items():
        line = error_line(porting("export", ckpt, "--to", to, "-o", out))
        assert message in line, (to, line)
    calls = {  # the same errors in the API, cheaper than a process each
        "timm:no_such_model": ("unknown model", tmp_path / "a"),
        "timm": ("exists: remove it", tmp_path / "full"),  # a folder target onto a folder with files in it
        "paddleclas": ("no paddleclas model has the checkpoint's architecture", tmp_path / "d.pdparams"),
        "keras": ("name the keras model: keras:xception", tmp_path / "e.weights.h5"),
        "timm:legacy_xception": ("is written as a folder (no suffix), .safetensors, .pth", tmp_path / "f.h5"),
    }
    for to, (message, out) in calls.items():
        with pytest.raises(PortingError, match=re.escape(message)):
            api.export_to(ckpt, out, to)
    assert [p.name for p in tmp_path.iterdir()] == ["full"] and [p.name for p in (tmp_path / "full").iterdir()] == ["f"]
    with pytest.raises(PortingError, match="apply to ONNX"):  # the CLI's own check, before any work
        from porting import cli
        cli._export_to(ckpt, tmp_path / "h", "timm", None, False, False, None, None, fp16=True)




# appended to the README's lines (which leave `model`): which tensors of the model differ from the written file
LOADED = {
    "timm": ("xception_timm", "timm:legacy_xception", ".pth", """
import json, torch
from safetensors.torch import load_file
written, state = load_file("xception_timm/model.safetensors"), model.state_dict()
print(json.dumps([k for k, v in written.items() if k not in state or not torch.equal(state[k], v)]))
"""),
    "paddleclas": ("SE_ResNeXt50_32x4d.pdparams", "paddleclas:SE_ResNeXt50_32x4d", ".pdparams", """
import json
import numpy as np
written, state = paddle.load("SE_ResNeXt50_32x4d.pdparams"), model.state_dict()
print(json.dumps([k for k, v in written.items() if k not in state or not np.array_equal(state[k].numpy(), v.numpy())]
                 + [k for k in state if k not in written]))
"""),
}


@pytest.mark.parametrize("library", list(LOADED))
def test_the_readmes_lines_load_the_export(ported, tmp_path, library):
    """README "Back to your framework": its Python lines, run as they are in a fresh process of porting's own
    environment (the library alone, as in a worker) beside the file `export --to` wrote, give a model holding every
    tensor of the file (timm's local-dir loads nothing without pretrained=True; `import paddleclas` needs the
    application's own dependencies)."""
    name, spec, suffix, check = LOADED[library]
    _, ckpt = ported(spec, suffix)
    api.export_to(ckpt, tmp_path / name, library, check=False)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if name in b]
    assert len(blocks) == 1, f"README shows {len(blocks)} Python blocks loading {name}"
    proc = subprocess.run([sys.executable, "-c", blocks[0] + check], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == [], "tensors the README's lines did not load"

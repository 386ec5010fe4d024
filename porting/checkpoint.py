"""MindSpore .ckpt files that carry their own metadata, written whole or not at all."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np

from porting.errors import PortingError, first_line

META_KEY = "porting_metadata"


def atomic_path(path: str | Path):
    """A temporary sibling of `path`; the caller os.replace()s it into place once it is complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def save(params: dict[str, np.ndarray], path: str | Path, metadata: dict) -> None:
    tmp = atomic_path(path)
    try:
        # save_checkpoint appends '.ckpt' to names that lack it
        tmp_ckpt = tmp.with_name(tmp.name + ".ckpt")
        plist = [{"name": k, "data": ms.Tensor(np.ascontiguousarray(v))} for k, v in params.items()]
        ms.save_checkpoint(plist, str(tmp_ckpt), append_dict={META_KEY: json.dumps(metadata, sort_keys=True)})
        os.replace(tmp_ckpt, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".ckpt")):
            leftover.unlink(missing_ok=True)


def load(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    path = Path(path)
    if not path.is_file():
        raise PortingError(f"checkpoint '{path}' does not exist")
    try:
        raw = ms.load_checkpoint(str(path))
    except Exception as exc:
        raise PortingError(f"cannot read '{path}' as a MindSpore checkpoint: {first_line(exc)}") from None
    if META_KEY not in raw:
        raise PortingError(f"'{path}' has no porting metadata: was it written by `porting port-weights`?")
    meta_value = raw.pop(META_KEY)
    metadata = json.loads(meta_value if isinstance(meta_value, str) else str(meta_value))
    return {k: v.asnumpy() for k, v in raw.items()}, metadata


def load_model(path: str | Path):
    """(net in inference mode, metadata) rebuilt from a checkpoint alone."""
    from porting import models

    params, metadata = load(path)
    net = models.build(metadata["arch"], metadata["arch_config"], int(metadata["num_classes"]))
    load_params(net, params, str(path), train_state_ok="train_state" in metadata)
    return net, metadata


def load_params(net, params: dict[str, np.ndarray], origin: str, train_state_ok: bool = False) -> None:
    """Fill every parameter of `net`; with train_state_ok, tensors of the optimizer state are skipped."""
    net_params = dict(net.parameters_and_names())
    problems = [f"missing '{k}'" for k in net_params if k not in params]
    if not train_state_ok:
        problems += [f"unexpected '{k}'" for k in params if k not in net_params]
    problems += [f"'{k}' has shape {list(v.shape)}, model expects {list(net_params[k].shape)}"
                 for k, v in params.items() if k in net_params and tuple(v.shape) != tuple(net_params[k].shape)]
    if problems:
        raise PortingError(f"'{origin}' does not fit the model: " + "; ".join(problems[:10])
                           + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""))
    for name, param in net_params.items():
        param.set_data(ms.Tensor(params[name].astype(np.float32)))

"""MindSpore .ckpt files that carry their own metadata and digests, written whole or not at all.

Besides the tensors, a porting checkpoint holds three strings (MindSpore's `append_dict`):

- `porting_metadata`: the model card as JSON (porting.card: architecture, variant, classes, preprocessing,
  source...);
- `porting_tensor_sha256`: JSON {tensor name: sha256 over its name, dtype, shape and bytes};
- `porting_digest`: sha256 over the two JSON strings.

`load` verifies all of it before anything uses the file, so a flipped byte anywhere (tensor data, a name, a
shape, the metadata) fails in one line naming the tensor or the metadata, instead of giving wrong numbers.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mindspore as ms
import numpy as np

from porting import files, formats
from porting.card import META_KEY, ModelCard
from porting.errors import PortingError, first_line

TABLE_KEY, DIGEST_KEY = "porting_tensor_sha256", "porting_digest"


def tensor_digest(name: str, array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{name}\0{array.dtype.str}\0{list(array.shape)}\0".encode())
    digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _digest(meta_json: str, table_json: str) -> str:
    return hashlib.sha256(f"{meta_json}\0{table_json}".encode()).hexdigest()


def save(params: dict[str, np.ndarray], path: str | Path, card: ModelCard, inputs: tuple = ()) -> None:
    """Write params + card + digests; `inputs` are files the output must not overwrite."""
    params = {k: np.ascontiguousarray(v) for k, v in params.items()}
    meta_json = card.to_json()
    table_json = json.dumps({k: tensor_digest(k, v) for k, v in params.items()}, sort_keys=True)
    with files.atomic_output(path, inputs, what="checkpoint") as staged:
        staged.file = staged.dir / "model.ckpt"  # save_checkpoint appends '.ckpt' to names that lack it
        plist = [{"name": k, "data": ms.Tensor(v)} for k, v in params.items()]
        ms.save_checkpoint(plist, str(staged.file), append_dict={
            META_KEY: meta_json, TABLE_KEY: table_json, DIGEST_KEY: _digest(meta_json, table_json)})


def load(path: str | Path) -> tuple[dict[str, np.ndarray], ModelCard]:
    """(tensors, card), both verified against the digests stored in the file."""
    path = Path(path)
    formats.check_checkpoint(path)  # there, and not a source library's weights or an export
    try:
        raw = ms.load_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001 - MindSpore raises ValueError/RuntimeError/TypeError for bad files
        raise PortingError(f"cannot read '{path}' as a MindSpore checkpoint (corrupt or truncated?): "
                           f"{first_line(exc)}") from None
    meta_json, table_json, digest = (raw.pop(k, None) for k in (META_KEY, TABLE_KEY, DIGEST_KEY))
    if meta_json is None:
        raise PortingError(f"'{path}' has no porting metadata: was it written by `porting port-weights`?")
    if table_json is None or digest is None:
        raise PortingError(f"'{path}' has no integrity digests (written by porting 0.1): port the source "
                           f"weights again with `porting port-weights`")
    meta_json, table_json, digest = (v if isinstance(v, str) else str(v) for v in (meta_json, table_json, digest))
    # MindSpore stores these strings as UCS-4: a flipped byte can make a character no text has (a lone surrogate)
    for key, text in ((META_KEY, meta_json), (TABLE_KEY, table_json), (DIGEST_KEY, digest)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PortingError(f"'{path}' is corrupt: its metadata ({key}) holds a character no text can hold "
                               f"(U+{ord(text[exc.start]):04X} at {exc.start})") from None
    if _digest(meta_json, table_json) != digest:
        raise PortingError(f"'{path}' is corrupt: its metadata does not match the digest stored with it")
    card = ModelCard.from_json(meta_json, path)
    try:
        table = json.loads(table_json)
    except ValueError as exc:
        raise PortingError(f"'{path}': its digest table is not valid JSON ({exc})") from None
    if not isinstance(table, dict):
        raise PortingError(f"'{path}': its digest table is not a JSON object")
    tensors = {}
    for name, value in raw.items():
        if name not in table:
            raise PortingError(f"'{path}' is corrupt: tensor '{name}' is not in its digest table")
        array = value.asnumpy()
        if tensor_digest(name, array) != table[name]:
            raise PortingError(f"'{path}' is corrupt: tensor '{name}' {list(array.shape)} does not match its "
                               f"sha256 digest")
        tensors[name] = array
    missing = [name for name in table if name not in tensors]
    if missing:
        raise PortingError(f"'{path}' is corrupt: tensor '{missing[0]}' is missing"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return tensors, card


def load_model(path: str | Path, into=None):
    """(net in inference mode, card) rebuilt from a checkpoint alone. `into`: a network archs.build already
    made; used instead of building another when the checkpoint's card names that same architecture, variant,
    class count and head (parity builds one while the source model runs)."""
    from porting import archs

    params, card = load(path)
    wanted = (card.arch, card.config, card.num_classes, card.custom_head)
    if into is not None and getattr(into, "built_as", None) == wanted:
        load_params(into, params, str(path), train_state_ok=card.train_state is not None)
        return into, card
    try:
        net = archs.build(card.arch, card.arch_config, card.num_classes, card.custom_head, card.head)
    except (TypeError, ValueError) as exc:
        raise PortingError(f"'{path}': cannot build {card.arch} from its arch_config "
                           f"{card.arch_config}: {first_line(exc)}") from None
    load_params(net, params, str(path), train_state_ok=card.train_state is not None)
    return net, card


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

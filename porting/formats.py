"""What a file given to porting is, by its name and its first bytes: checked before any framework loads, so that a
mistake in the command line (a PNG, or a Keras .h5, given to a timm spec; an ONNX export named .mindir; timm
weights where a porting checkpoint goes) is one line within a second, not a framework's own message after its
import. The libraries' loaders still read the files; this only refuses what none of them could. No framework here.
"""
from __future__ import annotations

from pathlib import Path

from porting.errors import PortingError

# whose weights files each suffix names (which suffixes a spec takes is its source library's record's)
_WRITTEN_BY = {".pth": "PyTorch", ".pt": "PyTorch", ".bin": "PyTorch", ".safetensors": "PyTorch",
               ".weights.h5": "Keras", ".h5": "Keras", ".hdf5": "Keras", ".keras": "Keras",
               ".pdparams": "PaddlePaddle", ".ckpt": "MindSpore"}
# what porting's own files are named: a checkpoint (port-weights, finetune) and each export --format
CHECKPOINT_SUFFIX = ".ckpt"
EXPORT_SUFFIXES = {"onnx": ".onnx", "mindir": ".mindir", "air": ".air"}
PLOT_SUFFIXES = (".png", ".pdf", ".svg")  # parity --plot: matplotlib writes the format its name says

# the contents each suffix holds: torch.save writes a zip archive (or, before torch 1.6, a pickle), paddle.save a
# pickle, Keras 3 a zip (.keras) or HDF5; a MindSpore .ckpt is protobuf, which has no signature
_CONTENTS = {".pth": ("zip", "pickle"), ".pt": ("zip", "pickle"), ".bin": ("zip", "pickle"),
             ".safetensors": ("safetensors",), ".weights.h5": ("hdf5",), ".h5": ("hdf5",), ".hdf5": ("hdf5",),
             ".keras": ("zip",), ".pdparams": ("pickle",),
             ".onnx": ("protobuf",), ".ckpt": ("protobuf",), ".mindir": ("protobuf",)}
_SAID = {"zip": "a zip archive", "pickle": "a pickle", "hdf5": "an HDF5 file", "safetensors": "a safetensors file",
         "protobuf": "a protobuf file"}
_IMAGES = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
           (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".weights.h5" if name.endswith(".weights.h5") else path.suffix.lower()


def _content(path: Path) -> str:
    """'empty', 'zip', 'pickle', 'hdf5', 'safetensors', an image ('a PNG image'...), or 'other' (protobuf, which has
    no signature, or bytes none of these)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(2056)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if any(head[at:at + 8] == b"\x89HDF\r\n\x1a\n" for at in (0, 512, 1024, 2048)):  # after an optional user block
        return "hdf5"
    header = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if 0 < header <= size - 8 and head[8:9] == b"{":  # safetensors: a u64 header length, then the JSON header
        return "safetensors"
    return next((said for magic, said in _IMAGES if head.startswith(magic)), "other")


def check_content(path: Path, what: str) -> None:
    """Refuse a file whose first bytes cannot be what its suffix says (a PNG renamed .pth)."""
    expected = _CONTENTS.get(_suffix(path))
    if not expected:
        return
    found = _content(path)
    if found == "empty":
        raise PortingError(f"{what} '{path}' is empty")
    protobuf = expected == ("protobuf",)  # no signature: only a file that is recognisably something else is refused
    if (found == "other" and protobuf) or found in expected:
        return
    wanted = " or ".join(_SAID[e].split(" ", 1)[1] for e in expected)
    if found == "other":
        raise PortingError(f"{what} '{path}' is not the {wanted} a {_suffix(path)} file is (corrupt, or another format "
                           f"renamed?)")
    raise PortingError(f"{what} '{path}' is {_SAID.get(found, found)}, not the {wanted} a {_suffix(path)} file is")


def check_weights(path: str | Path, suffixes: tuple[str, ...], spec: str, folder_ok: bool = False) -> None:
    """A weights file for `spec`: there, named as its library's files are (`suffixes`; or a folder, `folder_ok`),
    and holding what that name says."""
    path = Path(path)
    if folder_ok and path.is_dir():
        return
    if not path.is_file():
        raise PortingError(f"weights file '{path}' {'is not a file' if path.exists() else 'does not exist'}")
    if not any(path.name.lower().endswith(s) for s in suffixes):
        owner, found = _WRITTEN_BY.get(_suffix(path)), _content(path)
        hint = f": it is {found}" if found.startswith("a ") else f" ({_suffix(path)} is {owner}'s)" if owner else ""
        raise PortingError(f"weights file '{path}' is not one {spec} reads{hint}; {spec} takes "
                           f"{', '.join(suffixes)} files" + (" or a model folder" if folder_ok else ""))
    check_content(path, "weights file")


def check_weights_output(path: str | Path, suffixes: tuple[str, ...], spec: str) -> None:
    """An output in a source library's own format (random-weights): named as that library's files are."""
    path = Path(path)
    if not any(path.name.lower().endswith(s) for s in suffixes):
        raise PortingError(f"output '{path}': {spec} weights are written as {', '.join(suffixes)} files")


def check_checkpoint(path: str | Path, what: str = "checkpoint") -> None:
    """A porting checkpoint given to a command (export, finetune, eval...): not a source library's weights, an
    export, or a file whose first bytes say it is something else."""
    path = Path(path)
    if path.is_dir():
        raise PortingError(f"{what} '{path}' is a folder, not a .ckpt file")
    if not path.is_file():
        raise PortingError(f"{what} '{path}' does not exist")
    suffix = _suffix(path)
    owner = _WRITTEN_BY.get(suffix)
    if owner and suffix != CHECKPOINT_SUFFIX:
        raise PortingError(f"'{path}' holds {owner} weights, not a porting checkpoint: port it first (porting "
                           f"port-weights SOURCE:MODEL --weights {path} -o {path.name.split('.')[0]}.ckpt)")
    if suffix in EXPORT_SUFFIXES.values():
        raise PortingError(f"'{path}' is an exported {suffix[1:].upper()} model; this command reads the .ckpt "
                           f"written by port-weights or finetune")
    check_content(path, what)


def check_named(path: str | Path, suffix: str, writes: str) -> None:
    """An output named with the suffix of what is written into it (`writes`: 'quantize writes an int8 ONNX'):
    eval, predict and every library tell a file's format by its name."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        other = next((f for f, s in EXPORT_SUFFIXES.items() if s == path.suffix.lower()), None)
        raise PortingError(f"output '{path}' is not named {suffix}, but {writes}"
                           + (f" (a {path.suffix} file is --format {other})" if other and suffix != ".ckpt" else "")
                           + f": name it {path.stem if path.suffix.lower() in _CONTENTS else path.name}{suffix}")


def check_named_as(path: str | Path, suffixes: tuple[str, ...], flag: str) -> None:
    """A file whose writer picks the format by its name (matplotlib): one of the names it writes."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise PortingError(f"{flag} '{path}': the file's name says its format; name it {', '.join(suffixes[:-1])} or "
                           f"{suffixes[-1]}")


def check_export_output(path: str | Path, fmt: str) -> None:
    """export --format FMT -o PATH: the name says the format."""
    check_named(path, EXPORT_SUFFIXES[fmt], f"--format {fmt} writes {fmt.upper()}")


def check_checkpoint_output(path: str | Path) -> None:
    check_named(path, CHECKPOINT_SUFFIX, "a MindSpore checkpoint is written there")

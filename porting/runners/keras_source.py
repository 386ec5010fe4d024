"""Keras (TensorFlow backend) side of a source worker. Imports TensorFlow/Keras only.

The model is always `keras.applications.Xception` itself. Its head is built with `classifier_activation=None`
so that the Dense layer gives logits (the default would append a softmax), which is what the ported
MindSpore model computes and what parity compares.

Keras names most Xception layers explicitly (`block1_conv1`, `block2_sepconv1_bn`, `predictions`), but the
four residual Conv2D/BatchNormalization layers and the twelve `add` layers get automatic names (`conv2d_3`,
`add_7`) that depend on what else was built in the process. Here those layers are named by structure instead:
the i-th Add in graph order closes Keras block i+2 and is `block{i+2}_add`; the 1x1 Conv2D feeding it through a
BatchNormalization is `block{n}_residual` and that BN `block{n}_residual_bn`. Tensor names are
`{layer}/{variable}` (Keras 3 paths), e.g. `block1_conv1/kernel`, `block2_residual_bn/moving_mean`.
"""
from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"  # this runner drives keras.applications on TensorFlow only
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

from porting.errors import PortingError, first_line  # noqa: E402
from porting.runners.inputs import make_images  # noqa: E402

warnings.filterwarnings("ignore")

_SIZE = 299  # keras.applications.Xception's default (and, with include_top, required unless input_shape)
_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")


def _keras():
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    if keras.backend.backend() != "tensorflow":  # pragma: no cover - KERAS_BACKEND is forced above
        raise PortingError(f"the keras runner needs the TensorFlow backend, not {keras.backend.backend()}")
    return keras


def _build(keras, num_classes: int, size: int = _SIZE, weights=None):
    # classifier_activation=None: the 'predictions' Dense outputs logits, not softmax probabilities.
    return keras.applications.Xception(weights=weights, classes=num_classes, classifier_activation=None,
                                       input_shape=None if weights == "imagenet" else (size, size, 3))


# ----------------------------------------------------------------------------------------------- names

def structural_names(model) -> dict[int, str]:
    """id(layer) -> a name that does not depend on Keras's automatic naming (see the module docstring)."""
    keras = _keras()
    layers = model.layers
    names = {id(layer): layer.name for layer in layers}
    adds = [layer for layer in layers if isinstance(layer, keras.layers.Add)]
    if len(adds) != 12:
        raise PortingError(f"keras model '{model.name}' has {len(adds)} Add layers; keras.applications.Xception "
                           f"has 12")

    def producer(tensor):
        return tensor._keras_history.operation

    for i, add in enumerate(adds):
        block = i + 2
        names[id(add)] = f"block{block}_add"
        for tensor in add.input:
            bn = producer(tensor)
            if not isinstance(bn, keras.layers.BatchNormalization):
                continue
            conv = producer(bn.input)
            if type(conv) is keras.layers.Conv2D and tuple(conv.kernel_size) == (1, 1):
                names[id(conv)] = f"block{block}_residual"
                names[id(bn)] = f"block{block}_residual_bn"
    residuals = [n for n in names.values() if n.endswith("_residual")]
    if len(residuals) != 4:
        raise PortingError(f"keras model '{model.name}' has {len(residuals)} residual 1x1 convolutions; "
                           f"keras.applications.Xception has 4")
    seen: set[str] = set()
    for name in names.values():
        if name in seen:
            raise PortingError(f"keras model '{model.name}' has two layers named '{name}'")
        seen.add(name)
    return names


def tensors(model) -> dict[str, np.ndarray]:
    names = structural_names(model)
    out = {}
    for layer in model.layers:
        for var in layer.weights:
            out[f"{names[id(layer)]}/{var.name}"] = np.asarray(var.numpy())
    return out


# ----------------------------------------------------------------------------------------------- files

def _check_suffix(path: str) -> None:
    if not path.endswith(_SUFFIXES):
        raise PortingError(f"weights file '{path}': expected a Keras .weights.h5, legacy .h5 (as "
                           f"keras.applications downloads) or whole-model .keras file")


def _classes_in_h5(path: str) -> int:
    """Number of classes of the Dense head stored in a .weights.h5 (Keras 3) or legacy .h5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "layers" in f and "layer_names" not in f.attrs:  # Keras 3 .weights.h5: layers/dense/vars/0
                dense = [k for k in f["layers"] if k == "dense" or k.startswith("dense_")]
                if len(dense) == 1 and "vars" in f["layers"][dense[0]] and "0" in f["layers"][dense[0]]["vars"]:
                    return int(f["layers"][dense[0]]["vars"]["0"].shape[-1])
                return 0
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("layer_names", [])]
            if "predictions" in names and "predictions" in group:
                kernels = []
                group["predictions"].visititems(
                    lambda name, obj: kernels.append(obj.shape) if hasattr(obj, "shape") and len(obj.shape) == 2
                    else None)
                if kernels:
                    return int(kernels[0][-1])
            return 0
    except OSError as exc:
        raise PortingError(f"cannot read '{path}' as a Keras HDF5 weights file: {first_line(exc)}") from None


def _load_file(path: str, num_classes: int | None):
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    _check_suffix(path)
    if path.endswith(".keras"):
        keras = _keras()
        try:
            saved = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad archive; the user needs one line
            raise PortingError(f"cannot load '{path}' as a Keras model: {first_line(exc)}") from None
        try:
            head = saved.get_layer("predictions")
        except ValueError:
            raise PortingError(f"'{path}' is not a keras.applications.Xception with its classifier: it has "
                               f"no 'predictions' layer (include_top=False models cannot be ported)") from None
        classes = num_classes or int(head.units)
        model = _build(keras, classes)
        # Same architecture, so the same weight order: copy into a logits-headed model, checking each shape.
        have, want = saved.get_weights(), model.weights
        problems = [f"{w.path} expects {list(w.shape)}, file has {list(np.shape(v))}"
                    for w, v in zip(want, have) if tuple(w.shape) != tuple(np.shape(v))]
        if len(have) != len(want) or problems:
            raise PortingError(f"'{path}' does not fit keras Xception ({classes} classes): {len(have)} weights "
                               f"for {len(want)}{'; ' + '; '.join(problems[:3]) if problems else ''}")
        model.set_weights(have)
        return model
    classes = num_classes or _classes_in_h5(path)  # h5py only: a broken file fails before TensorFlow loads
    if not classes:
        raise PortingError(f"'{path}' holds no Xception classifier ('predictions' Dense) weights; porting needs "
                           f"the full model (include_top=True)")
    keras = _keras()
    model = _build(keras, classes)
    try:
        # Keras's own loader: saving_lib for .weights.h5, the legacy (order-based) HDF5 reader for .h5.
        model.load_weights(path)
    except Exception as exc:
        raise PortingError(f"cannot load '{path}' into keras Xception ({classes} classes): "
                           f"{first_line(exc)}") from None
    return model


def save_weights(model, path: str) -> None:
    """By suffix: .weights.h5 (model.save_weights), .h5/.hdf5 (Keras's legacy HDF5 weights writer, the layout
    keras.applications downloads; Keras 3's save_weights refuses that suffix), .keras (model.save). `path` is
    in the parent's staging folder (porting.files), which moves it into place only once it is whole."""
    _check_suffix(path)
    if path.endswith(".weights.h5"):
        model.save_weights(path)
    elif path.endswith(".keras"):
        model.save(path)
    else:
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)


# ----------------------------------------------------------------------------------------------- load

def load(job: dict):
    if job["model"] != "xception":
        raise PortingError(f"the keras runner builds keras.applications.Xception, not '{job['model']}'")
    if job.get("save_weights"):  # checked before TensorFlow is imported
        _check_suffix(job["save_weights"])
    info: dict = {}
    num_classes = job.get("num_classes")
    if job.get("weights"):
        model = _load_file(job["weights"], num_classes)  # checks the file before importing TensorFlow
    elif job.get("untrained"):  # Keras's own initialisation: enough for names and shapes
        model = _build(_keras(), num_classes or 1000)
    elif job.get("seed") is not None:
        model = _build(_keras(), num_classes or 1000)
        randomize(model, int(job["seed"]), job["input_size"], job["mean"], job["std"])
    else:
        keras = _keras()
        if num_classes not in (None, 1000):
            raise PortingError("keras's ImageNet Xception weights have 1000 classes; use --num-classes on the "
                               "MindSpore side to re-initialise the head")
        try:
            model = _build(keras, 1000, weights="imagenet")
        except Exception as exc:
            raise PortingError(
                f"could not download keras's ImageNet Xception weights ({type(exc).__name__}); offline? pass "
                f"--weights FILE with a local .h5 / .weights.h5 / .keras file") from None
        info["pretrained_tag"] = "imagenet"
    info.update(num_classes=int(model.get_layer("predictions").units), pretrained_cfg={
        # keras.applications.xception.preprocess_input is mode 'tf': x / 127.5 - 1, i.e. mean = std = 0.5
        "input_size": [3, _SIZE, _SIZE], "mean": [0.5] * 3, "std": [0.5] * 3})
    return model, info


def randomize(model, seed: int, size: int, mean, std) -> None:
    """Seeded synthetic weights for every variable, BN moving statistics included, with live activations.

    He-scaled kernels (depthwise fan-in kh*kw, pointwise fan-in C_in), BN gamma/beta random; the BN moving
    statistics are then measured on an image-like batch (momentum 0 for one training-mode pass, so each BN
    records exactly the batch it sees) and perturbed, as in the timm runner.
    """
    keras = _keras()
    rng = np.random.default_rng(seed)
    touched = set()
    bns = []
    for layer in model.layers:
        for var in layer.weights:
            shape, name = tuple(var.shape), var.name
            if name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                if name == "depthwise_kernel":
                    fan_in = shape[0] * shape[1]
                else:
                    fan_in = int(np.prod(shape[:-1]))
                value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            elif name == "gamma":
                value = rng.uniform(0.5, 1.5, shape)
            elif name in ("beta", "bias"):
                value = rng.normal(0.0, 0.2 if name == "beta" else 0.1, shape)
            elif name in ("moving_mean", "moving_variance"):
                continue  # calibrated below
            else:
                raise PortingError(f"keras layer '{layer.name}' has a variable '{name}' the randomiser does not know")
            var.assign(value.astype(np.float32))
            touched.add(id(var))
        if isinstance(layer, keras.layers.BatchNormalization):
            bns.append(layer)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.0  # moving stats := this batch's stats
    x = np.transpose(make_images(seed, 4, size, mean, std), (0, 2, 3, 1))
    sized = model if model.input_shape[1] == size else _resized(model, size)
    sized(x, training=True)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
        var = bn.moving_variance.numpy()
        var = var * rng.uniform(0.8, 1.25, var.shape)
        bn.moving_variance.assign(var.astype(np.float32))
        bn.moving_mean.assign((bn.moving_mean.numpy() + rng.normal(0.0, 0.1, var.shape) * np.sqrt(var))
                              .astype(np.float32))
        touched.update((id(bn.moving_mean), id(bn.moving_variance)))
    untouched = [v.path for v in model.weights if id(v) not in touched]
    if untouched:
        raise PortingError(f"randomiser left keras variables untouched: {', '.join(untouched[:5])}")


def _resized(model, size: int):
    """The same Xception built for another input size (Keras fixes it when include_top=True), sharing values."""
    keras = _keras()
    classes = int(model.get_layer("predictions").units)
    try:
        other = _build(keras, classes, size)
    except ValueError as exc:
        raise PortingError(f"keras Xception cannot run at {size}x{size}: {first_line(exc)}") from None
    other.set_weights(model.get_weights())
    return other


# ----------------------------------------------------------------------------------------------- forward

def forward(model, x: np.ndarray, taps: list[str]):
    """Logits plus the outputs of the named layers (NCHW like the input), in the order Keras computes them.

    x is NCHW (the porting convention) and goes to Keras as NHWC; tapped 4-D outputs come back as NCHW.
    Taps are read from one functional sub-model `keras.Model(input, [layer.output, ...])`, not hooks.
    """
    keras = _keras()
    if x.ndim != 4 or x.shape[1] != 3:
        raise PortingError(f"keras Xception expects an N x 3 x H x W batch, got {list(x.shape)}")
    if x.shape[2] != x.shape[3]:
        raise PortingError(f"keras Xception runs on square inputs here, got {x.shape[2]}x{x.shape[3]}")
    size = int(x.shape[2])
    run = model if tuple(model.input_shape[1:3]) == (size, size) else _resized(model, size)
    names = structural_names(run)
    by_name = {names[id(layer)]: layer for layer in run.layers}
    missing = [t for t in taps if t not in by_name]
    if missing:
        raise PortingError(f"keras Xception has no layer(s) {', '.join(missing)}")
    wanted = set(taps)
    order = [names[id(layer)] for layer in run.layers if names[id(layer)] in wanted]
    sub = keras.Model(run.input, [by_name[name].output for name in order] + [run.output])
    results = sub(np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))), training=False)
    if not isinstance(results, (list, tuple)):
        results = [results]
    outputs = {}
    for name, value in zip(order + ["logits"], results):
        value = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
        outputs[name] = np.ascontiguousarray(np.transpose(value, (0, 3, 1, 2))) if value.ndim == 4 else value
    return outputs, order


def preprocess(model, images: list[str], size: int, resize: int):
    """keras.applications' own recipe: keras.utils.load_img(target_size) then xception.preprocess_input."""
    keras = _keras()
    arrays = []
    for path in images:
        img = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(size, size)))
        arrays.append(np.transpose(keras.applications.xception.preprocess_input(img), (2, 0, 1)))
    return np.stack(arrays).astype(np.float32), (f"keras.utils.load_img(target_size=({size}, {size}), nearest: the whole "
                                                 f"image squeezed, no crop) -> xception.preprocess_input (x / 127.5 - 1)")

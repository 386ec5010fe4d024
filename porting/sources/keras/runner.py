"""Keras (TensorFlow backend) side of a source worker. Imports TensorFlow/Keras only.

The runner knows Keras; what it knows of one keras.applications model is that model's adapter, a KerasModel
(porting.weight_maps.conventions) its family declares beside the Keras weight map (from_keras.KERAS_MODEL):
its constructor, size, classifier layer, preprocessing and how its layers are named. Models are built with `classifier_activation=None`, so the classifier gives logits (the
default would append a softmax), which is what the ported MindSpore model computes and parity compares.
Tensor names are `{layer}/{variable}` (Keras 3 paths), e.g. `block1_conv1/kernel`.

A user's own model (the backbone nested, flat or in a Sequential, then their head: graph.py reads it from the
file's JSON before Keras loads anything) is loaded with safe_mode=True and run whole for its logits; own.py names
and taps its layers, and builds one from a Head (seeded random weights, export --to keras in the user's shape).
"""
from __future__ import annotations

import contextlib
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"  # this runner drives keras.applications on TensorFlow only
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

from porting.errors import PortingError, first_line  # noqa: E402
from porting.heads import Head  # noqa: E402
from porting.job import PretrainedConfig, SourceJob  # noqa: E402
from porting.sources.base import LOGITS, SourceRunner, Tensor, channel_statistics, library_smoothing  # noqa: E402
from porting.sources.keras import KERAS, own  # noqa: E402
from porting.sources.keras.graph import read_file  # noqa: E402
from porting.threads import cpu_threads  # noqa: E402
from porting.weight_maps.conventions import KerasModel  # noqa: E402

warnings.filterwarnings("ignore")

ROLES = {"gamma": "gamma", "beta": "beta", "moving_mean": "mean", "moving_variance": "var", "bias": "bias"}
DECAYED = ("kernel", "depthwise_kernel", "pointwise_kernel")  # conv / separable / Dense weights: the recipe's L2


def _keras():
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpu_threads())
    except RuntimeError:  # TensorFlow already ran (a second call): its threads are set
        pass
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass
    if keras.backend.backend() != "tensorflow":  # pragma: no cover - KERAS_BACKEND is forced above
        raise PortingError(f"the keras runner needs the TensorFlow backend, not {keras.backend.backend()}")
    return keras


@contextlib.contextmanager
def _dtype(keras, dtype: str):
    """Models built inside have their inputs and variables in `dtype` (Keras's floatx and its global dtype policy,
    which caches floatx's value on first use); both are restored after."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


# ----------------------------------------------------------------------------------------------- adapters

def _adapter(name: str) -> KerasModel:
    """The family's KerasModel for keras:NAME (its from_keras.KERAS_MODEL): how keras.applications builds and names
    it."""
    from porting.archs import SPECS

    specs = [s for s in SPECS if s.source == KERAS.name]
    spec = next((s for s in specs if s.name == name), None)
    if spec is None:
        raise PortingError(f"the keras runner builds {', '.join(f'keras:{s.name}' for s in specs)}, not '{name}'")
    return spec.weight_map_module().KERAS_MODEL




# ----------------------------------------------------------------------------------------------- files

def _load_weights(model, path: str, into: str):
    """Keras's own loader (saving_lib for .weights.h5, the legacy order-based HDF5 reader for .h5), its many
    exception types said in one line."""
    try:
        model.load_weights(path)
    except Exception as exc:
        raise PortingError(f"cannot load '{path}' into {into}: {first_line(exc)}") from None
    return model


def _check_suffix(path: str) -> None:
    if not path.endswith(KERAS.weight_suffixes):
        raise PortingError(f"weights file '{path}': expected a Keras .weights.h5, legacy .h5 (as "
                           f"keras.applications downloads) or whole-model .keras file")


def _classes_in_h5(path: str, head: str) -> int:
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
            if head in names and head in group:
                kernels = []
                group[head].visititems(
                    lambda name, obj: kernels.append(obj.shape) if hasattr(obj, "shape") and len(obj.shape) == 2
                    else None)
                if kernels:
                    return int(kernels[0][-1])
            return 0
    except OSError as exc:
        raise PortingError(f"cannot read '{path}' as a Keras HDF5 weights file: {first_line(exc)}") from None


# ----------------------------------------------------------------------------------------------- the runner

class KerasRunner(SourceRunner):
    library = "keras"
    module_word = "layer"

    def check(self, job: SourceJob) -> None:
        self.model = _adapter(job.model)
        # a user's model the job asks for (export --to keras writes the checkpoint's head back), at the job's size
        self.head = Head.from_dict(job.head, "the job") if job.head else None
        self.size, self.classes = job.input_size, job.num_classes
        self._own: dict[int, own.OwnModel] = {}
        if "keras" in sys.modules:  # a kept worker's earlier job: its models and layer-name counters go
            _keras().backend.clear_session()
        if job.save_weights:  # checked before TensorFlow is imported
            _check_suffix(job.save_weights)

    def build(self, name: str, num_classes: int):
        if self.head is not None:
            head = self.head
            if self.classes and head.num_classes and self.classes != head.num_classes:
                head = head.with_classes(self.classes)
            return self._build_own(head, self.size)
        return self.model.build(_keras(), num_classes)

    # -------------------------------------------------------------------- users' own models (own.py)

    def _own_of(self, model) -> own.OwnModel | None:
        return self._own.get(id(model))

    def _described(self, model, head: Head, where: str):
        self._own[id(model)] = own.describe(_keras(), self.model, model, head, where)
        return model

    def _build_own(self, head: Head, size: int, dtype: str | None = None):
        keras = _keras()
        with _dtype(keras, dtype) if dtype else contextlib.nullcontext():
            model = own.build(keras, self.model, head, size)
        return self._described(model, head, f"the keras model of head {head.describe()}")

    def _load_own(self, path: str, graph):
        """A user's model from its file: its backbone checked against keras.applications' own on the file's JSON,
        then loaded by Keras with safe_mode=True (no code from the file runs)."""
        if self.head is not None and self.head.to_dict() != graph.head.to_dict():
            raise PortingError(f"'{path}' holds the head {graph.head.describe()}, not the one asked for "
                               f"({self.head.describe()})")
        keras = _keras()
        own.check_backbone(keras, self.model, graph, path)
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad archive; the user needs one line
            raise PortingError(f"cannot load '{path}' as a Keras model: {first_line(exc)}") from None
        return self._described(model, graph.head, path)

    def _load_own_weights(self, path: str):
        """A weights-only file written from a user's model (export --to keras .weights.h5 / .h5): read into that
        model, built from the job's head."""
        return _load_weights(self._build_own(self.head, self.size), path,
                             f"the keras model of head {self.head.describe()}")

    def load_file(self, path: str, name: str, num_classes: int | None):
        """Checks the file before importing TensorFlow where it can (h5py reads the head of a .h5)."""
        if not os.path.isfile(path):
            raise PortingError(f"weights file '{path}' does not exist")
        _check_suffix(path)
        m = self.model
        graph = read_file(path, m)  # the file's own graph, as JSON: a user's head is refused or read here
        if graph is not None and graph.head is not None:
            return self._load_own(path, graph)
        if self.head is not None:
            return self._load_own_weights(path)
        if path.endswith(".keras"):
            return self._load_whole_model(path, num_classes)
        classes = num_classes or _classes_in_h5(path, m.head)
        if not classes:
            raise PortingError(f"'{path}' holds no {m.constructor} classifier ('{m.head}' Dense) weights; porting "
                               f"needs the full model (include_top=True)")
        return _load_weights(m.build(_keras(), classes), path, f"keras {m.constructor} ({classes} classes)")

    def _load_whole_model(self, path: str, num_classes: int | None):
        keras, m = _keras(), self.model
        try:
            saved = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises many types for a bad archive; the user needs one line
            raise PortingError(f"cannot load '{path}' as a Keras model: {first_line(exc)}") from None
        try:
            head = saved.get_layer(m.head)
        except ValueError:
            raise PortingError(f"'{path}' is not a keras.applications.{m.constructor} with its classifier: it has "
                               f"no '{m.head}' layer (include_top=False models cannot be ported)") from None
        classes = num_classes or int(head.units)
        model = m.build(keras, classes)
        # Same architecture, so the same weight order: copy into a logits-headed model, checking each shape.
        have, want = saved.get_weights(), model.weights
        problems = [f"{w.path} expects {list(w.shape)}, file has {list(np.shape(v))}"
                    for w, v in zip(want, have) if tuple(w.shape) != tuple(np.shape(v))]
        if len(have) != len(want) or problems:
            raise PortingError(f"'{path}' does not fit keras {m.constructor} ({classes} classes): {len(have)} "
                               f"weights for {len(want)}{'; ' + '; '.join(problems[:3]) if problems else ''}")
        model.set_weights(have)
        return model

    def download(self, job: SourceJob):
        keras, m = _keras(), self.model
        if self.head is not None:
            raise PortingError(f"keras has no pretrained {m.constructor} with the head {self.head.describe()}; pass "
                               f"--weights FILE")
        if job.num_classes not in (None, 1000):
            raise PortingError(f"keras's ImageNet {m.constructor} weights have 1000 classes; use --num-classes on the "
                               f"MindSpore side to re-initialise the head")
        try:
            return m.build(keras, 1000, weights="imagenet"), {"pretrained_tag": "imagenet"}
        except Exception as exc:
            raise PortingError(
                f"could not download keras's ImageNet {m.constructor} weights ({type(exc).__name__}); offline? pass "
                f"--weights FILE with a local .h5 / .weights.h5 / .keras file") from None

    def inference_info(self, model) -> dict:
        m, mine = self.model, self._own_of(model)
        if mine is not None:  # the user's input size; preprocessing stays the backbone's
            return {"num_classes": mine.head.num_classes, "head": mine.head.to_dict(), "pretrained_cfg": PretrainedConfig(
                input_size=mine.size or m.size, mean=[m.mean_std] * 3, std=[m.mean_std] * 3)}
        return {"num_classes": int(model.get_layer(m.head).units), "pretrained_cfg": PretrainedConfig(
            input_size=m.size, mean=[m.mean_std] * 3, std=[m.mean_std] * 3)}

    def _named_layers(self, model) -> list[tuple[str, object]]:
        """(porting's name, layer) of every layer, in the order they compute (a nested backbone's included)."""
        mine = self._own_of(model)
        if mine is not None:
            return [(mine.names[id(layer)], layer) for layer in mine.layers]
        names = self.model.layer_names(_keras(), model)
        return [(names[id(layer)], layer) for layer in model.layers]

    def _named_weights(self, model):
        for name, layer in self._named_layers(model):
            for var in layer.weights:
                yield name, var

    def parameters(self, model) -> list[Tensor]:
        out = []
        for layer, var in self._named_weights(model):
            shape, name = tuple(var.shape), f"{layer}/{var.name}"
            if var.name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                # [kh, kw, in, out] / depthwise [kh, kw, C, 1]: fan_in is kh*kw(*in)
                fan_in = shape[0] * shape[1] if var.name == "depthwise_kernel" else int(np.prod(shape[:-1]))
                out.append(Tensor(name, shape, "weight", fan_in))
            else:
                out.append(Tensor(name, shape, ROLES.get(var.name), module=layer))
        return out

    _sized = None  # (model, size, the model built at that size): forward's, until a value is assigned

    def assign(self, model, values: dict[str, np.ndarray]) -> None:
        self._sized = None
        for layer, var in self._named_weights(model):
            if f"{layer}/{var.name}" in values:
                var.assign(values[f"{layer}/{var.name}"])

    def _at_size(self, model, size: int, dtype: str | None = None):
        """The model, or the same one built for another input size (Keras fixes it with include_top) or dtype,
        with its values (copied: not shared)."""
        keras, dtype = _keras(), dtype or model.input.dtype
        if tuple(model.input_shape[1:3]) == (size, size) and model.input.dtype == dtype:
            return model
        classes = int(model.get_layer(self.model.head).units)
        try:
            with _dtype(keras, dtype):
                other = self.model.build(keras, classes, size)
        except ValueError as exc:
            raise PortingError(f"keras {self.model.constructor} cannot run at {size}x{size}: {first_line(exc)}") from None
        other.set_weights([w.astype(dtype) for w in model.get_weights()])
        return other

    def _outputs(self, model, x: np.ndarray, layers: list[str], tensor: str, training: bool) -> list[np.ndarray]:
        """The named layers' `tensor` ('input' or 'output') and the logits, from one functional sub-model run on
        x (NCHW in; 4-D results back in NCHW)."""
        keras = _keras()
        if x.ndim != 4 or x.shape[1] != 3:
            raise PortingError(f"keras {self.model.constructor} expects an N x 3 x H x W batch, got {list(x.shape)}")
        if x.shape[2] != x.shape[3]:
            raise PortingError(f"keras {self.model.constructor} runs on square inputs here, got "
                               f"{x.shape[2]}x{x.shape[3]}")
        run = self._at_size(model, int(x.shape[2]))
        names = self.model.layer_names(keras, run)
        by_name = {names[id(layer)]: layer for layer in run.layers}
        sub = keras.Model(run.input, [getattr(by_name[name], tensor) for name in layers] + [run.output])
        results = sub(np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))), training=training)
        results = results if isinstance(results, (list, tuple)) else [results]
        arrays = [np.asarray(v.numpy() if hasattr(v, "numpy") else v) for v in results]
        return [np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))) if a.ndim == 4 else a for a in arrays]

    def batch_statistics(self, model, x: np.ndarray, bns: list[str]):
        """Each BN's input in one training-mode pass of a functional sub-model (Keras has no hooks)."""
        mine = self._own_of(model)
        if mine is not None:
            found = own.bn_inputs_in_training(_keras(), mine, self._nhwc(mine, x), bns)
            return {name: channel_statistics(_nchw(np.asarray(found[name])), axis=1) for name in bns}
        *inputs, _ = self._outputs(model, x, bns, "input", training=True)
        return {name: channel_statistics(value) for name, value in zip(bns, inputs)}

    def _nhwc(self, mine: own.OwnModel, x: np.ndarray) -> np.ndarray:
        """A user's model runs at the size it was built for (or any, where its input is free)."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
            raise PortingError(f"keras {self.model.constructor} expects an N x 3 x H x W square batch, got "
                               f"{list(x.shape)}")
        if mine.size and x.shape[2] != mine.size:
            raise PortingError(f"the keras model takes {mine.size}x{mine.size} inputs (the size its file was built "
                               f"at), not {x.shape[2]}x{x.shape[3]}: leave --size out, or give {mine.size}")
        return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))

    def forward(self, model, x: np.ndarray, taps: list[str]):
        """Logits plus the named layers' outputs, in the order Keras computes them, from one sub-model."""
        mine = self._own_of(model)
        if mine is not None:
            return self._forward_own(mine, x, taps)
        names = self.model.layer_names(_keras(), model)
        missing = [t for t in taps if t not in names.values()]
        if missing:
            raise PortingError(f"keras {self.model.constructor} has no layer(s) {', '.join(missing)}")
        wanted = set(taps)
        order = [names[id(layer)] for layer in model.layers if names[id(layer)] in wanted]
        size = int(x.shape[2]) if x.ndim == 4 and x.shape[1] == 3 and x.shape[2] == x.shape[3] else 0
        if self._sized is None or self._sized[0] is not model or self._sized[1] != size:
            # built at the size once, not once per chunk of a parity run (SourceJob.keep_model)
            self._sized = (model, size, self._at_size(model, size) if size else model)
        *values, logits = self._outputs(self._sized[2], x, order, "output", training=False)
        return {**dict(zip(order, values)), LOGITS: logits}, order

    def _forward_own(self, mine: own.OwnModel, x: np.ndarray, taps: list[str]):
        names = [name for name, _ in self._named_layers(mine.model)]
        missing = [t for t in taps if t not in names]
        if missing:
            raise PortingError(f"the keras model has no layer(s) {', '.join(missing)}")
        order = [name for name in names if name in set(taps)]
        found, logits = own.outputs(_keras(), mine, self._nhwc(mine, x), order, "output")
        # a feature extractor without pooling outputs its last feature map: NCHW, as every 4-D tensor porting compares
        return {**{name: _nchw(np.asarray(found[name])) for name in order}, LOGITS: _nchw(np.asarray(logits))}, order

    def tensors(self, model) -> dict[str, np.ndarray]:
        return {f"{layer}/{var.name}": np.asarray(var.numpy()) for layer, var in self._named_weights(model)}

    # -------------------------------------------------------------------- parity --train-step (README)

    def float64(self, model):
        """The same model built with Keras's floatx and dtype policy float64, its float32 values cast (a user's
        model built from its head, each layer as trainable as the user's)."""
        mine = self._own_of(model)
        if mine is None:
            return self._at_size(model, int(model.input_shape[1]), "float64")
        other = self._build_own(mine.head, mine.size or self.model.size, "float64")
        trainable = dict((name, layer.trainable) for name, layer in self._named_layers(model))
        for name, layer in self._named_layers(other):
            layer.trainable = trainable[name]
        self.assign(other, {k: v.astype(np.float64) for k, v in self.tensors(model).items()})
        return other

    def gradients(self, model, x, labels, step):
        """model(x, training=True) under tf.GradientTape (x NCHW -> NHWC in the model's dtype, built at x's size
        if the model is not, the BN statistics copied back): BN on batch statistics, its moving ones updated with
        momentum m (Keras's convention is MindSpore's), Dropout at rate 0; the recipe's smoothing f as Keras's
        eps = f K / (K - 1). counts: N H W of each BN's input (Keras updates with the biased batch variance)."""
        import tensorflow as tf

        keras = _keras()
        mine = self._own_of(model)
        if mine is not None:
            self._nhwc(mine, x)
        run = model if mine is not None else self._at_size(model, int(x.shape[2]))
        counts = {}
        # a user's head keeps its BatchNorms' own momentum, as the MindSpore head is built with it; the backbone's
        # take the recipe's, as the MindSpore architecture's
        head = {layer.name for layer in mine.head.layers} if mine is not None else set()
        for name, layer in self._named_layers(run):
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
            if isinstance(layer, keras.layers.BatchNormalization) and self._updates(run, layer):
                if name not in head:
                    layer.momentum = step.bn_momentum
                counts[f"{name}/{layer.moving_variance.name}"] = x.shape[0] * int(np.prod(layer.input.shape[1:-1]))
        trainable = [(f"{layer}/{var.name}", var) for layer, var in self._named_weights(run) if var.trainable]
        with tf.GradientTape() as tape:
            logits = run(tf.cast(np.transpose(x, (0, 2, 3, 1)), run.inputs[0].dtype), training=True)
            classes = int(logits.shape[-1])
            loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
                tf.one_hot(labels, classes, dtype=logits.dtype), logits, from_logits=True,
                label_smoothing=library_smoothing(step.label_smooth_factor, classes)))
        grads = tape.gradient(loss, [var for _, var in trainable])
        if run is not model:
            model.set_weights(run.get_weights())
        return float(loss), {name: g.numpy() for (name, _), g in zip(trainable, grads)}, counts

    def _updates(self, model, bn) -> bool:
        """Whether a BatchNormalization updates its moving statistics in model(x, training=True): Keras's runs on
        them when frozen (trainable False) and inside a backbone called with training=False. Only these have a
        count (README "Training-step parity": the others stay as they are)."""
        mine = self._own_of(model)
        inference = mine is not None and mine.in_backbone(bn) and mine.head.backbone_bn == "inference"
        return bn.trainable and not inference

    def optimizer_step(self, model, grads, step):
        """keras.optimizers.SGD for the recipe's Momentum (its first step w -= lr g is MindSpore's v = m v + g,
        w -= lr v); L2 added to the gradient of conv / separable / Dense kernels only (not Keras's decoupled
        weight_decay=). RMSProp by hand: Keras's starts its mean square at 0 and adds epsilon outside the root
        (MindSpore's, as TensorFlow 1's: 1 and inside)."""
        import tensorflow as tf

        given = [(var, tf.cast(grads[f"{layer}/{var.name}"], var.dtype)) for layer, var in self._named_weights(model)
                 if f"{layer}/{var.name}" in grads]
        given = [(var, g + step.weight_decay * var if step.decay_bn or var.name in DECAYED else g)
                 for var, g in given]
        if step.optimizer == "momentum":
            _keras().optimizers.SGD(learning_rate=step.lr, momentum=step.momentum).apply_gradients(
                [(g, var) for var, g in given])
            return
        for var, g in given:
            mean_square = step.rmsprop_decay + (1 - step.rmsprop_decay) * g * g  # from 1
            var.assign_sub(step.lr * g / tf.sqrt(mean_square + step.rmsprop_epsilon))  # moment from 0

    def save_weights(self, model, path: str, config: PretrainedConfig) -> None:
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

    def preprocess(self, model, images: list[str], size: int, resize: int):
        """keras.applications' own recipe: keras.utils.load_img(target_size) then the model's preprocess_input."""
        keras = _keras()
        module = getattr(keras.applications, self.model.preprocess_module)
        arrays = []
        for path in images:
            img = keras.utils.img_to_array(keras.utils.load_img(path, target_size=(size, size)))
            arrays.append(np.transpose(module.preprocess_input(img), (2, 0, 1)))
        return np.stack(arrays).astype(np.float32), (
            f"keras.utils.load_img(target_size=({size}, {size}), nearest: the whole image squeezed, no crop) -> "
            f"{self.model.preprocess_module}.preprocess_input (x / 127.5 - 1)")


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))) if a.ndim == 4 else a

"""PaddleClas / PaddlePaddle side of a source worker. Imports paddle and one PaddleClas backbone module only.

Models are built by PaddleClas's own code (`paddleclas.ppcls.arch.backbone...`), weights read with
`paddle.load` and loaded with the layer's own `set_state_dict`. `.pdparams` files come in two namings:
structured keys (`_entry_flow._conv1._conv.weight`, what `paddle.save(model.state_dict())` writes) and the
ParamAttr names older PaddleClas releases used (`entry_flow_conv1_weights`, `bn_entry_flow_conv1_scale`,
`fc_weights`). Both are accepted; the translation comes from the model itself (each parameter carries its
ParamAttr name), never from a hand-written list.

Seeded random weights are saved with structured keys; a file name ending in `.paramattr.pdparams` is
written with the ParamAttr names instead (what the old PaddleClas pretrained files look like).
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import io
import logging
import os
import pickle
import re
import sys
import types
import warnings

import numpy as np

from porting.errors import PortingError, check_fits, first_line
from porting.heads import Head, HeadLayer
from porting.job import PretrainedConfig, SourceJob
from porting.sources.base import SourceRunner, Tensor, library_smoothing
from porting.sources.head_option import check_head, resolved_head
from porting.sources.paddleclas import PADDLECLAS
from porting.threads import cpu_threads

warnings.filterwarnings("ignore")
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("FLAGS_call_stack_level", "0")

import paddle  # noqa: E402

paddle.set_device("cpu")
paddle.base.core.set_num_threads(cpu_threads())
logging.getLogger("paddle").setLevel(logging.ERROR)

PARAMATTR_SUFFIX = ".paramattr.pdparams"

# Packages whose __init__ we do not run: `import paddleclas` pulls the whole PaddleClas application (cv2,
# faiss, sklearn, every backbone, the data pipeline). The backbone modules themselves need only paddle,
# plus ppcls/utils/{save_load,logger,download}.py (requests, tqdm) for their pretrained-download helper.
_STUB_PACKAGES = ("", "ppcls", "ppcls/arch", "ppcls/arch/backbone", "ppcls/arch/backbone/model_zoo",
                  "ppcls/arch/backbone/legendary_models", "ppcls/arch/backbone/variant_models", "ppcls/utils")


def _paddleclas_root() -> str:
    stub = sys.modules.get("paddleclas")
    if stub is not None and getattr(stub, "__path__", None):
        return list(stub.__path__)[0]
    spec = importlib.util.find_spec("paddleclas")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise PortingError("paddleclas is not installed (pip install paddleclas --no-deps)")
    return list(spec.submodule_search_locations)[0]


def _install_stubs(root: str) -> None:
    for sub in _STUB_PACKAGES:
        name = "paddleclas" + ("." + sub.replace("/", ".") if sub else "")
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, sub)]
        module.__package__ = name
        sys.modules[name] = module


def _backbone_modules(root: str) -> dict[str, str]:
    """Model name -> backbone module, read from PaddleClas's own backbone/__init__.py imports."""
    with open(os.path.join(root, "ppcls", "arch", "backbone", "__init__.py")) as f:
        text = f.read()
    table: dict[str, str] = {}
    for module, names in re.findall(r"^from \.([\w.]+) import ([^\n]+)$", text, flags=re.M):
        for name in names.replace("(", "").replace(")", "").split(","):
            name = name.strip().split(" as ")[0].strip()
            if name and name != "*":
                table.setdefault(name, "paddleclas.ppcls.arch.backbone." + module)
    return table


def model_factory(name: str):
    """PaddleClas's own constructor for `name` (e.g. Xception41, InceptionV4, SE_ResNeXt50_vd_32x4d)."""
    root = _paddleclas_root()
    table = _backbone_modules(root)
    if name not in table:
        close = [n for n in table if n.lower() == name.lower()]
        hint = f"; did you mean {close[0]}?" if close else ""
        raise PortingError(f"PaddleClas has no backbone named '{name}'{hint}")
    _install_stubs(root)
    module = importlib.import_module(table[name])
    return getattr(module, name)


def download_pretrained(name: str) -> str:
    """The .pdparams PaddleClas's `pretrained=True` would load, fetched by PaddleClas's own downloader."""
    module = sys.modules[model_factory(name).__module__]
    url = getattr(module, "MODEL_URLS", {}).get(name)
    if not url:
        raise PortingError(f"PaddleClas lists no pretrained weights for {name}; pass --weights FILE.pdparams")
    from paddleclas.ppcls.utils import logger
    from paddleclas.ppcls.utils.download import get_weights_path_from_url

    logger.init_logger(log_level=logging.WARNING)  # ppcls's logger is None until its engine sets it up
    try:
        return get_weights_path_from_url(url)
    except Exception as exc:
        raise PortingError(f"could not download PaddleClas's pretrained {name} weights ({type(exc).__name__}); "
                           f"offline? pass --weights FILE with a local .pdparams ({url})") from None


def _build(name: str, num_classes: int):
    factory = model_factory(name)
    # fresh unique-name counters: auto-generated parameter names (linear_0.w_0 ...) do not depend on how
    # many models this process built before
    with paddle.utils.unique_name.guard():
        model = factory(class_num=num_classes)
    model.eval()
    return model


def _head_key(model) -> str:
    """Structured key of the classifier weight: the last Linear layer."""
    linears = [n for n, layer in model.named_sublayers() if isinstance(layer, paddle.nn.Linear)]
    if not linears:
        raise PortingError(f"{type(model).__name__} has no Linear classifier")
    return linears[-1] + ".weight"


ACTIVATIONS = {"relu": lambda alpha: paddle.nn.ReLU(), "relu6": lambda alpha: paddle.nn.ReLU6(),
               "gelu": lambda alpha: paddle.nn.GELU(), "silu": lambda alpha: paddle.nn.Silu(),
               "sigmoid": lambda alpha: paddle.nn.Sigmoid(), "tanh": lambda alpha: paddle.nn.Tanh(),
               "softmax": lambda alpha: paddle.nn.Softmax(axis=-1), "leaky_relu": paddle.nn.LeakyReLU,
               "elu": paddle.nn.ELU}


def _layer(layer: HeadLayer, width: int):
    """A head layer as Paddle's own layer, as a user writes it in a paddle.nn.Sequential."""
    if layer.kind == "dense":
        return paddle.nn.Linear(width, layer.units, bias_attr=None if layer.bias else False)
    if layer.kind == "batchnorm":  # Paddle's momentum is MindSpore's (it weighs the moving value)
        return paddle.nn.BatchNorm1D(width, momentum=layer.momentum, epsilon=layer.eps)
    if layer.kind == "dropout":  # Paddle's default mode, upscale_in_train: the identity at inference
        return paddle.nn.Dropout(layer.rate)
    return ACTIVATIONS[layer.activation](layer.alpha)


def _with_head(model, classifier: str, head: Head) -> None:
    """`model` with `head` at its classifier's place, as a user puts one: a paddle.nn.Sequential, or
    paddle.nn.Identity() for none. Its parameters get names of their own (ParamAttr 'head_linear_0.w_0'...)."""
    *path, last = classifier.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    with paddle.utils.unique_name.guard("head_"):
        layers = [_layer(layer, width) for layer, width in zip(head.layers, head.widths())]
    setattr(parent, last, paddle.nn.Sequential(*layers) if layers else paddle.nn.Identity())


def param_names(model) -> dict[str, str]:
    """Structured key -> ParamAttr name, for every tensor of the state dict."""
    return {key: value.name for key, value in model.state_dict().items()}


# --- reading .pdparams ------------------------------------------------------------------------------------

_SAFE_GLOBALS = {
    ("collections", "OrderedDict"), ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "slice"),
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _CheckingUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a .pdparams holds only arrays)")
        return super().find_class(module, name)


def _check_pickle(path: str) -> None:
    """paddle.load unpickles blindly; first make sure the file holds nothing but arrays and dicts."""
    with open(path, "rb") as f:
        _CheckingUnpickler(io.BufferedReader(f), encoding="latin1").load()


def read_pdparams(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise PortingError(f"weights file '{path}' does not exist")
    if not path.endswith(PADDLECLAS.weight_suffixes):
        raise PortingError(f"weights file '{path}': expected a .pdparams file for PaddleClas")
    try:
        _check_pickle(path)
        state = paddle.load(path, return_numpy=True)  # the library's own reader
    except Exception as exc:
        raise PortingError(f"cannot read '{path}' as PaddleClas weights: {first_line(exc)}") from None
    if not isinstance(state, dict) or not state:
        raise PortingError(f"'{path}' is not a PaddleClas state dict (got {type(state).__name__})")
    out = {}
    for key, value in state.items():
        if not isinstance(value, np.ndarray):
            raise PortingError(f"'{path}': entry '{key}' is a {type(value).__name__}, not a tensor")
        out[str(key)] = value
    return out


def to_structured(state: dict[str, np.ndarray], names: dict[str, str], path: str, model_name: str):
    """Accept structured keys or ParamAttr names; return structured keys (whichever naming fits better)."""
    by_param = {v: k for k, v in names.items()}
    structured = sum(1 for k in state if k in names)
    named = sum(1 for k in state if k in by_param and k not in names)
    if named > structured:
        if len(by_param) != len(names):
            raise PortingError(f"'{path}' uses parameter names, but PaddleClas {model_name}'s parameter names "
                               f"are not unique; re-save it with structured keys")
        state = {by_param.get(k, k): v for k, v in state.items()}
    return state


# --- the runner ---------------------------------------------------------------------------------------------

_BN_TYPES = (paddle.nn.BatchNorm, paddle.nn.layer.norm._BatchNormBase)
BN_ROLES = {"weight": "gamma", "bias": "beta", "_mean": "mean", "_variance": "var"}


class PaddleRunner(SourceRunner):
    library = "PaddleClas"
    module_word = "sublayer"
    asked: dict | None = None  # the job's head (Head.to_dict), when the model's is not PaddleClas's standard one ...
    head: Head | None = None  # ... over the backbone's width, once a model is built
    classifier = ""  # the classifier's sublayer path ('out', '_exit_flow._out'), once a model is built

    def check(self, job: SourceJob) -> None:
        self.asked = job.head
        pooling = (job.head or {}).get("pooling", "avg")
        if pooling != "avg":
            raise PortingError(f"PaddleClas {job.model} pools its features by global average (AdaptiveAvgPool2D); "
                               f"a head after '{pooling}' pooling is not one its models hold")

    def build(self, name: str, num_classes: int):
        model = _build(name, num_classes if self.asked is None else 1000)
        self.classifier = _head_key(model).removesuffix(".weight")  # the standard model's last Linear
        if self.asked is not None:
            features = int(model.state_dict()[f"{self.classifier}.weight"].shape[0])  # Linear: [in, out]
            self.head = resolved_head(self.asked, features, f"PaddleClas {name}")
            _with_head(model, self.classifier, self.head)
            model.eval()
        return model

    def load_file(self, path: str, name: str, num_classes: int | None):
        state = read_pdparams(path)
        probe = self.build(name, 1000)
        state = to_structured(state, param_names(probe), path, name)
        have = {k: tuple(v.shape) for k, v in state.items()}
        model = probe
        if self.head is None:
            weight = have.get(f"{self.classifier}.weight", ())
            num_classes = num_classes or (weight[-1] if len(weight) == 2 else 1000)
            model = probe if num_classes == 1000 else _build(name, num_classes)
        # a head other than the one built is one line saying what the file holds there
        check_head(path, f"PaddleClas {name}", have, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                   self.classifier, self.head, dense_in_out=True, bn_stat="_variance")
        missing, unexpected = model.set_state_dict(state)
        if missing or unexpected:
            raise PortingError(f"'{path}': paddle set_state_dict left {len(missing)} missing, "
                               f"{len(unexpected)} unexpected tensors for PaddleClas {name}")
        return model

    def download(self, job: SourceJob):
        """PaddleClas's own pretrained download, then the same strict loading as for --weights."""
        path = download_pretrained(job.model)
        return self.load_file(path, job.model, job.num_classes), {"pretrained_tag": os.path.basename(path)}

    def inference_info(self, model) -> dict:
        model.eval()
        if self.head is not None:
            return {"num_classes": self.head.num_classes, "head": self.head.to_dict()}
        return {"num_classes": int(model.state_dict()[_head_key(model)].shape[-1])}

    def parameters(self, model) -> list[Tensor]:
        out = []
        for path, layer in model.named_sublayers():
            if isinstance(layer, _BN_TYPES):
                out += [Tensor(f"{path}.{n}", tuple(getattr(layer, n).shape), role, module=path)
                        for n, role in BN_ROLES.items()]
            elif isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear)):
                shape = tuple(layer.weight.shape)
                # Conv2D [out, in/groups, kh, kw]: fan_in is the rest; Linear [in, out]: fan_in is dim 0
                fan_in = shape[0] if isinstance(layer, paddle.nn.Linear) else int(np.prod(shape[1:]))
                out.append(Tensor(f"{path}.weight", shape, "weight", fan_in))
                if getattr(layer, "bias", None) is not None:
                    out.append(Tensor(f"{path}.bias", tuple(layer.bias.shape), "bias"))
        known = {t.name for t in out}
        return out + [Tensor(n, tuple(v.shape), None) for n, v in model.state_dict().items() if n not in known]

    def assign(self, model, values: dict[str, np.ndarray]) -> None:
        state = model.state_dict()
        for name, value in values.items():
            state[name].set_value(value.reshape(state[name].shape))

    def modules(self, model) -> dict:
        return dict(model.named_sublayers())

    def on_output(self, module, fn):
        return module.register_forward_post_hook(lambda _layer, _inputs, output: fn(np.array(output.numpy(), copy=True)))

    def on_input(self, module, fn):
        return module.register_forward_pre_hook(lambda _layer, inputs: fn(np.array(inputs[0].numpy(), copy=True)))

    def run(self, model, x: np.ndarray, training: bool = False) -> np.ndarray:
        if training:
            paddle.seed(0)  # any dropout in the pass draws the same masks every run
        model.train() if training else model.eval()
        try:
            with paddle.no_grad():
                return np.array(model(paddle.to_tensor(x)).numpy(), copy=True)
        finally:
            model.eval()

    def tensors(self, model) -> dict[str, np.ndarray]:
        return {k: np.array(v.numpy(), copy=True) for k, v in model.state_dict().items()}

    # -------------------------------------------------------------------- parity --train-step (README)

    def float64(self, model):
        """A deep copy with every parameter and BN statistic cast to float64 (the BN statistics are parameters)."""
        double = copy.deepcopy(model)
        double.to(dtype="float64")
        return double

    def gradients(self, model, x, labels, step):
        """Forward in train mode (every Dropout in eval mode: PaddleClas's downscale_in_infer scales by 1 - p there,
        which the port folds into the head), BN on batch statistics with the step's momentum (Paddle's convention
        is MindSpore's), the recipe's label-smoothed cross entropy, paddle autograd."""
        import paddle.nn.functional as F

        model.train()
        bns, counts = {}, {}
        for path, layer in model.named_sublayers():
            if isinstance(layer, paddle.nn.Dropout):
                layer.eval()
            if isinstance(layer, _BN_TYPES):
                layer._momentum = step.bn_momentum  # forward passes it to the op on every call
                bns[f"{path}._variance"] = layer
        handles = [layer.register_forward_pre_hook(
            lambda _layer, inputs, key=key: counts.__setitem__(key, int(inputs[0].size) // inputs[0].shape[1]))
            for key, layer in bns.items()]
        model.clear_gradients()
        try:
            logits = model(paddle.to_tensor(x).astype(model.parameters()[0].dtype))
        finally:
            for handle in handles:
                handle.remove()
        classes = logits.shape[-1]
        loss = F.cross_entropy(logits, paddle.to_tensor(labels),
                               label_smoothing=library_smoothing(step.label_smooth_factor, classes))
        loss.backward()
        grads = {n: np.array(p.grad.numpy(), copy=True) for n, p in model.named_parameters() if not p.stop_gradient}
        model.eval()
        return float(loss), grads, counts

    def optimizer_step(self, model, grads, step):
        """paddle.optimizer.Momentum for the recipe's Momentum (its first step w -= lr g, as MindSpore's); the L2
        decay added to the gradient of Conv2D / Linear weights here, with any ParamAttr regularizer (PaddleClas
        sets L2Decay(0.0) on some BNs) cleared so that nothing else decays. RMSProp by hand in paddle ops:
        MindSpore's starts its mean square at 1 and adds epsilon inside the root, as no Paddle optimizer does."""
        decayed = {f"{path}.weight" for path, layer in model.named_sublayers()
                   if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Linear))}
        params = {n: p for n, p in model.named_parameters() if n in grads}
        with paddle.no_grad():
            for n, p in params.items():
                g = paddle.to_tensor(grads[n]).astype(p.dtype)
                p.grad = g + step.weight_decay * p if step.decay_bn or n in decayed else g
                p.regularizer = None
            if step.optimizer == "momentum":
                paddle.optimizer.Momentum(learning_rate=step.lr, momentum=step.momentum,
                                          parameters=list(params.values())).step()
            else:
                for p in params.values():
                    mean_square = step.rmsprop_decay + (1 - step.rmsprop_decay) * p.grad * p.grad  # from 1
                    p.set_value(p - step.lr * p.grad / paddle.sqrt(mean_square + step.rmsprop_epsilon))  # moment from 0

    def save_weights(self, model, path: str, config: PretrainedConfig) -> None:
        if not path.endswith(".pdparams"):
            raise PortingError(f"'{path}': PaddleClas weights are saved as .pdparams")
        state = model.state_dict()
        if path.endswith(PARAMATTR_SUFFIX):  # keyed by ParamAttr names, like the old PaddleClas releases
            names = param_names(model)
            if len(set(names.values())) != len(names):
                raise PortingError(f"{type(model).__name__}'s parameter names are not unique; save structured keys")
            # plain arrays: no StructuredToParameterName@@ table, as in the files of the fluid era
            state = {names[k]: np.array(v.numpy(), copy=True) for k, v in state.items()}
        paddle.save(state, path)

    def preprocess(self, model, images: list[str], size: int, resize: int):
        """PaddleClas's deploy pipeline (deploy/python/preprocess.py, as in deploy/configs/inference_cls.yaml):
        cv2 decode -> ResizeImage(resize_short) -> CropImage -> NormalizeImage(ImageNet mean/std) -> ToCHWImage."""
        root = _paddleclas_root()
        _install_stubs(root)
        for sub in ("deploy", "deploy/python"):
            name = "paddleclas." + sub.replace("/", ".")
            if name not in sys.modules:
                module = types.ModuleType(name)
                module.__path__ = [os.path.join(root, sub)]
                sys.modules[name] = module
        try:
            ops = importlib.import_module("paddleclas.deploy.python.preprocess")
        except ImportError as exc:
            raise PortingError(f"PaddleClas's preprocessing needs {exc.name or exc} (pip install "
                               f"opencv-python-headless six)") from None
        pipeline = [ops.DecodeImage(to_rgb=True, channel_first=False), ops.ResizeImage(resize_short=resize),
                    ops.CropImage(size=size), ops.NormalizeImage(scale=1.0 / 255.0, mean=[0.485, 0.456, 0.406],
                                                                 std=[0.229, 0.224, 0.225], order=""),
                    ops.ToCHWImage()]
        arrays = []
        for path in images:
            with open(path, "rb") as f:
                data = f.read()
            for op in pipeline:
                data = op(data)
            arrays.append(data)
        return np.stack(arrays).astype(np.float32), (f"PaddleClas deploy: DecodeImage -> ResizeImage(resize_short="
                                                     f"{resize}, cv2) -> CropImage({size}) -> NormalizeImage -> ToCHWImage")

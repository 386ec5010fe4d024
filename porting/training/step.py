"""One training step as `finetune` builds it: the recipe's loss, its optimizer and the step cell around them.

`finetune` trains with this cell and `parity --train-step` compares one call of it with the source library's own
training step (porting.training.step_parity), so what is proven is what trains.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from porting.archs.recipe import Recipe

BN_MOMENTUM = 0.9  # MindSpore's convention: moving = 0.9 x moving + 0.1 x batch (PyTorch's momentum=0.1)


class CrossEntropySmooth(nn.Cell):
    """Softmax cross entropy with label smoothing, as in the model zoo's loss.py: the true class gets
    1 - factor, every other class factor / (classes - 1)."""

    def __init__(self, num_classes: int, smooth_factor: float = 0.0):
        super().__init__()
        self.onehot = ops.OneHot()
        self.on_value = ms.Tensor(1.0 - smooth_factor, ms.float32)
        self.off_value = ms.Tensor(smooth_factor / max(1, num_classes - 1), ms.float32)
        self.num_classes = num_classes
        self.ce = nn.SoftmaxCrossEntropyWithLogits(sparse=False, reduction="mean")

    def construct(self, logits, label):
        target = self.onehot(label, self.num_classes, self.on_value, self.off_value)
        return self.ce(logits, target)


def decays(name: str) -> bool:
    """Weight decay on conv / dense weights only, as the model zoo does (not on BN gamma / beta or biases)."""
    return name.endswith(".weight")


def param_groups(net, weight_decay: float):
    decay = [p for p in net.trainable_params() if decays(p.name)]
    no_decay = [p for p in net.trainable_params() if not decays(p.name)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0},
            {"order_params": net.trainable_params()}]


def optimizer(net, recipe: Recipe, lr):
    """The recipe's optimizer; `lr` a number or one learning rate per step. The fixed loss scale divides the
    gradients here (MindSpore scales the weight decay up by it first, so the decay means what the recipe says)."""
    groups = param_groups(net, recipe.weight_decay)
    if recipe.optimizer == "momentum":
        return nn.Momentum(groups, lr, recipe.momentum, loss_scale=recipe.loss_scale)
    rmsprop = RMSPropAsDocumented if ms.get_context("device_target") == "CPU" else nn.RMSProp
    return rmsprop(groups, lr, decay=recipe.rmsprop_decay, momentum=recipe.momentum,
                   epsilon=recipe.rmsprop_epsilon, loss_scale=recipe.loss_scale)


_rmsprop_step = ops.MultitypeFuncGraph("rmsprop_as_documented")


@_rmsprop_step.register("Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _rmsprop_update(decay, epsilon, momentum, lr, weight, mean_square, moment, grad):
    lr = ops.cast(lr, grad.dtype)
    new_square = decay * mean_square + (1.0 - decay) * grad * grad
    new_moment = momentum * moment + lr * grad / ops.sqrt(new_square + epsilon)
    done = ops.depend(True, ops.assign(mean_square, new_square))
    done = ops.depend(done, ops.assign(moment, new_moment))
    return ops.depend(done, ops.assign_sub(weight, new_moment))


class RMSPropAsDocumented(nn.RMSProp):
    """nn.RMSProp computing what MindSpore documents (and the model zoo's recipe means): ms = d ms + (1 - d) g^2,
    mom = m mom + lr g / sqrt(ms + eps), w -= mom. MindSpore 2.10's CPU ApplyRMSProp kernel computes
    lr g / (sqrt(ms) + eps) on every full block of 8 elements and the documented form on the rest (measured with a
    bare nn.RMSProp; with the recipe's eps = 1 it moves InceptionV4's first updates by up to 30%), so on CPU the
    update is written out in plain ops. Same parameters (mean_square, moment), so checkpoints and --resume are
    unchanged."""

    def construct(self, gradients):
        gradients = self.scale_grad(self.gradients_centralization(self.decay_weight(gradients)))
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        if self.is_group_lr:
            return self.hyper_map_reverse(ops.partial(_rmsprop_step, self.decay, self.epsilon, self.momentum), lr,
                                          self._parameters, self.ms, self.moment, gradients)
        return self.hyper_map_reverse(ops.partial(_rmsprop_step, self.decay, self.epsilon, self.momentum, lr),
                                      self._parameters, self.ms, self.moment, gradients)


def bn_cells(net) -> list:
    return [cell for _, cell in net.cells_and_names() if isinstance(cell, (nn.BatchNorm2d, nn.BatchNorm1d))]


def set_bn_momentum(net, momentum: float) -> None:
    """Every BatchNorm of `net` updates its moving statistics with `momentum` (MindSpore's convention). The
    momentum is baked into the training op when a BN cell is built, so the op is built again."""
    for cell in bn_cells(net):
        cell.momentum = 1.0 - momentum
        cell.bn_train = ops.BatchNorm(is_training=True, epsilon=cell.eps, momentum=cell.momentum,
                                      data_format=cell.format)


def bn_settings(net) -> tuple[list[float], list[float]]:
    """(the distinct BN momenta, in MindSpore's convention, the distinct BN epsilons) the network trains with."""
    cells = bn_cells(net)
    return sorted({round(1.0 - float(c.momentum), 6) for c in cells}), sorted({float(c.eps) for c in cells})


def train_step(net, recipe: Recipe, num_classes: int, lr, return_grad: bool = False):
    """(network, step cell): one call runs forward in train mode, the loss x loss scale, backward, and one step
    of the recipe's optimizer. With `return_grad` it also returns the gradients (x loss scale) by name."""
    opt = optimizer(net, recipe, lr)
    if recipe.amp_level != "O0":
        net = ms.amp.auto_mixed_precision(net, recipe.amp_level)
    loss_fn = CrossEntropySmooth(num_classes, recipe.label_smooth_factor)
    # Fixed loss scale without overflow skipping, as the model zoo: loss x scale, gradients / scale in the optimizer.
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt, sens=float(recipe.loss_scale),
                               return_grad=return_grad)
    cell.set_train(True)
    return net, cell


def hold_backbone(net, classifier: str, bn_inference: bool, frozen: bool) -> tuple[int, int]:
    """What a source did to the backbone of a model with its own head, kept in training: with `bn_inference` every
    BatchNorm outside the head's `classifier` cell normalises with its moving statistics and leaves them as they
    are (Keras's base(x, training=False)); `frozen` takes the backbone's parameters out of training (Keras's
    base.trainable = False). Returns (BatchNorms held, parameters frozen)."""
    inside = f"{classifier}."
    held = 0
    if bn_inference:
        for name, cell in net.cells_and_names():
            if isinstance(cell, (nn.BatchNorm2d, nn.BatchNorm1d)) and not name.startswith(inside):
                cell.use_batch_statistics = False
                held += 1
    frozen_count = 0
    if frozen:
        for name, param in net.parameters_and_names():
            if not name.startswith(inside) and param.requires_grad:
                param.requires_grad = False
                frozen_count += 1
    return held, frozen_count


def without_dropout(net) -> int:
    """Every dropout of `net` the identity in training too (a step compared with the source's, which runs its own
    without); returns how many."""
    from porting.archs.layers import HeadDropout

    count = 0
    for _, cell in net.cells_and_names():
        if isinstance(cell, HeadDropout):
            cell.p, count = 0.0, count + 1
    return count

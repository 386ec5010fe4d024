"""The weight-map engine's strictness, with no framework involved."""
import numpy as np
import pytest

from porting.errors import PortingError
from porting.weight_maps import HWIO_TO_OIHW, WeightMap


def small_map() -> WeightMap:
    wm = WeightMap("test", ignore=["*.num_batches_tracked"])
    wm.add("conv.kernel", "conv.weight", HWIO_TO_OIHW)
    wm.add("bn.weight", "bn.gamma")
    return wm


def test_transform_and_ignore():
    src = {"conv.kernel": np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32),
           "bn.weight": np.ones(5, np.float32), "bn.num_batches_tracked": np.array(3)}
    out = small_map().apply(src, {"conv.weight": (5, 4, 3, 3), "bn.gamma": (5,)})
    np.testing.assert_array_equal(out["conv.weight"][2, 1], src["conv.kernel"][:, :, 1, 2])


def test_every_problem_is_listed_at_once():
    src = {"conv.kernel": np.zeros((3, 3, 4, 6), np.float32), "extra.tensor": np.zeros(2, np.float32)}
    with pytest.raises(PortingError) as exc:
        small_map().apply(src, {"conv.weight": (5, 4, 3, 3), "bn.gamma": (5,), "head.weight": (2, 2)})
    msg = str(exc.value)
    assert "\n" not in msg
    assert "'bn.weight' missing" in msg
    assert "'conv.kernel' [3, 3, 4, 6]" in msg and "'conv.weight' [5, 4, 3, 3]" in msg
    assert "'extra.tensor' [2] is not mapped" in msg
    assert "'head.weight' [2, 2] is not filled" in msg


def test_a_target_filled_twice_is_an_error():
    wm = WeightMap("dup")
    wm.add("a", "x")
    wm.add("b", "x")
    with pytest.raises(PortingError, match="'x' filled twice"):
        wm.apply({"a": np.zeros(1), "b": np.zeros(1)}, {"x": (1,)})

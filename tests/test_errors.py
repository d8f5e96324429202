"""Bad input gets a ValueError naming the layer or key and both shapes."""
import numpy as np
import pytest

import minitl
import minitl.nn.functional as F
from minitl import nn
from minitl.core.gradcheck import GradcheckError, gradcheck
from minitl.models import LeNet


def test_conv2d_wrong_channel_count():
    conv = nn.Conv2d(3, 6, 5)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 6.*3 input channels.*\(6, 3, 5, 5\).*\(2, 1, 28, 28\)"):
        conv(minitl.tensor(np.zeros((2, 1, 28, 28), np.float32)))


def test_linear_wrong_in_features():
    with pytest.raises(ValueError, match=r"Linear\(400, 120\).*400 features.*\(120, 400\).*\(2, 300\)"):
        nn.Linear(400, 120)(minitl.tensor(np.zeros((2, 300), np.float32)))


def test_cross_entropy_class_out_of_range():
    logits = minitl.tensor(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="class index 10 is out of range for 10 classes"):
        F.cross_entropy(logits, [3, 10])
    with pytest.raises(ValueError, match="class index -1"):
        F.cross_entropy(logits, [-1, 0])
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        F.cross_entropy(logits, [1, 2, 3])


def test_load_state_dict_wrong_shape_names_key_and_shapes():
    sd = dict(LeNet().state_dict())
    sd["features.3.weight"] = np.zeros((16, 6, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"features\.3\.weight.*\(16, 6, 5, 5\).*\(16, 6, 3, 3\)"):
        LeNet().load_state_dict(sd)


def test_lenet_wrong_input_size():
    with pytest.raises(ValueError, match=r"LeNet expects input \(N, 1, 28, 28\), got shape \(2, 1, 32, 32\)"):
        LeNet()(minitl.tensor(np.zeros((2, 1, 32, 32), np.float32)))


def test_other_shape_errors():
    x = minitl.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"cannot reshape.*\(2, 3\).*\(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match="do not align"):
        x @ x
    with pytest.raises(ValueError, match="window"):
        F.max_pool2d(minitl.tensor(np.zeros((1, 1, 2, 2))), 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        F.linear(x, minitl.tensor(np.zeros((4, 3), np.float32)), activation="gelu")


def test_gradcheck_reports_input_and_worst_element():
    from minitl.core.function import Function

    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved
            return g * a  # should be 2a

    x = minitl.tensor(np.array([1.0, 5.0, 2.0]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3,\)\).*worst element \(.*1.*\).*analytical 5 vs numerical 10"):
        gradcheck(WrongSquare.apply, [x])
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(WrongSquare.apply, [x], mode="direction")
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda t: t * 2, [minitl.tensor([1.0], requires_grad=True)])

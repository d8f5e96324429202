"""Linear CKA: its invariances and known values, per-layer activations, and the grid's probe records."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minitl
from minitl.data import ArrayDataset, DataLoader
from minitl.models import LeNet, build_model
from minitl.transfer import cka, layer_activations, linear_cka
from minitl.transfer.cka import format_cka


@st.composite
def representation(draw):
    """A random (n, p) representation with n > p (so it is not degenerate) and an orthogonal p x p matrix."""
    n = draw(st.integers(4, 12))
    p = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    q, r = np.linalg.qr(rng.normal(size=(p, p)))
    return x, q * np.sign(np.diag(r)), rng


@given(representation())
def test_cka_of_a_representation_with_itself_is_one(drawn):
    x, _, _ = drawn
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@given(representation(), st.floats(1e-3, 1e3))
def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(drawn, scale):
    x, q, rng = drawn
    y = rng.normal(size=(len(x), 3))
    reference = linear_cka(x, y)
    assert linear_cka(scale * x @ q, y) == pytest.approx(reference, rel=1e-9, abs=1e-12)
    assert linear_cka(x, scale * y) == pytest.approx(reference, rel=1e-9, abs=1e-12)
    # ... and to a constant offset (the columns are centred first).
    assert linear_cka(x + 5.0, y) == pytest.approx(reference, rel=1e-9, abs=1e-12)


@given(representation())
def test_cka_is_not_invariant_to_anisotropic_scaling(drawn):
    x, _, _ = drawn
    if x.shape[1] < 2:
        return
    stretched = x * np.r_[10.0, np.ones(x.shape[1] - 1)]
    assert linear_cka(x, stretched) < 1 - 1e-6


def test_cka_hand_computed_values():
    # One feature: CKA is the squared correlation. x = (0, 1, 2), y = (0, 1, 4):
    # centred x = (-1, 0, 1), y = (-5/3, -2/3, 7/3); x.y = 4, |x|^2 = 2, |y|^2 = 26/3, so 16 / (2 * 26/3) = 12/13.
    assert linear_cka([[0], [1], [2]], [[0], [1], [4]]) == pytest.approx(12 / 13, rel=1e-12)
    # Two features, Y = X diag(1, 2) with X^T X = 2I: ||Y^T X||^2 = 20, ||X^T X|| = sqrt(8), ||Y^T Y|| = sqrt(68).
    x = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    assert linear_cka(x, x * [1, 2]) == pytest.approx(20 / math.sqrt(8 * 68), rel=1e-12)
    # Different widths are fine: a representation and its duplicated columns are the same.
    assert linear_cka(x, np.hstack([x, x])) == pytest.approx(1.0, rel=1e-12)


def test_cka_nan_and_bad_input():
    x = np.random.default_rng(0).normal(size=(5, 3))
    assert math.isnan(linear_cka(x, np.zeros((5, 2))))  # a constant (dead) representation: undefined
    with_nan = x.copy()
    with_nan[2, 1] = np.nan
    assert math.isnan(linear_cka(with_nan, x))  # NaN propagates
    with pytest.raises(ValueError, match="same inputs"):
        linear_cka(x, x[:4])
    with pytest.raises(ValueError, match="at least 2"):
        linear_cka(x[:1], x[:1])


def _probe(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), rng.integers(0, 3, n))


def test_layer_activations_are_the_layer_groups_outputs():
    minitl.manual_seed(0)
    model = LeNet(num_classes=3)
    loader = DataLoader(_probe(), batch_size=16)
    acts = layer_activations(model, loader)
    assert list(acts) == ["features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"]
    assert acts["features.0"].shape == (40, 6, 14, 14)  # after its ReLU and 2x2 pool (one fused call)
    assert acts["classifier.4"].shape == (40, 3)
    assert (acts["classifier.0"] >= 0).all()  # after the ReLU
    # The recorded logits are the model's output, batch by batch concatenated.
    with minitl.no_grad():
        logits = np.concatenate([model(x).numpy() for x, _ in loader])
    np.testing.assert_array_equal(acts["classifier.4"], logits)
    # The hooks are gone afterwards and the mode is put back.
    assert "forward" not in model.features[0].__dict__ and model.training
    with pytest.raises(ValueError, match="no layer 'features.9'"):
        layer_activations(model, loader, ["features.9"])


def test_cka_between_models_per_layer():
    minitl.manual_seed(0)
    a = build_model("mlp:16,8", 3, (1, 28, 28))
    minitl.manual_seed(1)
    b = build_model("mlp:16,8", 3, (1, 28, 28))
    b.load_state_dict({k: v.copy() for k, v in a.state_dict().items() if k.startswith("layers.0.")}, strict=False)
    loader = DataLoader(_probe(), batch_size=16)
    table = cka(a, b, loader)
    assert list(table) == ["layers.0", "layers.2", "layers.4"]
    assert table["layers.0"] == pytest.approx(1.0, abs=1e-9)  # same first layer: same representation
    assert table["layers.2"] < 0.999  # different weights after it
    assert cka(a, a, loader)["layers.4"] == pytest.approx(1.0, abs=1e-9)
    assert format_cka(table).splitlines()[2].startswith("| layers.0 | 1.000 |")

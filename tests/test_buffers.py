"""Module buffers: registration, state_dict order and loading, devices, files and checkpoints."""
import numpy as np
import pytest

import minitl
from minitl import io, nn, optim
from minitl.train.checkpoint import load_checkpoint, save_checkpoint


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("count", np.zeros(3, np.float32))
        self.register_buffer("scratch", np.ones(1, np.float32), persistent=False)


def small_net():
    return nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8, 3))


def test_register_buffer_named_buffers_and_state_dict_order():
    m = Counter()
    assert isinstance(m.count, minitl.Tensor) and not m.count.requires_grad
    assert [n for n, _ in m.named_buffers()] == ["count", "scratch"]
    assert list(m.state_dict()) == ["count", "lin.weight", "lin.bias"]  # non-persistent left out
    assert [n for n, _ in m.named_parameters()] == ["lin.weight", "lin.bias"]
    m.count = np.full(3, 7, np.float32)  # assigning to a buffer name keeps it a buffer
    assert m.state_dict()["count"].tolist() == [7, 7, 7]
    assert list(small_net().state_dict()) == [
        "0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "4.weight", "4.bias"]
    with pytest.raises(ValueError, match="already has"):
        m.register_buffer("lin", np.zeros(1))
    with pytest.raises(ValueError, match="Parameter"):
        m.register_buffer("p", nn.Parameter(np.zeros(1)))


def test_load_state_dict_covers_buffers_strictly():
    src, dst = small_net(), small_net()
    src(minitl.tensor(np.random.default_rng(0).normal(size=(4, 1, 4, 4)).astype(np.float32)))
    report = dst.load_state_dict(src.state_dict())
    assert "1.running_mean" in report.loaded and "1.num_batches_tracked" in report.loaded
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v)
    sd = dict(src.state_dict())
    del sd["1.running_var"]
    with pytest.raises(ValueError, match="missing from the file: 1.running_var"):
        dst.load_state_dict(sd)
    assert dst.load_state_dict(sd, strict=False).missing == ["1.running_var"]


def test_to_device_moves_buffers_and_keeps_values():
    m = small_net()
    before = np.array(m.state_dict()["1.running_var"])
    m.to("cpu")
    assert m[1].running_var.device == "cpu"
    np.testing.assert_array_equal(m.state_dict()["1.running_var"], before)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_buffers_round_trip_through_weight_files(tmp_path, suffix):
    src, dst = small_net(), small_net()
    src(minitl.tensor(np.random.default_rng(1).normal(size=(4, 1, 4, 4)).astype(np.float32)))
    path = tmp_path / f"w{suffix}"
    io.save(src.state_dict(), path)
    loaded = io.load(path)
    assert loaded["1.num_batches_tracked"].dtype == np.int64 and loaded["1.num_batches_tracked"].shape == ()
    dst.load_state_dict(loaded)
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v)


def test_checkpoint_saves_and_restores_buffers(tmp_path):
    model = small_net()
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(minitl.tensor(np.random.default_rng(2).normal(size=(4, 1, 4, 4)).astype(np.float32)))
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, model, opt, step=1, epoch=0)
    fresh = small_net()
    load_checkpoint(path, fresh, optim.SGD(fresh.parameters(), lr=0.1))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    assert int(fresh[1].num_batches_tracked.numpy()) == 1

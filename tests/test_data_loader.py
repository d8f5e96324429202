"""DataLoader (batching, seeded shuffles, devices) and the batch transforms."""
import numpy as np
import pytest

import minitl
from minitl.data import (ArrayDataset, Compose, DataLoader, Normalize, Pad, RandomCrop,
                         RandomHorizontalFlip, ToFloat)


def make_dataset(n=103, size=6, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    return ArrayDataset(images, rng.integers(0, 10, n), classes=[str(i) for i in range(10)])


def arrays(loader):
    return [(x.numpy(), y.numpy()) for x, y in loader]


def test_len_and_batch_sizes():
    ds = make_dataset(103)
    assert len(DataLoader(ds, 10)) == 11
    assert [len(y) for _, y in arrays(DataLoader(ds, 10))] == [10] * 10 + [3]
    dropped = DataLoader(ds, 10, drop_last=True)
    assert len(dropped) == 10 and [len(y) for _, y in arrays(dropped)] == [10] * 10
    assert len(DataLoader(ds, 200, drop_last=True)) == 0 and arrays(DataLoader(ds, 200, drop_last=True)) == []


def test_unshuffled_batches_are_in_order_and_scaled():
    ds = make_dataset(25)
    batches = arrays(DataLoader(ds, 8))
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x, ds.images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, ds.labels)


def test_yields_tensors_on_the_cpu():
    x, y = next(iter(DataLoader(make_dataset(), 4)))
    assert isinstance(x, minitl.Tensor) and isinstance(y, minitl.Tensor)
    assert x.device == "cpu" and x.shape == (4, 1, 6, 6) and not x.requires_grad


def test_shuffle_is_a_seeded_permutation_per_epoch():
    ds = make_dataset(50)
    loader = DataLoader(ds, 7, shuffle=True, seed=42)
    epoch0 = np.concatenate([y for _, y in arrays(loader)])
    epoch1 = np.concatenate([y for _, y in arrays(loader)])
    order0, order1 = loader.order(0), loader.order(1)
    assert sorted(order0.tolist()) == list(range(50)) and not np.array_equal(order0, order1)
    np.testing.assert_array_equal(epoch0, ds.labels[order0])
    np.testing.assert_array_equal(epoch1, ds.labels[order1])
    # A new loader with the same seed replays the same epochs; set_epoch resumes mid-sequence.
    again = DataLoader(ds, 7, shuffle=True, seed=42)
    np.testing.assert_array_equal(np.concatenate([y for _, y in arrays(again)]), epoch0)
    again.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate([y for _, y in arrays(again)]), epoch1)
    other = DataLoader(ds, 7, shuffle=True, seed=43)
    assert not np.array_equal(other.order(0), order0)


def test_seed_none_follows_manual_seed():
    ds = make_dataset(40)
    minitl.manual_seed(7)
    a = DataLoader(ds, 5, shuffle=True).order(0)
    minitl.manual_seed(7)
    b = DataLoader(ds, 5, shuffle=True).order(0)
    np.testing.assert_array_equal(a, b)


def test_no_per_sample_access():
    class NoItems(ArrayDataset):
        def __getitem__(self, i):
            raise AssertionError("the loader must gather whole batches from the arrays")

    base = make_dataset(30)
    ds = NoItems(base.images, base.labels, base.classes)
    assert sum(len(y) for _, y in arrays(DataLoader(ds, 8, shuffle=True, seed=0))) == 30


def test_accepts_an_array_pair_and_checks_arguments():
    x = np.zeros((4, 1, 2, 2), np.float32)
    (bx, by), = arrays(DataLoader((x, np.arange(4)), 4))
    assert bx.dtype == np.float32 and by.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader((x, np.arange(4)), 0)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        DataLoader((x, np.arange(3)), 2)
    with pytest.raises(ValueError, match="unknown device"):
        DataLoader((x, np.arange(4)), 2, device="tpu")


def test_transform_is_applied_per_batch_and_uint8_output_is_scaled():
    ds = make_dataset(20)
    calls = []

    def flip_all(batch):
        calls.append(batch.shape)
        return batch[..., ::-1]

    x = np.concatenate([b[0] for b in arrays(DataLoader(ds, 8, transform=flip_all))])
    assert calls == [(8, 1, 6, 6), (8, 1, 6, 6), (4, 1, 6, 6)]
    np.testing.assert_allclose(x, ds.images[..., ::-1] / 255.0, rtol=1e-6)


def test_loader_with_normalize_matches_the_formula():
    ds = make_dataset(9)
    (x, _), = arrays(DataLoader(ds, 9, transform=Normalize(0.2860, 0.3530)))
    np.testing.assert_allclose(x, (ds.images / 255.0 - 0.2860) / 0.3530, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_batches_on_the_gpu():
    x, y = next(iter(DataLoader(make_dataset(), 4, device="cuda")))
    assert x.device == "cuda" and y.device == "cuda"
    assert y.numpy().dtype == np.int64


# --- transforms -----------------------------------------------------------------
def test_to_float_and_normalize_per_channel():
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    np.testing.assert_allclose(ToFloat()(x), x / 255.0, rtol=1e-6)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = Normalize(mean, std)(x)
    ref = (x / 255.0 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    floats = x.astype(np.float32)  # float input is not rescaled
    np.testing.assert_allclose(Normalize(1.0, 2.0)(floats), (floats - 1) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        Normalize([0.1, 0.2], [1, 1])(x)
    with pytest.raises(ValueError, match="positive"):
        Normalize(0, 0)


def test_pad():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.uint8).reshape(2, 1, 2, 3) + 1
    out = Pad(1)(x)
    assert out.shape == (2, 1, 4, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1:3, 1:4], x)
    assert out[:, :, 0].sum() == 0 and out[:, :, :, 0].sum() == 0
    assert Pad((1, 2))(x).shape == (2, 1, 4, 7)  # (vertical, horizontal)
    assert Pad((1, 0, 3, 2))(x).shape == (2, 1, 4, 7)  # (left, top, right, bottom)
    np.testing.assert_array_equal(Pad(1, mode="edge")(x)[:, :, 0, 1:4], x[:, :, 0])
    assert Pad(2, fill=9)(x)[0, 0, 0, 0] == 9


def test_random_crop_takes_one_window_per_image():
    rng = np.random.default_rng(0)
    x = rng.permutation(6 * 2 * 7 * 7).reshape(6, 2, 7, 7).astype(np.int32)  # every value distinct
    out = RandomCrop(5, padding=1, seed=3)(x)
    assert out.shape == (6, 2, 5, 5) and out.dtype == x.dtype
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(len(x)):  # a per-image reference: the crop is some 5x5 window of that image
        windows = [(t, l) for t in range(5) for l in range(5)
                   if np.array_equal(padded[i, :, t:t + 5, l:l + 5], out[i])]
        assert len(windows) == 1


def test_random_crop_is_seeded_and_varies():
    x = np.random.default_rng(1).integers(0, 256, (64, 1, 10, 10), dtype=np.uint8)
    a, b = RandomCrop(6, seed=5), RandomCrop(6, seed=5)
    np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), a(x[:]))  # the generator advances between calls
    with pytest.raises(ValueError, match="larger than"):
        RandomCrop(11)(x)


def test_random_horizontal_flip():
    x = np.random.default_rng(2).integers(0, 256, (400, 3, 4, 5), dtype=np.uint8)
    out = RandomHorizontalFlip(seed=0)(x)
    flipped = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (flipped | kept).all() and 150 < flipped.sum() < 250
    np.testing.assert_array_equal(RandomHorizontalFlip(seed=0)(x), out)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0, seed=1)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0, seed=1)(x), x)


def test_compose_and_loader_determinism_with_random_transforms():
    ds = make_dataset(30, size=8, channels=3)

    def loader():
        tf = Compose([RandomCrop(8, padding=2, seed=1), RandomHorizontalFlip(seed=2), Normalize(0.5, 0.25)])
        return DataLoader(ds, 7, shuffle=True, seed=9, transform=tf)

    a, b = arrays(loader()), arrays(loader())
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert a[0][0].dtype == np.float32 and a[0][0].shape == (7, 3, 8, 8)


def test_transforms_want_batches():
    with pytest.raises(ValueError, match=r"batch of shape \(N, C, H, W\)"):
        RandomHorizontalFlip(seed=0)(np.zeros((4, 4), np.uint8))


def test_state_dict_lets_a_fresh_loader_repeat_the_future_batches():
    data = ArrayDataset(np.arange(40 * 4, dtype=np.uint8).reshape(40, 1, 2, 2), np.arange(40) % 4)
    make = lambda: DataLoader(data, 8, shuffle=True, seed=3,  # noqa: E731
                              transform=Compose([RandomHorizontalFlip(seed=1), Normalize(0.5, 0.5)]))
    a = make()
    list(a)  # one epoch: the flip's generator and the epoch counter move on
    state = a.state_dict()
    assert state["seed"] == 3 and state["epoch"] == 1 and len(state["transform_rngs"]) == 1
    want = [x.numpy() for x, _ in a]
    b = make()
    b.load_state_dict(state)
    assert all(np.array_equal(x.numpy(), w) for (x, _), w in zip(b, want))
    with pytest.raises(ValueError, match="1 transform generator"):
        DataLoader(data, 8).load_state_dict(state)
    with pytest.raises(ValueError, match="state_dict"):
        DataLoader(data, 8).load_state_dict([1, 2])


def test_batches_can_start_mid_epoch_without_touching_the_skipped_ones():
    data = ArrayDataset(np.zeros((20, 1, 2, 2), np.uint8), np.arange(20) % 2)
    calls = []

    def transform(x):
        calls.append(len(x))
        return x

    loader = DataLoader(data, 6, shuffle=True, seed=0, transform=transform)
    full = [y.numpy() for _, y in loader]
    loader.set_epoch(0)
    calls.clear()
    tail = [y.numpy() for _, y in loader.batches(2)]
    assert len(tail) == 2 and all(np.array_equal(a, b) for a, b in zip(full[2:], tail))
    assert calls == [6, 2] and loader.epoch == 1

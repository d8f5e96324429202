"""Task construction: class subsets, nested k-shot sets, stratified splits."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitl.data import ArrayDataset


def make_dataset(per_class=(30, 25, 40, 35, 30, 28, 33, 31, 29, 27), seed=0):
    """Images whose first pixel holds the example's position, so selections can be checked."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])
    labels = np.random.default_rng(seed).permutation(labels)
    images = np.zeros((len(labels), 1, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(labels)) % 256
    images[:, 0, 0, 1] = np.arange(len(labels)) // 256
    return ArrayDataset(images, labels, classes=[f"c{i}" for i in range(len(per_class))])


def positions(ds):
    return ds.images[:, 0, 0, 0].astype(int) + 256 * ds.images[:, 0, 0, 1].astype(int)


def test_basics():
    ds = make_dataset()
    assert len(ds) == 308 and ds.num_classes == 10 and ds.shape == (1, 4, 4)
    assert ds.class_counts().tolist() == [30, 25, 40, 35, 30, 28, 33, 31, 29, 27]
    x, y = ds[3]
    assert x.shape == (1, 4, 4) and isinstance(y, int)
    xs, ys = ds[2:5]
    assert xs.shape == (3, 1, 4, 4) and ys.dtype == np.int64
    assert "308 images 1x4x4 uint8, 10 classes" in repr(ds)


def test_validation():
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        ArrayDataset(np.zeros((2, 1, 2, 2), np.uint8), [0, 2], classes=["a", "b"])
    with pytest.raises(ValueError, match="expected 3 labels"):
        ArrayDataset(np.zeros((3, 1, 2, 2), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="must be integers"):
        ArrayDataset(np.zeros((1, 1, 2, 2), np.uint8), [0.5])
    assert ArrayDataset(np.zeros((2, 5, 5), np.uint8), [0, 1]).shape == (1, 5, 5)  # channel axis added


def test_subset_relabels_in_the_order_given():
    ds = make_dataset()
    task = ds.subset(classes=[5, 6, 7, 8, 9], relabel=True)
    assert task.num_classes == 5 and task.classes == ("c5", "c6", "c7", "c8", "c9")
    assert task.class_counts().tolist() == [28, 33, 31, 29, 27]
    np.testing.assert_array_equal(ds.labels[task.indices], task.labels + 5)
    np.testing.assert_array_equal(positions(task), task.indices)  # images follow their labels
    swapped = ds.subset([7, 2])
    assert swapped.classes == ("c7", "c2")
    np.testing.assert_array_equal(ds.labels[swapped.indices], np.where(swapped.labels == 0, 7, 2))


def test_subset_without_relabel_and_by_name():
    ds = make_dataset()
    kept = ds.subset([1, 3], relabel=False)
    assert kept.classes == ds.classes and set(kept.labels.tolist()) == {1, 3}
    by_name = ds.subset(["c1", "c3"])
    np.testing.assert_array_equal(by_name.indices, kept.indices)


@pytest.mark.parametrize("bad, match", [([10], "out of range"), ([1, 1], "repeated"),
                                        (["nope"], "unknown class"), ([], "at least one")])
def test_subset_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        make_dataset().subset(bad)


@given(seed=st.integers(0, 2**32 - 1), ks=st.lists(st.integers(1, 25), min_size=2, max_size=4))
def test_k_shot_is_balanced_and_nested(seed, ks):
    ds = make_dataset()
    ks = sorted(ks)
    sets = [ds.k_shot(k, seed) for k in ks]
    for k, s in zip(ks, sets):
        assert s.class_counts().tolist() == [k] * 10
        np.testing.assert_array_equal(ds.labels[s.indices], s.labels)
        np.testing.assert_array_equal(positions(s), s.indices)
    for small, large in zip(sets, sets[1:]):
        assert set(small.indices.tolist()) <= set(large.indices.tolist())


def test_k_shot_is_reproducible_and_seed_dependent():
    ds = make_dataset()
    np.testing.assert_array_equal(ds.k_shot(5, seed=3).indices, ds.k_shot(5, seed=3).indices)
    assert not np.array_equal(ds.k_shot(5, seed=3).indices, ds.k_shot(5, seed=4).indices)


def test_k_shot_of_a_subset_keeps_original_indices():
    ds = make_dataset()
    few = ds.subset([5, 6, 7, 8, 9]).k_shot(2, seed=0)
    assert len(few) == 10 and few.num_classes == 5
    np.testing.assert_array_equal(ds.labels[few.indices], few.labels + 5)


def test_k_shot_too_large():
    with pytest.raises(ValueError, match=r"class 1 \('c1'\) has 25 examples; expected at least k=26"):
        make_dataset().k_shot(26, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        make_dataset().k_shot(0, seed=0)


@given(seed=st.integers(0, 2**32 - 1), frac=st.floats(0.05, 0.95))
def test_split_is_stratified_disjoint_and_complete(seed, frac):
    ds = make_dataset()
    train, val = ds.split(val_fraction=frac, seed=seed)
    assert len(train) + len(val) == len(ds)
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    counts = ds.class_counts()
    expected = np.minimum(np.round(counts * frac), counts - 1)
    np.testing.assert_array_equal(val.class_counts(), expected)
    assert (train.class_counts() >= 1).all()


def test_split_reproducible_and_validated():
    ds = make_dataset()
    a, b = ds.split(0.2, seed=1), ds.split(0.2, seed=1)
    np.testing.assert_array_equal(a[1].indices, b[1].indices)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ds.split(1.0)


def test_select_with_mask_and_order():
    ds = make_dataset()
    sel = ds.select([5, 2, 9])
    np.testing.assert_array_equal(sel.indices, [5, 2, 9])
    np.testing.assert_array_equal(positions(sel), [5, 2, 9])
    masked = ds.select(ds.labels == 3)
    assert len(masked) == 35 and (masked.labels == 3).all()

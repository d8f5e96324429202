"""Episodic N-way K-shot task sampling: disjoint sets, the right classes, reproducible by seed."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minitl.data.episodes import sample_episode
from minitl.data.tasks import split_task
from tiny_tasks import synthetic_dataset


@pytest.fixture(scope="module")
def splits():
    train, test = synthetic_dataset(12), synthetic_dataset(6, seed=1)
    return split_task(train, test, "0-2", "synth"), split_task(train, test, "3-5", "synth")


@given(ways=st.integers(2, 3), shots=st.integers(1, 4), query=st.integers(0, 5), seed=st.integers(0, 10**6))
def test_support_and_query_are_disjoint_and_labelled_in_drawn_order(splits, ways, shots, query, seed):
    source, _ = splits
    ep = sample_episode(source.train, ways, shots, query, seed=seed)
    assert len(ep.classes) == ways == len(set(ep.classes))
    assert len(ep.support) == ways * shots and len(ep.query) == ways * query
    assert not set(ep.support.indices) & set(ep.query.indices)  # no image in both
    np.testing.assert_array_equal(np.bincount(ep.support.labels, minlength=ways), np.full(ways, shots))
    for part in (ep.support, ep.query):
        for label, c in enumerate(ep.classes):
            # label i is the i-th drawn class: its images are that class's in the source dataset
            assert (source.train.labels[np.searchsorted(source.train.indices, part.indices[part.labels == label])]
                    == c).all()
    assert ep.support.classes == tuple(source.train.classes[c] for c in ep.classes)


def test_classes_come_from_the_split_given(splits):
    source, target = splits
    seen = set()
    for seed in range(30):
        ep = sample_episode(target.train, 2, 1, 1, seed=seed, query_from=target.test)
        seen.update(ep.support.classes)
        # The query comes from the test split, the support from the train split.
        test_rows = {img.tobytes() for img in target.test.images}
        assert len(ep.query) == 2 and all(img.tobytes() in test_rows for img in ep.query.images)
        assert set(ep.support.classes) <= {"3", "4", "5"}
    assert seen == {"3", "4", "5"}  # target classes only, and all of them in time
    assert all(set(sample_episode(source.train, 3, 1, 0, seed=s).support.classes) == {"0", "1", "2"}
               for s in range(3))


def test_reproducible_by_seed(splits):
    source, _ = splits
    a = sample_episode(source.train, 2, 3, 2, seed=[7, 1])
    b = sample_episode(source.train, 2, 3, 2, seed=[7, 1])
    c = sample_episode(source.train, 2, 3, 2, seed=[7, 2])
    assert a.classes == b.classes
    np.testing.assert_array_equal(a.support.indices, b.support.indices)
    np.testing.assert_array_equal(a.query.images, b.query.images)
    assert (a.classes, list(a.support.indices)) != (c.classes, list(c.support.indices))


def test_bad_episodes_name_the_problem(splits):
    source, target = splits
    with pytest.raises(ValueError, match="3 classes; cannot draw a 4-way"):
        sample_episode(source.train, 4, 1, 1, seed=0)
    with pytest.raises(ValueError, match="the episode needs 20"):
        sample_episode(source.train, 2, 10, 10, seed=0)
    with pytest.raises(ValueError, match="ways >= 2"):
        sample_episode(source.train, 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="query_from has classes"):
        sample_episode(source.train, 2, 1, 1, seed=0, query_from=target.test)

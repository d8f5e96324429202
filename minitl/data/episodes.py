"""Episodic few-shot tasks: N classes drawn from a class split, K support images each, a query set.

    episode = sample_episode(source.train, ways=3, shots=5, query=10, seed=[0, it])
    episode.support, episode.query        # ArrayDatasets labelled 0..ways-1 in the drawn order

An episode is pure data (which images, which labels), so it lives with the
datasets rather than with a trainer: meta-learning (``experiments/meta.py``)
draws its meta-training tasks and its held-out test tasks here, and anything
else that needs N-way K-shot tasks (a prototype classifier, a probe) can too.

- Classes come from the dataset given (a class split such as Fashion-MNIST 0-4
  is a dataset of its own, see ``tasks.split_task``), drawn without replacement.
- Label ``i`` is the ``i``-th class drawn, so the order of the classes is
  random too: a start point cannot memorise "class 0 is a sandal".
- Support and query are disjoint: drawn without replacement from one dataset,
  or the query from another one (``query_from``, e.g. the test split) holding
  the same classes.
- Reproducible by seed: ``seed`` (an int or a sequence such as ``[run, i]``)
  fixes the classes, their order and every image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import ArrayDataset


@dataclass
class Episode:
    """One N-way K-shot task: ``classes`` (ids in the source dataset, label order), support, query."""

    classes: tuple
    support: ArrayDataset
    query: ArrayDataset


def _positions_of(dataset, c: int, n: int, rng, what: str) -> np.ndarray:
    pool = np.flatnonzero(dataset.labels == c)
    if len(pool) < n:
        raise ValueError(f"class {dataset.classes[c]!r} of {dataset.name} has {len(pool)} images; "
                         f"the episode needs {n} ({what})")
    return rng.choice(pool, n, replace=False)


def _episode_set(dataset, positions_by_class, names) -> ArrayDataset:
    positions = np.concatenate(positions_by_class)
    labels = np.repeat(np.arange(len(positions_by_class)), [len(p) for p in positions_by_class])
    return ArrayDataset(dataset.images[positions], labels, names, dataset.indices[positions], dataset.name)


def sample_episode(dataset, ways: int, shots: int, query: int, seed, query_from=None) -> Episode:
    """An N-way (``ways``) K-shot (``shots``) task from ``dataset``, with ``query`` query images per class.

    ``query_from``: draw the query set from this dataset (same classes, e.g.
    the test split) instead of from the support's dataset. Raises ValueError
    when the dataset has fewer than ``ways`` classes or a drawn class has too
    few images.
    """
    ways, shots, query = int(ways), int(shots), int(query)
    if ways < 2 or shots < 1 or query < 0:
        raise ValueError(f"an episode needs ways >= 2, shots >= 1 and query >= 0; got ways={ways}, "
                         f"shots={shots}, query={query}")
    if ways > len(dataset.classes):
        raise ValueError(f"{dataset.name} has {len(dataset.classes)} classes; cannot draw a {ways}-way task")
    if query_from is not None and tuple(query_from.classes) != tuple(dataset.classes):
        raise ValueError(f"query_from has classes {query_from.classes}, the support's dataset {dataset.classes}")
    rng = np.random.default_rng(seed)
    classes = [int(c) for c in rng.choice(len(dataset.classes), ways, replace=False)]
    support, queries = [], []
    for c in classes:
        if query_from is None:
            drawn = _positions_of(dataset, c, shots + query, rng, f"{shots} support + {query} query")
            support.append(drawn[:shots])
            queries.append(drawn[shots:])
        else:
            support.append(_positions_of(dataset, c, shots, rng, f"{shots} support"))
            queries.append(_positions_of(query_from, c, query, rng, f"{query} query"))
    names = tuple(dataset.classes[c] for c in classes)
    return Episode(tuple(classes), _episode_set(dataset, support, names),
                   _episode_set(dataset if query_from is None else query_from, queries, names))

"""Mini-batch orders for the encoder loop and the classifiers (numpy only, seeded)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_batches(object_ids: Sequence[str], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Batches in which every object appears in two different architectures.

    Each object's items are shuffled and cut into pairs; an odd one out is paired with
    another random item of the same object, so every item is seen at least once per
    epoch. Pairs are shuffled and ``batch_size // 2`` of them make a batch.
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be an even number >= 2 for contrastive training, got {batch_size}")
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(object_ids):
        groups.setdefault(o, []).append(i)
    pairs = []
    for obj, idx in groups.items():
        if len(idx) < 2:
            raise ValueError(f"object {obj!r} has one architecture in the training set; "
                             "the contrastive loss needs each object in >= 2 architectures")
        perm = rng.permutation(idx).tolist()
        pairs += [perm[k:k + 2] for k in range(0, len(perm) - 1, 2)]
        if len(perm) % 2:
            pairs.append([perm[-1], int(rng.choice(perm[:-1]))])
    order = rng.permutation(len(pairs))
    per = batch_size // 2
    return [[i for o in order[s:s + per] for i in pairs[o]] for s in range(0, len(order), per)]


def shuffled_batches(n_items: int, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches; a last batch of one item joins the previous one (BatchNorm needs 2)."""
    if n_items < 2 or batch_size < 2:
        raise ValueError(f"need >= 2 training items and batch_size >= 2, got {n_items} and {batch_size}")
    perm = rng.permutation(n_items).tolist()
    batches = [perm[s:s + batch_size] for s in range(0, n_items, batch_size)]
    if len(batches[-1]) == 1:
        last = batches.pop()
        batches[-1] += last
    return batches

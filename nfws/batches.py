"""Mini-batch orders for the encoder loop and the classifiers (numpy only, seeded)."""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def paired_batches(object_ids: Sequence[str], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Batches of pairs: each object once per epoch, as two of its items (architectures).

    The sampler of the authors' contrastive training: objects are shuffled and the k-th
    object of the shuffled order contributes its item couple number ``k mod C(n, 2)`` (items
    in the order given), so with MLP, TRI and HASH the couples MLP-TRI, MLP-HASH and
    TRI-HASH take turns. A batch is ``batch_size // 2`` consecutive pairs ``[a, b]``; a last
    batch of a single pair joins the previous one (a lone pair has no negative).
    """
    if batch_size < 2 or batch_size % 2:
        raise ValueError(f"batch_size must be an even number >= 2 for contrastive training, got {batch_size}")
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(object_ids):
        groups.setdefault(o, []).append(i)
    if len(groups) < 2:
        raise ValueError(f"contrastive training needs >= 2 objects, got {len(groups)}")
    for obj, idx in groups.items():
        if len(idx) < 2:
            raise ValueError(f"object {obj!r} has one architecture in the training set; "
                             "the contrastive loss needs each object in >= 2 architectures")
    objects = list(groups)
    pairs = []
    for k, o in enumerate(rng.permutation(len(objects))):
        idx = groups[objects[o]]
        couples = list(itertools.combinations(idx, 2))
        pairs.append(list(couples[k % len(couples)]))
    per = batch_size // 2
    batches = [[i for p in pairs[s:s + per] for i in p] for s in range(0, len(pairs), per)]
    if len(batches[-1]) == 2 and len(batches) > 1:
        last = batches.pop()
        batches[-1] += last
    return batches


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

"""Instance-level NeRF retrieval across architectures (paper §4.3, Tables 6/10).

Definitions (test split throughout):
- Query/gallery X/Y (X != Y): queries are the embeddings of architecture X, the gallery the
  embeddings of architecture Y; a query is answered when the same object is among its k
  nearest gallery embeddings.
- ALL/ALL: queries are all embeddings of the training architectures (MLP, TRI, HASH);
  the gallery is the same set without the query itself. Same-architecture embeddings of
  other objects stay in the gallery as distractors; the hits are the query object's NeRFs
  in the other architectures.
recall@k = % of queries with at least one hit among their k nearest neighbours. Queries
whose object has no NeRF in the gallery are not counted (their number is reported).
Distance: Euclidean, on L2-normalised embeddings when ``metric`` is "cosine".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nfws.eval.embeddings import embedding_matrix, load_embeddings, select, standardiser
from nfws.store import write_parquet

METRICS = ("cosine", "euclidean")


def recall_at_k(query: np.ndarray, query_ids: Sequence[str], gallery: np.ndarray,
                gallery_ids: Sequence[str], ks: Sequence[int], exclude: np.ndarray | None = None,
                metric: str = "cosine") -> tuple[dict[int, float], int]:
    """recall@k (%) for each k and the number of queries counted.

    ``exclude`` (bool [n_query, n_gallery]) removes pairs from the gallery, e.g. a query
    from itself. Ties in distance are broken by gallery order.
    """
    if metric not in METRICS:
        raise ValueError(f"retrieval metric {metric!r} unknown; choose one of {METRICS}")
    q, g = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
        g = g / np.linalg.norm(g, axis=1, keepdims=True).clip(1e-12)
    dist = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
    hit = np.asarray(query_ids)[:, None] == np.asarray(gallery_ids)[None, :]
    if exclude is not None:
        dist = np.where(exclude, np.inf, dist)
        hit = hit & ~exclude
    counted = hit.any(1)
    order = np.argsort(dist, axis=1, kind="stable")
    ranked_hits = np.take_along_axis(hit, order, axis=1)[counted]
    n = int(counted.sum())
    if n == 0:
        raise ValueError("retrieval: no query has its object in the gallery")
    return {int(k): 100.0 * float(ranked_hits[:, :k].any(1).mean()) for k in ks}, n


def retrieval(embedding_paths: Mapping[str, object], pairs: Sequence[tuple[str, str]],
              all_archs: Sequence[str], ks: Sequence[int] = (1, 5, 10), metric: str = "cosine",
              out_path=None, context: Mapping[str, str] | None = None) -> pd.DataFrame:
    """recall@k for every (query, gallery) pair; "ALL" in a pair means ``all_archs``.

    Embeddings are standardised per dimension with the train-split statistics of
    ``all_archs`` (see :func:`nfws.eval.embeddings.standardiser`) before distances are taken.
    Returns (and writes to ``out_path``) rows: context columns, query, gallery, k,
    recall (%), n_queries.
    """
    tables = load_embeddings(embedding_paths)
    scale = standardiser(embedding_matrix(select(tables, all_archs, "train")))
    rows = []
    for query_set, gallery_set in pairs:
        if (query_set == "ALL") != (gallery_set == "ALL"):
            raise ValueError(f"retrieval pair {query_set}/{gallery_set}: ALL pairs only with ALL")
        if query_set == "ALL":
            q = g = select(tables, all_archs, "test")
            exclude = np.eye(len(q), dtype=bool)
        else:
            q, g = select(tables, [query_set], "test"), select(tables, [gallery_set], "test")
            exclude = None
        recalls, n = recall_at_k(scale(embedding_matrix(q)), q["object_id"].to_numpy(), scale(embedding_matrix(g)),
                                 g["object_id"].to_numpy(), ks, exclude, metric)
        rows += [{**(context or {}), "query": query_set, "gallery": gallery_set, "k": k,
                  "recall": r, "n_queries": n} for k, r in recalls.items()]
    result = pd.DataFrame(rows)
    if out_path is not None:
        write_parquet(result, out_path)
    return result

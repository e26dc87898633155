"""Track B weight shards for the unit tests: every array and attr the reader requires, the
given ones as given and neutral values for the rest."""
import numpy as np

from nfws.mlora.weight_shard import ATTRS, WeightShard, write_weight_shard


def fake_weight_shard(path, weights, object_ids, layout=None, score=None, labels=None, **attrs):
    """Write a shard of ``weights`` [n, P] (``layout``: one bias tensor of P by default)."""
    weights = np.asarray(weights, np.float32)
    n, p = weights.shape
    layout = layout or [{"name": "w", "shape": [p], "role": "bias"}]
    shard = WeightShard(
        weights=weights, frozen=np.zeros(p, np.uint8), object_ids=np.asarray(object_ids),
        labels=np.zeros(n, np.int64) if labels is None else np.asarray(labels, np.int64),
        score=np.zeros(n, np.float32) if score is None else np.asarray(score, np.float32),
        loss_curve=np.zeros((n, 1), np.float32),
        attrs={**dict.fromkeys(ATTRS), "kind": "mlp", "display_name": "MLP", "layout": layout,
               "n_params": p, "n_trainable": p, "class_names": [], "config_hash": "h",
               "dropped": [], **attrs})
    write_weight_shard(path, shard)
    return shard

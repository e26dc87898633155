"""The one place that names node and edge types of parameter graphs.

Graphs of every family share these vocabularies and one feature layout, so a single
encoder can read NeRFs of any architecture.

Node features (long, [n_nodes, 3]): (layer index, neuron index within layer, node type).
Edge features (float, [n_edges, 6]): (value, layer index, edge type, p0, p1, p2), where
(p0, p1, p2) are family-specific extras: tri-plane spatial position, or hash (level,
entry index, 0); zeros for MLP edges.
"""
NODE_TYPES = (
    "input",           # an entry of the MLP input (encoding output or tiny-cuda-nn padding)
    "neuron",          # a hidden neuron
    "output",          # an MLP output (padded outputs included)
    "bias",            # a bias node joined to every neuron of one layer
    "plane_position",  # a tri-plane spatial location
    "plane_channel",   # a tri-plane channel (also an MLP input)
    "hash_entry",      # a hash-table entry of one level
    "hash_feature",    # a feature dimension of one level (also an MLP input)
)
EDGE_TYPES = ("weight", "bias", "triplane", "hash")

NODE_TYPE = {name: i for i, name in enumerate(NODE_TYPES)}
EDGE_TYPE = {name: i for i, name in enumerate(EDGE_TYPES)}
NODE_FEATURES = ("layer", "index", "type")
EDGE_FEATURES = ("value", "layer", "type", "p0", "p1", "p2")

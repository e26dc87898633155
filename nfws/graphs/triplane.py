"""Parameter graph of a tri-plane (Lim et al.'s construction, as used by the GMN paper).

One node per spatial location (3·R², index = plane·R² + row·R + column) and one node per
channel; every location of a plane is joined to every channel node, so the edge of entry
``triplane[p, c, i, j]`` runs from location (p, i, j) to channel c and carries that value.
Edge extras (p0, p1, p2) are the location's position in [-1, 1]^3: R evenly spaced values
along each in-plane axis (the field samples the planes with ``align_corners=True``, so
these are the sample positions) and 0 along the plane's normal. Plane axes follow
:data:`nfws.fields.encodings.PLANE_AXES`: the column j runs along the plane's first axis,
the row i along its second, e.g. plane xz, entry (i, j) sits at (x_j, 0, z_i).
Channel nodes carry index 0: permuting channels together with the matching columns of
``mlp.0`` leaves the field unchanged.
"""
from __future__ import annotations

import numpy as np

from nfws.fields.encodings import PLANE_AXES
from nfws.fields.spec import ArchSpec
from nfws.graphs.parts import GraphParts


def plane_positions(res: int) -> np.ndarray:
    """[3, R, R, 3] position in [-1, 1]^3 of every tri-plane entry (normal coordinate 0)."""
    lin = np.linspace(-1.0, 1.0, res)
    pos = np.zeros((3, res, res, 3))
    for p, (col_axis, row_axis) in enumerate(PLANE_AXES):
        pos[p, :, :, col_axis] = lin[None, :]
        pos[p, :, :, row_axis] = lin[:, None]
    return pos


def add_channel_nodes(parts: GraphParts, spec: ArchSpec, layer: int) -> np.ndarray:
    return parts.add_nodes(layer, "plane_channel", np.zeros(spec.triplane_channels, np.int64))


def add_triplane(parts: GraphParts, spec: ArchSpec, channel_ids: np.ndarray, offset: int) -> None:
    """Append spatial nodes (layer 0) and their edges to ``channel_ids``."""
    res, n_ch = spec.triplane_res, spec.triplane_channels
    spatial = parts.add_nodes(0, "plane_position", np.arange(3 * res * res)).reshape(3, res, res)
    shape = (3, n_ch, res, res)
    parts.add_edges(
        src=np.broadcast_to(spatial[:, None], shape),
        dst=np.broadcast_to(np.asarray(channel_ids)[None, :, None, None], shape),
        layer=0,
        edge_type="triplane",
        gather=offset + np.arange(int(np.prod(shape))),
        extras=np.broadcast_to(plane_positions(res)[:, None], shape + (3,)),
    )

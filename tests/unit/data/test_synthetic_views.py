"""In-memory views of synthetic objects: the layout the farm reads, classes in turn,
reproducible from the seed."""
import numpy as np
import torch

from nfws.data.cameras import pixel_rays
from nfws.data.synthetic3d import CLASS_BUILDERS
from nfws.data.synthetic_views import synthetic_views
from nfws.data.views import check_views


def test_layout_ids_and_reproducibility():
    n = len(CLASS_BUILDERS) + 1
    views = synthetic_views(n, resolution=12, n_views=3, seed=0)
    check_views(views)   # uint8 RGBA, matching poses, no blank object
    assert views.images.shape == (n, 3, 12, 12, 4)
    assert views.c2w.dtype == views.intrinsics.dtype == np.float32
    classes = list(CLASS_BUILDERS)
    assert views.object_ids == [f"{c}_00000" for c in classes] + [f"{classes[0]}_00001"]
    again = synthetic_views(2, resolution=12, n_views=3, seed=0)
    assert np.array_equal(again.images, views.images[:2])
    assert np.array_equal(again.c2w, views.c2w[:2])
    other = synthetic_views(2, resolution=12, n_views=3, seed=1)
    assert not np.array_equal(other.images, again.images)


def test_cameras_look_at_the_object():
    """The ray through the image centre of every view passes through the origin."""
    views = synthetic_views(2, resolution=16, n_views=4, seed=0)
    origins, dirs = pixel_rays(torch.from_numpy(views.c2w), torch.from_numpy(views.intrinsics),
                               torch.full((2, 4, 2), 8.0))
    closest = origins - (origins * dirs).sum(-1, keepdim=True) * dirs
    assert closest.norm(dim=-1).max() < 1e-4

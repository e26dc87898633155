"""Camera geometry checked against hand-derived projections."""
import math

import pytest
import torch

from nfws.data.cameras import (intrinsics_from_fov, look_at_c2w, orbit_c2w, pixel_centres,
                               pixel_rays)
from nfws.data.shapenet_render import DISN_FOV_X


def _line_distance(origin, direction, point):
    """Distance of ``point`` from the ray's line."""
    v = point - origin
    return (v - (v @ direction) * direction).norm().item()


def test_disn_focal_length_from_sensor_and_lens():
    # hfov = 2 atan(16 / 35)  =>  f = 0.5 W / tan(hfov / 2) = 0.5 W * 35 / 16
    fx, fy, cx, cy = intrinsics_from_fov(DISN_FOV_X, 224, 224).tolist()
    assert fx == pytest.approx(112 * 35 / 16, rel=1e-6) and fy == pytest.approx(fx)
    assert (cx, cy) == (112.0, 112.0)
    assert DISN_FOV_X == pytest.approx(0.857556, abs=1e-6)


@pytest.mark.parametrize("az,el,dist", [(0.0, 0.0, 1.5), (37.0, 25.0, 1.2), (190.0, 21.0, 1.75)])
def test_centre_pixel_ray_passes_through_origin(az, el, dist):
    res = 65  # odd, so pixel (32, 32) has its centre on the principal point
    c2w = orbit_c2w(az, el, dist)
    uv = pixel_centres(res, res)[32, 32]
    o, d = pixel_rays(c2w, intrinsics_from_fov(DISN_FOV_X, res, res), uv)
    assert _line_distance(o, d, torch.zeros(3)) < 1e-5
    assert (d @ -o).item() > 0  # looking towards the origin, not away


def test_camera_position_matches_spherical_formula():
    az, el, dist = 40.0, 30.0, 1.4
    eye = orbit_c2w(az, el, dist)[:3, 3]
    a, e = math.radians(az), math.radians(el)
    expected = torch.tensor([dist * math.cos(e) * math.cos(a), dist * math.sin(e),
                             dist * math.cos(e) * math.sin(a)])
    assert torch.allclose(eye, expected, atol=1e-6)
    assert eye[1].item() == pytest.approx(0.7, abs=1e-6)  # height = d sin 30°


def test_known_point_lands_on_hand_derived_pixel_az0():
    # camera on +x looking at -x, y up: camera right = world -z.
    # P = (0, 0.1, -0.2): x_cam = 0.2, y_cam = 0.1, depth = d
    d, res = 1.5, 64
    f = 0.5 * res * 35 / 16
    c2w = orbit_c2w(0.0, 0.0, d)
    point = torch.tensor([0.0, 0.1, -0.2])
    uv = torch.tensor([res / 2 + f * 0.2 / d, res / 2 - f * 0.1 / d])
    o, direction = pixel_rays(c2w, intrinsics_from_fov(DISN_FOV_X, res, res), uv)
    assert _line_distance(o, direction, point) < 1e-5


def test_known_point_lands_on_hand_derived_pixel_az90():
    # az = 90°: camera at (0, 0, d) looking along -z, right = +x, up = +y
    d, res = 1.2, 100
    f = 0.5 * res * 35 / 16
    point = torch.tensor([0.1, -0.05, 0.3])  # depth d - 0.3
    depth = d - 0.3
    uv = torch.tensor([res / 2 + f * 0.1 / depth, res / 2 + f * 0.05 / depth])
    o, direction = pixel_rays(orbit_c2w(90.0, 0.0, d), intrinsics_from_fov(DISN_FOV_X, res, res), uv)
    assert _line_distance(o, direction, point) < 1e-5


def test_look_at_is_a_proper_rotation():
    eyes = torch.tensor([[1.0, 0.5, 0.2], [-0.3, 0.9, -1.1], [0.0, 0.4, 2.0]])
    c2w = look_at_c2w(eyes)
    rot = c2w[:, :3, :3]
    assert torch.allclose(rot.transpose(1, 2) @ rot, torch.eye(3).expand(3, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3), atol=1e-6)
    assert torch.allclose(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(3, 4))


def test_look_at_rejects_straight_down_view():
    with pytest.raises(ValueError, match="parallel"):
        look_at_c2w(torch.tensor([0.0, 2.0, 0.0]))


def test_pixel_centres_are_half_offsets():
    uv = pixel_centres(2, 3)
    assert uv.shape == (2, 3, 2)
    assert uv[0, 0].tolist() == [0.5, 0.5] and uv[1, 2].tolist() == [2.5, 1.5]

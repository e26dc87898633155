"""Quaternion algebra, posed rendering and the SANE autoencoder's shapes and invariances."""
import math

import numpy as np
import pytest
import torch

from nfws.data.cameras import intrinsics_from_fov, orbit_c2w
from nfws.data.sphere_trace import LIGHT_DIR, render_views
from nfws.data.sdf_objects import Part, SDFObject
from nfws.fields.spec import ArchSpec
from nfws.sane.models import SANE, ModelConfig
from nfws.sane.rotations import (axis_angle_quat, check_fits, geodesic_angle, instance_rotations,
                                 jitter_quats, matrix_to_quat,
                                 mean_quat, quat_multiply, quat_to_matrix, random_quats,
                                 relative_quat, render_instance)
from nfws.sane.tokens import TokenLayout


def test_quaternion_matrix_of_a_quarter_turn_about_y():
    q = axis_angle_quat((0.0, 1.0, 0.0), torch.tensor(math.pi / 2, dtype=torch.float64))
    # a right-handed quarter turn about +y sends +x to -z and +z to +x
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(quat_to_matrix(q), expected)


def test_quaternion_matrix_round_trip():
    q = torch.from_numpy(random_quats(200, np.random.default_rng(0)))
    m = quat_to_matrix(q)
    torch.testing.assert_close(m @ m.transpose(-1, -2), torch.eye(3, dtype=q.dtype).expand_as(m))
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(200, dtype=q.dtype))
    back = matrix_to_quat(m)
    sign = torch.sign((back * q).sum(-1, keepdim=True))
    torch.testing.assert_close(back * sign, q)


def test_relative_rotation_composes_with_matrices():
    q = torch.from_numpy(random_quats(50, np.random.default_rng(1)))
    qa, qb = q[:25], q[25:]
    ra, rb = quat_to_matrix(qa), quat_to_matrix(qb)
    torch.testing.assert_close(quat_to_matrix(relative_quat(qa, qb)) @ ra, rb)
    torch.testing.assert_close(quat_to_matrix(quat_multiply(qa, qb)), ra @ rb)


def test_geodesic_angle_and_mean_rotation():
    about_z = lambda deg: axis_angle_quat((0.0, 0.0, 1.0), torch.tensor(math.radians(deg),
                                                                          dtype=torch.float64))
    assert float(geodesic_angle(about_z(10), about_z(70))) == pytest.approx(math.radians(60))
    # the mean of ±10° about z, with one sign flipped, is the identity
    qs = torch.stack([about_z(10), -about_z(-10)]).numpy()
    np.testing.assert_allclose(mean_quat(qs), [1.0, 0.0, 0.0, 0.0], atol=1e-12)


def test_jitter_is_small_and_seeded():
    q = torch.from_numpy(random_quats(100, np.random.default_rng(2))).float()
    j1 = jitter_quats(q, 0.1, torch.Generator().manual_seed(0))
    j2 = jitter_quats(q, 0.1, torch.Generator().manual_seed(0))
    angles = torch.rad2deg(geodesic_angle(j1.double(), q.double()))
    assert torch.equal(j1, j2) and 0 < float(angles.max()) < 1.0


def test_posed_rendering_equals_rendering_from_inverse_posed_cameras():
    obj = SDFObject("o", "chair", [
        Part("body", "box", (0.3, 0.15, 0.1), (0.05, 0.0, 0.0), colour=(0.8, 0.2, 0.1)),
        Part("knob", "sphere", (0.12,), (-0.2, 0.18, 0.05), colour=(0.1, 0.3, 0.9))])
    q = axis_angle_quat((0.0, 1.0, 0.0), torch.tensor(math.pi / 2, dtype=torch.float64))
    rot = quat_to_matrix(q).float()

    class Posed:
        """The object rotated by R, built directly: sdf(x) = sdf(R^T x)."""
        def sdf(self, x):
            return obj.sdf(x @ rot)

        def colour(self, x):
            return obj.colour(x @ rot)

        def bounds(self):
            lo, hi = obj.bounds()
            corners = np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1).T
            world = corners @ rot.numpy().T
            return world.min(0), world.max(0)

    c2w = orbit_c2w(torch.tensor([30.0, 150.0]), torch.tensor([25.0, 20.0]), torch.tensor([1.4, 1.6]))
    intr = intrinsics_from_fov(0.8, 24, 24).expand(2, 4)
    direct = render_views(Posed(), c2w, intr, 24, 24, light_dir=LIGHT_DIR)
    ours = render_instance(obj, q.numpy(), 1.0, c2w, intr, 24)
    assert direct[..., 3].sum() > 0
    # equal up to float rounding: a silhouette or part-boundary pixel may flip, no more
    diff = np.abs(direct.astype(int) - ours.astype(int)).max(-1)
    assert (diff <= 1).mean() > 0.995


SPEC = ArchSpec("H", "HASH", hidden_layers=2, width=16, hash_levels=2, hash_log2_T=6,
                hash_features=2, hash_base_res=2)


MODEL = {"d_model": 16, "heads": 2, "layers": 1, "d_latent": 8, "dropout": 0.0, "n_pos": 3,
         "proj_hidden": 8, "proj_dim": 4, "rot_heads": 2}


def make_model(dropout=0.0):
    torch.manual_seed(0)
    cfg = ModelConfig.from_dict({**MODEL, "dropout": dropout})
    return SANE(TokenLayout(SPEC, 5, 3), cfg).eval()


def test_model_shapes_and_batch_independence():
    model = make_model()
    lay = model.layout
    g = torch.Generator().manual_seed(0)
    h, m, xyz = (torch.randn(3, 5, lay.hash_dim, generator=g), torch.randn(3, lay.n_mlp, lay.mlp_dim, generator=g),
                 torch.rand(3, 5, 3, generator=g))
    with torch.no_grad():
        z = model.encode(h, m, xyz)
        rh, rm = model.decode(z, xyz)
        z1 = model.encode(h[1:2], m[1:2], xyz[1:2])
        q = model.rotation(z[:2], z[1:])
    assert z.shape == (3, lay.length, 8) and rh.shape == h.shape and rm.shape == m.shape
    assert model.projection(z).shape == (3, 4) and model.content(z).shape == (3, 8) and q.shape == (2, 4)
    torch.testing.assert_close(z1[0], z[1], rtol=1e-5, atol=1e-5)


def test_model_uses_point_positions():
    model = make_model()
    lay = model.layout
    h, m = torch.randn(1, 5, lay.hash_dim), torch.randn(1, lay.n_mlp, lay.mlp_dim)
    with torch.no_grad():
        za = model.encode(h, m, torch.zeros(1, 5, 3))
        zb = model.encode(h, m, torch.ones(1, 5, 3))
    assert not torch.allclose(za, zb)


def test_model_config_errors_name_the_key():
    with pytest.raises(ValueError, match="sane.model.heads"):
        ModelConfig.from_dict({**MODEL, "d_model": 10, "heads": 4})
    with pytest.raises(ValueError, match=r"unknown keys \['width'\]"):
        ModelConfig.from_dict({**MODEL, "width": 3})
    with pytest.raises(ValueError, match=r"sane.model: missing keys \['heads'\]"):
        ModelConfig.from_dict({k: v for k, v in MODEL.items() if k != "heads"})


def test_continuous_rotations_are_seeded_per_object():
    cfg = {"n_rotations": 4, "distribution": "continuous", "discrete_step_deg": 90}
    a = instance_rotations("chair_00001", cfg, seed=3)
    assert np.array_equal(a, instance_rotations("chair_00001", cfg, seed=3))
    assert not np.allclose(a, instance_rotations("chair_00002", cfg, seed=3))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)


def test_posed_object_must_fit_the_nerf_box():
    cube = SDFObject("c", "cabinet", [Part("b", "box", (0.5, 0.5, 0.5))])
    eighth = axis_angle_quat((0.0, 1.0, 0.0), torch.tensor(math.pi / 4, dtype=torch.float64)).numpy()
    # a corner of the unit cube turned 45° about y reaches sqrt(2) / 2 = 0.707 > 0.7
    with pytest.raises(ValueError, match="sane.data.scale"):
        check_fits(cube, eighth, 1.0, 0.7, "test")
    check_fits(cube, eighth, 0.98, 0.7, "test")

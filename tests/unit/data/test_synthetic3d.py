"""SDF objects and the synthetic classes: closed-form primitive distances, exact placement, JSON, generator."""
import json
import math

import numpy as np
import pytest
import torch

from nfws.data.sdf_objects import Part, SDFObject
from nfws.data.synthetic3d import CLASS_BUILDERS, generate_objects, make_object


def _sdf(primitive, params, points, **placement):
    obj = SDFObject("t", "t", [Part("p", primitive, params, **placement)])
    return obj.sdf(torch.tensor(points, dtype=torch.float32)).tolist()


def test_sphere_closed_form():
    assert _sdf("sphere", (0.5,), [[1, 0, 0], [0, 0, 0], [0, 0.3, 0.4]]) == pytest.approx(
        [0.5, -0.5, 0.0], abs=1e-6)


def test_box_closed_form():
    # half extents (0.3, 0.2, 0.1): face, edge (3-4-5 triangle), centre
    got = _sdf("box", (0.3, 0.2, 0.1), [[0.6, 0, 0], [0.6, 0.6, 0], [0, 0, 0], [0.25, 0, 0]])
    assert got == pytest.approx([0.3, 0.5, -0.1, -0.05], abs=1e-6)


def test_cylinder_closed_form():
    # radius 0.2, half height 0.5 (axis y)
    got = _sdf("cylinder", (0.2, 0.5), [[0.5, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0, 0, 0]])
    assert got == pytest.approx([0.3, 0.5, 0.5, -0.2], abs=1e-6)


def test_capsule_closed_form():
    # radius 0.1, segment y in [-0.3, 0.3]
    got = _sdf("capsule", (0.1, 0.3), [[0, 0.6, 0], [0.5, 0, 0], [0.3, 0.7, 0]])
    assert got == pytest.approx([0.2, 0.4, 0.4], abs=1e-6)


def test_cone_closed_form():
    # base radius 0.4 at y = -0.3, apex at y = +0.3; slant normal (0.6, 0.4) / |(0.6, 0.4)|
    n = np.array([0.6, 0.4]) / math.hypot(0.6, 0.4)
    side = np.array([0.2, 0.0]) + 0.1 * n
    pts = [[0, 0.5, 0], [0, -0.5, 0], [1.0, -0.3, 0], [side[0], side[1], 0], [0, 0, 0]]
    inner = abs(-0.4 * 0.6 + 0.3 * 0.4) / math.hypot(0.6, 0.4)
    assert _sdf("cone", (0.4, 0.0, 0.3), pts) == pytest.approx([0.2, 0.2, 0.6, 0.1, -inner], abs=1e-5)


def test_cone_with_equal_radii_is_a_cylinder():
    pts = (torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 2
    assert np.allclose(_sdf("cone", (0.3, 0.3, 0.4), pts.tolist()),
                       _sdf("cylinder", (0.3, 0.4), pts.tolist()), atol=1e-6)


def test_translation_and_uniform_scale_keep_distance_exact():
    # sphere r = 0.2 scaled by 1.5 at (0.1, 0.2, 0.3): |x - t| - 0.3
    pts = [[0.1, 0.2, 1.3], [0.1, 0.2, 0.3]]
    got = _sdf("sphere", (0.2,), pts, translation=(0.1, 0.2, 0.3), scale=1.5)
    assert got == pytest.approx([0.7, -0.3], abs=1e-6)


def test_rotation_about_y_swaps_box_axes():
    # Ry(90°) maps local x to world -z: half extents (0.3, 0.2, 0.1) become (0.1, 0.2, 0.3)
    got = _sdf("box", (0.3, 0.2, 0.1), [[0, 0, 0.5], [0.5, 0, 0]], rotation_deg=(0, 90, 0))
    assert got == pytest.approx([0.2, 0.4], abs=1e-6)


def test_placed_part_has_unit_gradient_outside():
    """Exactness under rotation + uniform scale: |grad sdf| = 1 away from the surface."""
    obj = SDFObject("t", "t", [Part("b", "box", (0.2, 0.1, 0.15), (0.05, -0.1, 0.0),
                                    (20, 35, -40), 1.7, (0.5, 0.5, 0.5))])
    x = (torch.rand(2000, 3, generator=torch.Generator().manual_seed(1)) - 0.5) * 3
    x = x[obj.sdf(x) > 0.05].requires_grad_(True)
    (grad,) = torch.autograd.grad(obj.sdf(x).sum(), x)
    assert torch.allclose(grad.norm(dim=-1), torch.ones(len(x)), atol=1e-4)


def test_union_is_min_and_colour_is_nearest_part():
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    obj = SDFObject("t", "t", [Part("a", "sphere", (0.2,), (-0.5, 0, 0), colour=red),
                               Part("b", "sphere", (0.1,), (0.5, 0, 0), colour=blue)])
    pts = torch.tensor([[-0.5, 0.0, 0.0], [0.45, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert obj.sdf(pts).tolist() == pytest.approx([-0.2, -0.05, 0.3], abs=1e-6)
    assert obj.colour(pts[:2]).tolist() == [list(red), list(blue)]


def test_json_round_trip(tmp_path):
    obj = make_object("chair", "chair_x", np.random.default_rng(3))
    obj.save(tmp_path / "c.json")
    back = SDFObject.load(tmp_path / "c.json")
    assert back.to_dict() == obj.to_dict()
    pts = torch.rand(300, 3) - 0.5
    assert torch.equal(back.sdf(pts), obj.sdf(pts))
    assert torch.equal(back.colour(pts), obj.colour(pts))


@pytest.mark.parametrize("class_name", list(CLASS_BUILDERS))
def test_every_class_is_centred_and_fits_the_nerf_box(class_name):
    obj = make_object(class_name, "x", np.random.default_rng(7))
    lo, hi = obj.bounds()
    assert np.max(hi - lo) == pytest.approx(1.0) and np.allclose((lo + hi) / 2, 0, atol=1e-9)
    # independent check: the SDF is positive all over the cube [-0.52, 0.52]^3's surface
    g = torch.Generator().manual_seed(0)
    face = (torch.rand(4000, 3, generator=g) - 0.5) * 1.04
    axis = torch.randint(0, 3, (4000,), generator=g)
    face[torch.arange(4000), axis] = torch.where(torch.rand(4000, generator=g) < 0.5, -0.52, 0.52)
    assert bool((obj.sdf(face) > 0).all())
    # and something is inside
    assert bool((obj.sdf((torch.rand(20000, 3, generator=g) - 0.5)) < 0).any())
    colours = np.array([p.colour for p in obj.parts])
    assert colours.min() >= 0 and colours.max() <= 1


def test_generator_is_seeded_and_varied(tmp_path):
    a = generate_objects(["car", "lamp"], 2, seed=5, out_dir=tmp_path / "a")
    b = generate_objects(["car", "lamp"], 2, seed=5, out_dir=tmp_path / "b")
    c = generate_objects(["car"], 1, seed=6, out_dir=tmp_path / "c")
    assert [r["object_id"] for r in a] == ["car_00000", "car_00001", "lamp_00000", "lamp_00001"]
    assert [r["class_name"] for r in a] == ["car", "car", "lamp", "lamp"]
    load = lambda r: json.loads(open(r["source"]).read())
    assert all(load(x) == load(y) for x, y in zip(a, b))
    assert load(a[0])["parts"] != load(a[1])["parts"]        # instances differ
    assert load(a[0])["parts"] != load(c[0])["parts"]        # seeds differ
    # an object does not depend on which other classes were generated
    d = generate_objects(["lamp"], 1, seed=5, out_dir=tmp_path / "d")
    assert load(d[0]) == load(a[2])


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown classes.*'boat'"):
        generate_objects(["boat"], 1, 0, tmp_path)
    with pytest.raises(ValueError, match="unknown class 'boat'"):
        make_object("boat", "x", np.random.default_rng(0))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        SDFObject.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        SDFObject.load(tmp_path / "missing.json")
    data = make_object("car", "c", np.random.default_rng(0)).to_dict()
    data["parts"][0]["primitive"] = "torus"
    (tmp_path / "torus.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="torus.json.*part 0.*torus"):
        SDFObject.load(tmp_path / "torus.json")
    data = make_object("car", "c", np.random.default_rng(0)).to_dict()
    data["class_name"] = "boat"
    (tmp_path / "boat.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="boat.json: unknown class 'boat'"):
        SDFObject.load(tmp_path / "boat.json")
    with pytest.raises(ValueError, match="part .p. params must be"):
        SDFObject("x", "x", [Part("p", "box", (0.1, -0.1, 0.1))])

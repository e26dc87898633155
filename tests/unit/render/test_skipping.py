"""Occupancy cells: cell lookup, nerfacc's occupancy rule, and the weights that place samples."""
import math

import pytest
import torch

from nfws.render.skipping import OccupancyCells
from nfws.render.volrend import render_rays


def test_cell_index_by_hand():
    cells = OccupancyCells(torch.tensor([[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]), resolution=4)
    # cell size 0.5: (0.6, 1.1, 1.9) -> (1, 2, 3) -> 1 + 4 * (2 + 4 * 3) = 57;
    # outside the box clamps to the border cells: (-1, 5, 1.0) -> (0, 3, 2) -> 0 + 4 * (3 + 8) = 44
    points = torch.tensor([[[0.6, 1.1, 1.9], [-1.0, 5.0, 1.0]]])
    assert cells.cell_of(points).tolist() == [[57, 44]]
    assert cells.occupied_at(points).all()        # before any update every cell is occupied


def test_update_follows_nerfacc_moving_maximum_and_threshold():
    box = torch.tensor([[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]])
    cells = OccupancyCells(box, resolution=8, decay=0.5, threshold=1e-2)

    def ball(x):                                  # density 100 inside radius 0.5, 0 outside
        return torch.zeros_like(x), 100.0 * (x.norm(dim=-1) < 0.5)
    cells.update(ball, torch.tensor([0.1]), torch.rand(1, 512, 3, generator=torch.Generator().manual_seed(2)))
    first = cells.opacity.clone()
    assert set(first.unique().tolist()) <= {0.0, 10.0}
    # cells wholly inside the ball ([0, 0.25]^3 around the centre: corner distance 0.43)
    # are occupied whatever the sample; cells wholly outside (beyond radius 0.5) never are
    centre = cells.cell_of(torch.tensor([[[0.1, 0.1, 0.1], [-0.1, -0.2, 0.1]]]))
    corner = cells.cell_of(torch.tensor([[[0.9, 0.9, 0.9], [-0.9, 0.1, 0.1]]]))
    assert cells.occupied.gather(1, centre).all() and not cells.occupied.gather(1, corner).any()
    # an empty field afterwards: opacity = max(0.5 * previous, 0), threshold min(0.01, mean)
    cells.update(lambda x: (torch.zeros_like(x), torch.zeros(x.shape[:-1])), torch.tensor([0.1]),
                 torch.rand(1, 512, 3, generator=torch.Generator().manual_seed(3)))
    torch.testing.assert_close(cells.opacity, 0.5 * first)
    level = min(1e-2, float((0.5 * first).mean()))
    assert torch.equal(cells.occupied, 0.5 * first > level)


def test_update_in_chunks_sees_every_cell_once():
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]).expand(3, 2, 3)
    calls = []

    def field(x):
        calls.append(x.shape[1])
        return torch.zeros_like(x), x.norm(dim=-1)
    whole, chunked = OccupancyCells(box, resolution=4), OccupancyCells(box, resolution=4)
    offsets = torch.rand(3, 64, 3, generator=torch.Generator().manual_seed(5))
    whole.update(field, torch.ones(3), offsets)
    calls.clear()
    chunked.update(field, torch.ones(3), offsets, points_per_call=3 * 10)
    assert calls == [10] * 6 + [4]                # 64 cells, 10 per NeRF per call
    torch.testing.assert_close(chunked.opacity, whole.opacity)


def test_bin_weights_by_hand():
    # cells of size 1 over [0, 2]^3; only cell (1, 0, 0) (flat index 1) is occupied
    cells = OccupancyCells(torch.tensor([[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]), resolution=2)
    cells.occupied[:] = False
    cells.occupied[0, 1] = True
    origins = torch.tensor([[[-1.0, 0.5, 0.5], [0.5, -1.0, 0.5]]])
    dirs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    t_near, t_far = torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0, 3.0]])
    # ray 0 runs along x: bin midpoints x = 0.25, 0.75, 1.25, 1.75 -> cells x 0, 0, 1, 1;
    # ray 1 runs along y at x = 0.5: never in the occupied cell
    weights = cells.bin_weights(origins, dirs, t_near, t_far, n_bins=4, floor=0.1)
    torch.testing.assert_close(weights, torch.tensor([[[0.1, 0.1, 1.0, 1.0], [0.1, 0.1, 0.1, 0.1]]]))


def test_refreshes_at_start_then_every_interval():
    cells = OccupancyCells(torch.zeros(1, 2, 3), resolution=2, start=40, every=16)
    assert [s for s in range(100) if cells.due(s)] == [40, 56, 72, 88]


def test_cells_refuse_a_bad_resolution():
    with pytest.raises(ValueError, match="resolution \\(0\\) and refresh interval \\(16\\) must be >= 1"):
        OccupancyCells(torch.zeros(1, 2, 3), resolution=0)


def test_guided_samples_keep_the_integral_of_a_constant_density():
    """Samples placed by the cells still tile each ray's chord, so a constant density
    renders the closed form: opacity 1 - exp(-sigma * chord), colour that times the
    field's colour, whatever the placement."""
    gen = torch.Generator().manual_seed(4)
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]).expand(2, 2, 3)
    sigma, colour = 0.7, torch.tensor([0.2, 0.5, 0.9])
    seen = []

    def fog(x):
        seen.append(x)
        return colour.expand(*x.shape[:-1], 3), torch.full(x.shape[:-1], sigma)
    cells = OccupancyCells(box, resolution=8)
    cells.occupied = torch.rand(2, 512, generator=gen) < 0.3
    origins = torch.tensor([0.0, 0.0, -3.0]).expand(2, 64, 3)
    dirs = torch.nn.functional.normalize(torch.randn(2, 64, 3, generator=gen) * 0.03
                                         + torch.tensor([0.0, 0.0, 1.0]), dim=-1)

    def weights(o, d, t_near, t_far):
        return cells.bin_weights(o, d, t_near, t_far, n_bins=8, floor=0.05)
    out = render_rays(fog, origins, dirs, box, 12, torch.zeros(3), torch.rand(2, 64, 12, generator=gen),
                      bin_weights=weights)
    # chord through the cube [-1, 1]^3 of a ray from z = -3 towards +z: enters at the face
    # z = -1 and leaves at z = 1 when it stays inside |x|, |y| <= 1 (true for these rays)
    chord = 2.0 / dirs[..., 2]
    exit_xy = origins[..., :2] + dirs[..., :2] * (4.0 / dirs[..., 2:])
    assert exit_xy.abs().max() < 1
    want = 1 - torch.exp(-sigma * chord)
    torch.testing.assert_close(out.opacity, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.rgb, want[..., None] * colour, rtol=1e-5, atol=1e-6)
    assert math.isclose(float(want.min()), 1 - math.exp(-1.4), rel_tol=0.01)
    # and the samples did move: far more of them sit in occupied cells than even ones do
    render_rays(fog, origins, dirs, box, 12, torch.zeros(3), torch.rand(2, 64, 12, generator=gen))
    guided, even = (cells.occupied_at(x).float().mean() for x in seen)
    assert guided > even + 0.3


def test_update_places_each_probe_at_its_offset_in_its_cell():
    # box [0, 2]^3, 2^3 cells of side 1: offset (0.5, 0.25, 1) of cell 5 (x=1, y=0, z=1)
    # is the point (1.5, 0.25, 2.0); probes outside their cell or a wrong shape are refused
    cells = OccupancyCells(torch.tensor([[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]), resolution=2)
    seen = []
    cells.update(lambda x: (seen.append(x), (torch.zeros_like(x), torch.zeros(x.shape[:-1])))[1],
                 torch.ones(1), torch.full((1, 8, 3), 0.5).index_put_(
                     (torch.tensor([0]), torch.tensor([5])), torch.tensor([0.5, 0.25, 1.0])))
    torch.testing.assert_close(seen[0][0, 5], torch.tensor([1.5, 0.25, 2.0]))
    torch.testing.assert_close(seen[0][0, 0], torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="offsets of shape"):
        cells.update(lambda x: None, torch.ones(1), torch.rand(1, 7, 3))

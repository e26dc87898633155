"""Empty-space skipping: packed evaluation, cell lookup and nerfacc's occupancy rule."""
import pytest
import torch

from nfws.render.skipping import OccupancyCells, field_where
from nfws.render.volrend import render_rays


def analytic_field(calls=None):
    """rgb = sigmoid(x), sigma = 1 + x.y.z squared: known values at any point."""
    def field(x):
        if calls is not None:
            calls.append(tuple(x.shape))
        return torch.sigmoid(x), 1.0 + (x[..., 0] * x[..., 1] * x[..., 2]) ** 2
    return field


def test_field_where_evaluates_kept_points_only_and_zeroes_the_rest():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(3, 300, 3, generator=gen)
    keep = torch.rand(3, 300, generator=gen) < torch.tensor([[0.2], [0.5], [0.0]])
    calls = []
    rgb, sigma = field_where(analytic_field(calls), points, keep)
    # one call on the largest per-NeRF count of kept points rounded up to a multiple of
    # ceil(300 / 8) = 38 (at most 8 shapes per N)
    most = int(keep.sum(1).max())
    assert calls == [(3, -(-most // 38) * 38, 3)] and calls[0][1] < 300
    want_rgb, want_sigma = analytic_field()(points)
    torch.testing.assert_close(sigma, want_sigma * keep)
    torch.testing.assert_close(rgb, want_rgb * keep[..., None])
    # keeping everything is the plain field (300 points: the rounding stops at N)
    calls.clear()
    rgb_all, sigma_all = field_where(analytic_field(calls), points, torch.ones_like(keep))
    assert calls == [(3, 300, 3)]
    torch.testing.assert_close(sigma_all, want_sigma)
    torch.testing.assert_close(rgb_all, want_rgb)


def test_field_where_passes_gradients_to_kept_points_only():
    points = torch.randn(2, 10, 3, generator=torch.Generator().manual_seed(1))
    weight = torch.ones(3, requires_grad=True)
    keep = torch.zeros(2, 10, dtype=torch.bool)
    keep[0, 3] = keep[1, 7] = True

    def field(x):
        return torch.sigmoid(x), (x * weight).sum(-1)
    _, sigma = field_where(field, points, keep)
    sigma.sum().backward()
    # d/dw of the kept points' sigma sum is the sum of those two points
    torch.testing.assert_close(weight.grad, points[0, 3] + points[1, 7])


def test_cell_index_by_hand():
    cells = OccupancyCells(torch.tensor([[[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]]), resolution=4)
    # cell size 0.5: (0.6, 1.1, 1.9) -> (1, 2, 3) -> 1 + 4 * (2 + 4 * 3) = 57;
    # outside the box clamps to the border cells: (-1, 5, 1.0) -> (0, 3, 2) -> 0 + 4 * (3 + 8) = 44
    points = torch.tensor([[[0.6, 1.1, 1.9], [-1.0, 5.0, 1.0]]])
    assert cells.cell_of(points).tolist() == [[57, 44]]
    assert cells.keep(points).all()              # before any update every cell is kept


def test_update_follows_nerfacc_moving_maximum_and_threshold():
    box = torch.tensor([[[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]])
    cells = OccupancyCells(box, resolution=8, decay=0.5, threshold=1e-2)

    def ball(x):                                  # density 100 inside radius 0.5, 0 outside
        return torch.zeros_like(x), 100.0 * (x.norm(dim=-1) < 0.5)
    cells.update(ball, torch.tensor([0.1]), torch.Generator().manual_seed(2))
    first = cells.opacity.clone()
    assert set(first.unique().tolist()) <= {0.0, 10.0}
    # cells wholly inside the ball ([0, 0.25]^3 around the centre: corner distance 0.43)
    # are occupied whatever the sample; cells wholly outside (beyond radius 0.5) never are
    centre = cells.cell_of(torch.tensor([[[0.1, 0.1, 0.1], [-0.1, -0.2, 0.1]]]))
    corner = cells.cell_of(torch.tensor([[[0.9, 0.9, 0.9], [-0.9, 0.1, 0.1]]]))
    assert cells.occupied.gather(1, centre).all() and not cells.occupied.gather(1, corner).any()
    # an empty field afterwards: opacity = max(0.5 * previous, 0), threshold min(0.01, mean)
    cells.update(lambda x: (torch.zeros_like(x), torch.zeros(x.shape[:-1])), torch.tensor([0.1]),
                 torch.Generator().manual_seed(3))
    torch.testing.assert_close(cells.opacity, 0.5 * first)
    level = min(1e-2, float((0.5 * first).mean()))
    assert torch.equal(cells.occupied, 0.5 * first > level)


def test_skipping_empty_cells_leaves_the_rendering_unchanged():
    """A field whose density is zero outside a ball renders the same whether or not the
    samples in cells outside the ball are evaluated."""
    gen = torch.Generator().manual_seed(4)
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]).expand(2, 2, 3)

    def ball(x):
        return torch.sigmoid(3 * x), 20.0 * (x.norm(dim=-1) < 0.6)
    cells = OccupancyCells(box, resolution=8)
    cells.update(ball, torch.tensor([0.05, 0.05]), gen)
    # make the kept set a superset of the ball: occupy every cell that touches it
    centres = (torch.stack(torch.meshgrid(*[torch.arange(8)] * 3, indexing="ij"), -1)
               .flip(-1).reshape(-1, 3) + 0.5) / 8 * 2 - 1
    cells.occupied = (centres.norm(dim=-1) < 0.6 + 0.25).expand(2, -1).clone()
    assert 0 < cells.occupied.float().mean() < 0.5
    origins = torch.tensor([0.0, 0.0, -3.0]).expand(2, 64, 3)
    dirs = torch.nn.functional.normalize(torch.randn(2, 64, 3, generator=gen) * 0.15
                                         + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    full = render_rays(ball, origins, dirs, box, 48, torch.zeros(3))
    skipped = render_rays(ball, origins, dirs, box, 48, torch.zeros(3), keep=cells.keep)
    torch.testing.assert_close(skipped.rgb, full.rgb)
    torch.testing.assert_close(skipped.opacity, full.opacity)
    assert full.opacity.max() > 0.5                 # the ball is actually hit


def test_cells_refuse_a_bad_resolution():
    with pytest.raises(ValueError, match="resolution \\(0\\) and refresh interval \\(16\\) must be >= 1"):
        OccupancyCells(torch.zeros(1, 2, 3), resolution=0)


def test_skipping_pays_only_while_every_nerf_is_mostly_empty():
    cells = OccupancyCells(torch.zeros(2, 2, 3), resolution=2)        # 8 cells per NeRF
    cells.occupied = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert cells.pays(0.75) and not cells.pays(0.7)                     # fullest NeRF: 6/8


def test_refreshes_back_off_while_skipping_does_not_pay():
    cells = OccupancyCells(torch.zeros(1, 2, 3), resolution=2, start=40, every=16)
    assert cells.due(40) and not cells.due(41)
    cells.occupied[:] = True                   # density everywhere: nothing to skip
    cells.reschedule(40)
    assert cells.schedule == {"next": 72, "interval": 32}
    cells.reschedule(72)
    assert cells.schedule == {"next": 136, "interval": 64}
    cells.occupied[0, 4:] = False              # half empty: back to every 16 steps
    cells.reschedule(136)
    assert cells.schedule == {"next": 152, "interval": 16}

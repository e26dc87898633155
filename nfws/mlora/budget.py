"""Parameter budgets of the per-instance representations, and the matched MLP width.

The paper compares the representations at matched parameter counts: the standalone MLP's
hidden width is chosen so that it holds about as many entries as the LoRA kinds (§8.1).
Counts here are of every entry of one instance's representation, frozen ones included
(the layouts of ``nfws.mlora.models``). Plain integer arithmetic on the config, no torch,
so the rule files can resolve the width when they build a job's parameters.
"""
from __future__ import annotations


def synthesis_dims(enc_width: int, width: int, n_blocks: int,
                   out_dim: int) -> list[tuple[int, int]]:
    """(d_in, d_out) of every synthesis layer of the base field, in layer order: the input
    layer, two per residual block, the output layer (``nfws.mlora.modulated``)."""
    return [(enc_width, width)] + [(width, width)] * (2 * n_blocks) + [(width, out_dim)]


def lora_n_params(dims: list[tuple[int, int]], rank: int) -> int:
    """Entries of rank-r factors A [r, d_in] and B [d_out, r] on every layer: Σ r(d_in + d_out).
    The same for all four LoRA kinds (the asymmetric mask freezes entries, it keeps them)."""
    return sum(rank * (d_in + d_out) for d_in, d_out in dims)


def mlp_n_params(coord_dim: int, hidden: int, out_dim: int) -> int:
    """Weights and biases of the standalone MLP coord_dim → hidden → hidden → out_dim."""
    return hidden * (coord_dim + 1) + hidden * (hidden + 1) + out_dim * (hidden + 1)


def matched_mlp_hidden(budget: int, coord_dim: int, out_dim: int) -> int:
    """The hidden width whose MLP count is closest to ``budget`` without exceeding it by
    more than one neuron's worth.

    With h the widest MLP that fits (count(h) ≤ budget), the candidates are h and h + 1:
    h + 1 exceeds the budget by less than its last neuron costs (count(h + 1) − count(h)),
    any wider one by more. Of the two the closer count wins; a tie keeps h (within budget).
    """
    if mlp_n_params(coord_dim, 1, out_dim) > budget:
        raise ValueError(f"no MLP width fits a budget of {budget} parameters "
                         f"(width 1 holds {mlp_n_params(coord_dim, 1, out_dim)})")
    h = 1
    while mlp_n_params(coord_dim, h + 1, out_dim) <= budget:
        h += 1
    under = budget - mlp_n_params(coord_dim, h, out_dim)
    over = mlp_n_params(coord_dim, h + 1, out_dim) - budget
    return h + 1 if over < under else h

"""Matched parameter budgets: LoRA and MLP counts by hand, the width rule, its config."""
import pytest
import torch

from nfws.data.targets import ImageTargets, OccupancyTargets
from nfws.mlora.budget import lora_n_params, matched_mlp_hidden, mlp_n_params, synthesis_dims
from nfws.mlora.models import build_representation, lora_on_base, standalone_mlp
from nfws.mlora.modulated import ModulatedField
from nfws.mlora.config import DATASETS, FIELD_DIMS, base_config, fit_config


def test_counts_by_hand():
    # default base: enc 48 -> 48, four 48 x 48 block layers, 48 -> 3 (faces)
    dims = synthesis_dims(48, 48, 2, 3)
    assert dims == [(48, 48)] * 5 + [(48, 3)]
    # rank 4: 4·(48 + 48) per square layer, 4·(48 + 3) for the output layer
    assert lora_n_params(dims, 4) == 5 * 4 * 96 + 4 * 51 == 2124
    assert lora_n_params(synthesis_dims(48, 48, 2, 1), 4) == 5 * 384 + 4 * 49 == 2116
    # MLP 2 -> 42 -> 42 -> 3: 42·2 + 42 + 42·42 + 42 + 3·42 + 3
    assert mlp_n_params(2, 42, 3) == 84 + 42 + 1764 + 42 + 126 + 3 == 2061
    assert mlp_n_params(3, 43, 1) == 129 + 43 + 1849 + 43 + 43 + 1 == 2108


def test_counts_agree_with_the_layouts():
    arch = dict(coord_dim=2, out_dim=3, d_z=4, mapping_layers=1, mapping_width=8,
                n_blocks=2, width=10, enc_width=6, omega0=3.0)
    torch.manual_seed(0)
    model = ModulatedField(arch)
    w, b = model.folded(torch.zeros(4))
    base = {"weights": w, "biases": b, "enc_weight": model.encoder.proj.weight,
            "enc_bias": model.encoder.proj.bias, "omega0": 3.0, "n_blocks": 2}
    for mult in (False, True):
        for asym in (False, True):
            rep = lora_on_base(mult, asym, base, 3, 6.0, "identity", 0.1, 0)
            # 3·(6 + 10) + 4 · 3·(10 + 10) + 3·(10 + 3)
            assert rep.n_params == lora_n_params(synthesis_dims(6, 10, 2, 3), 3) == 327
    for asym in (False, True):
        assert standalone_mlp(asym, 2, 3, 7, 3.0, 6.0, 0).n_params == mlp_n_params(2, 7, 3) == 101


def test_matched_width_rule():
    # faces 2124: 42 -> 2061 (63 under), 43 -> 2153 (29 over, less than one neuron) -> 43
    assert matched_mlp_hidden(2124, 2, 3) == 43
    # shapes 2116: 43 -> 2108 (8 under), 44 -> 2201 (85 over) -> 43
    assert matched_mlp_hidden(2116, 3, 1) == 43
    # count(10) = 173, count(11) = 201 for 2 -> h -> h -> 3
    assert matched_mlp_hidden(173, 2, 3) == 10        # exact
    assert matched_mlp_hidden(187, 2, 3) == 10        # 14 under vs 14 over: stay within budget
    assert matched_mlp_hidden(188, 2, 3) == 11        # 13 over beats 15 under
    assert matched_mlp_hidden(200, 2, 3) == 11        # 1 over
    with pytest.raises(ValueError, match="no MLP width fits a budget of 10"):
        matched_mlp_hidden(10, 2, 3)                  # width 1 holds 11


def lora_section(mlp_hidden="absent"):
    fit = {"rank": 4, "kappa": 6.0, "mask_seed": 0, "mlora_init_std": 0.1}
    if mlp_hidden != "absent":
        fit["mlp_hidden"] = mlp_hidden
    return {"base": {"enc_width": 48, "width": 48, "n_blocks": 2}, "fit": fit,
            "datasets": {"faces": {"omega0": 32.0, "mlp_template_init": True},
                         "shapenet": {"omega0": 40.0, "mlp_template_init": False}}}


def test_fit_config_derives_the_width_unless_set():
    for unset in (None, "absent"):
        assert fit_config(lora_section(unset), "faces")["mlp_hidden"] == 43
        assert fit_config(lora_section(unset), "shapenet")["mlp_hidden"] == 43
    assert fit_config(lora_section(42), "faces")["mlp_hidden"] == 42
    fit = fit_config(lora_section(None), "faces")
    rep = build_representation("mlp", fit, 2, 3, None)
    assert rep.n_params == 2153
    with pytest.raises(ValueError, match="mlp_hidden is null"):
        build_representation("mlp", {**fit, "mlp_hidden": None}, 2, 3, None)


def test_a_datasets_own_base_and_fit_keys_win_for_that_dataset_only():
    """faces at width 96 and rank 2: LoRA holds 2·((48 + 96) + 4·(96 + 96) + (96 + 3)) =
    2,022 entries; the MLP 2 → h → h → 3 holds 3h + h(h + 1) + 3(h + 1): 1,971 at h = 41,
    2,061 at h = 42, which is 39 over against 51 under, so 42."""
    lora = lora_section(None)
    lora["datasets"]["faces"].update(base={"width": 96}, fit={"rank": 2, "lr_start": 0.03})
    assert base_config(lora, "faces")["width"] == 96
    assert base_config(lora, "shapenet")["width"] == 48
    faces, shapes = fit_config(lora, "faces"), fit_config(lora, "shapenet")
    assert (faces["rank"], faces["lr_start"]) == (2, 0.03)
    assert shapes["rank"] == 4 and "lr_start" not in shapes
    assert faces["mlp_hidden"] == 42 and shapes["mlp_hidden"] == 43


def test_field_dims_are_the_targets_dims():
    kinds = {ImageTargets.kind: ImageTargets, OccupancyTargets.kind: OccupancyTargets}
    for modality in DATASETS.values():
        cls = kinds[modality]
        assert FIELD_DIMS[modality] == (cls.coord_dim, cls.out_dim)

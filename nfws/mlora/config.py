"""What the mLoRA and diffusion jobs read from config: the datasets and their modalities,
the per-dataset base-field and fitting sections, the diffusion variants (also used by the
workflow's plan)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from nfws.mlora.budget import lora_n_params, matched_mlp_hidden, synthesis_dims


#: The modality of each dataset's targets.
DATASETS = {"faces": "image", "shapenet": "occupancy"}
#: (coordinate, output) sizes of each modality's fields (``nfws.data.targets``).
FIELD_DIMS = {"image": (2, 3), "occupancy": (3, 1)}
#: Published single-category generation tables (paper Table 3), by class name.
SINGLE_CATEGORY_TABLES = {"airplane": "ShapeNet-Airplane"}
#: Diffusion variants: a representation, or the ablation of the hierarchical encoder.
ABLATION = "mlora_asym_no_encoder"


def check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"config lora.datasets: unknown dataset {dataset!r}; known {sorted(DATASETS)}")


def dataset_section(lora: Mapping, dataset: str, name: str) -> dict:
    """``lora.<name>`` (``base`` or ``fit``) with the dataset's own ``<name>`` keys over it."""
    check_dataset(dataset)
    return {**lora[name], **lora["datasets"][dataset].get(name, {})}


def base_config(lora: Mapping, dataset: str) -> dict:
    """The base-field section, with the dataset's own ``base`` keys over it and its Fourier
    frequency."""
    return {**dataset_section(lora, dataset, "base"),
            "omega0": float(lora["datasets"][dataset]["omega0"])}


def fit_config(lora: Mapping, dataset: str) -> dict:
    """The fitting section, with the dataset's own ``fit`` keys over it, its frequency, MLP
    initialisation rule and MLP width: ``mlp_hidden``, or when it is null (or absent)
    :func:`matched_mlp_hidden`."""
    fit = dataset_section(lora, dataset, "fit")
    entry = lora["datasets"][dataset]
    fit.update(omega0=float(entry["omega0"]), mlp_template_init=bool(entry["mlp_template_init"]))
    if fit.get("mlp_hidden") is None:
        fit["mlp_hidden"] = matched_mlp_hidden_for(lora, dataset)
    return fit


def matched_mlp_hidden_for(lora: Mapping, dataset: str) -> int:
    """The MLP width matching the LoRA kinds' parameter count on this dataset's base
    field (``nfws.mlora.budget.matched_mlp_hidden``)."""
    coord_dim, out_dim = FIELD_DIMS[DATASETS[dataset]]
    base = base_config(lora, dataset)
    rank = dataset_section(lora, dataset, "fit")["rank"]
    dims = synthesis_dims(int(base["enc_width"]), int(base["width"]), int(base["n_blocks"]),
                          out_dim)
    return matched_mlp_hidden(lora_n_params(dims, int(rank)), coord_dim, out_dim)


def variant_kind(variant: str) -> tuple[str, str]:
    """(representation, denoiser) of a diffusion variant."""
    if variant == ABLATION:
        return "mlora_asym", "dit"
    return variant, "auto"


def published_generation_dataset(dataset: str, classes: Sequence[str]) -> str | None:
    """The paper's generation table for our data: FFHQ for faces; for shapes
    ShapeNet-Multi (several classes) or the single category's table (None if it has none)."""
    check_dataset(dataset)
    if dataset == "faces":
        return "FFHQ"
    if len(classes) > 1:
        return "ShapeNet-Multi"
    return SINGLE_CATEGORY_TABLES.get(classes[0]) if classes else None

"""What the GMN jobs read from config: the Table 5 baselines, and which architectures an
encoder trains on and embeds (also used by the workflow's plan)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence


#: Table 5 baselines: the method name printed in the table and the family it reads.
BASELINE_METHODS = {"nf2vec": ("nf2vec", "MLP"), "cardace": ("Cardace2024", "TRI")}


def family_archs(trainset: str, archs: Mapping[str, dict], train_archs: Sequence[str]) -> list[str]:
    """Architectures an encoder trained on ``trainset`` embeds: ALL -> every one; an
    architecture -> itself and the unseen architectures of its family."""
    if trainset == "ALL":
        return list(archs)
    if trainset not in train_archs:
        raise ValueError(f"config gmn.single_arch_sets: {trainset!r} is not a training architecture")
    family = archs[trainset]["family"]
    return [a for a, entry in archs.items()
            if a == trainset or (a not in train_archs and entry["family"] == family)]


def training_archs(trainset: str, train_archs: Sequence[str]) -> list[str]:
    return list(train_archs) if trainset == "ALL" else [trainset]

# NeRF farm: one batched training job per (architecture, shard).

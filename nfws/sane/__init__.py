"""SANE on hash-grid NeRFs: rotated-object NeRFs, weight tokens, a transformer autoencoder."""

"""nfws: weight-space learning on neural fields."""
__version__ = "0.1.0"

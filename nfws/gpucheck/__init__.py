"""The one-shot GPU check: ``python -m nfws.gpucheck --out DIR`` (docs/gpucheck.md)."""

"""Every object source of the manifest, registered: import ``build_manifest`` from here.

``nfws.data.manifest`` holds the registry (``SOURCES``, ``register_source``) and knows no
scanner module; each scanner module registers its sources when imported, and this module
imports them all, so a manifest built through it knows every configured source.
"""
from nfws.data import faces, images, synthetic3d  # noqa: F401  (they register themselves)
from nfws.data.manifest import SOURCES, build_manifest

__all__ = ["SOURCES", "build_manifest"]

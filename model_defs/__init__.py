"""Model definitions: one short file per family, each registering functions that return dictionaries.

Importing this package registers every model with ``visionfw``.
"""
from model_defs import bicubic, espcn, fsrcnn, ikc, srcnn, srresnet, vdsr  # noqa: F401

"""Model definitions: one short file per family, each registering functions that return dictionaries.

The files are imported by :mod:`visionfw.plugins` the first time a model name is looked up;
a new file here needs no other change to be found.
"""

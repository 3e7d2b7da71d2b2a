"""Test methods: registered runners of one or more networks given by role, one file per
method; :mod:`visionfw.plugins` imports them. See :mod:`visionfw.methods.base`."""

"""Training recipes, one file per method; each registers itself with
:func:`~visionfw.recipes.base.register_recipe`. :mod:`visionfw.plugins` imports them."""

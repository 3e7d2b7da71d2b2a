"""The link-dictionary graph: schema, registry, validator, builder and printer."""

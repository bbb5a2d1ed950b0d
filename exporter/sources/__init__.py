"""The platform readers: one package per platform (api, reader, options),
the shared reading kit beside them, and `registry.PLATFORMS`, the one list
of platforms."""

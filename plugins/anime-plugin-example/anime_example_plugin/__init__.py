"""anime-plugin-example: what a third-party anime-core plugin looks like.

Modules: ``plugin`` (the ``@hookimpl`` functions only, no torch), ``generator`` (the image
transformation network of Johnson et al. 2016 and its builder), ``losses`` (Gram style loss, total
variation), ``task`` (the perceptual-loss training step) and ``config`` (the typed config schema).
"""

__version__ = "0.1.0"

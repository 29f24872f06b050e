"""Model families. Importing this package registers each one with `gan_models.registry`."""

from . import dcgan  # noqa: F401

"""Model families. Importing this package registers each one with `gan_models.registry`."""

from . import (  # noqa: F401
    dcgan,  # noqa: F401
    fastgan,
    stylegan2,  # noqa: F401
    stylegan3,  # noqa: F401
    vae,
    vqvae,
)

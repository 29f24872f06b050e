"""Model families. Importing this package registers each one with `gan_models.registry`."""

from . import (  # noqa: F401
    biggan,
    dcgan,  # noqa: F401
    fast_style,
    fastgan,
    pix2pix,
    progan,
    stackgan,
    stylegan2,  # noqa: F401
    stylegan3,  # noqa: F401
    vae,
    vqvae,
)

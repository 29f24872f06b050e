"""Model families. Importing this package registers each one with `gan_models.registry`."""

from . import dcgan  # noqa: F401
from . import stylegan2  # noqa: F401
from . import stylegan3  # noqa: F401
from . import vae, vqvae  # noqa: F401

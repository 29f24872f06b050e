"""Sub-commands of `python -m gan_models`."""

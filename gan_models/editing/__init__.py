"""Editing: bring images into a model's latent space and move latents along meaningful
directions.

`inversion` (project images into z, w or w+ by optimisation, or refine an encoder's guess),
`losses` and `perceptual` (what a projection minimises), `directions` (SeFa, GANSpace, class
and user directions, their files, and applying them). Import by module, e.g.
`from gan_models.editing.inversion import project`.
"""

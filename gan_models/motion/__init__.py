"""Motion above the model: everything that moves through latent space.

`interpolation` (lerp/slerp tensor math), `paths` (keyframe splines, easing, looping noise
walks), `animation` (the same on latent batches: transitions, keyframe paths, walks) and
`style_mixing` (W+ rows from two batches). These modules use a model only through its public
interface; import them by module, e.g. `from gan_models.motion.animation import path_latents`.
"""

"""Tiny real models with random weights, saved in the real repositories' folder layouts: one module per family
(`sd`: SVD, AnimateDiff, ModelScope; `wan`; `ltx`; `ltx2`), with what they share in `common`.

No weights can be downloaded here, so the demo model (`video-gen models demo`), `video-gen selftest`, the tests
and the CPU benchmarks build the same diffusers/transformers classes as the real models at toy sizes and
`save_pretrained` them as the real repositories are laid out. They are then loaded through the user's code path,
never handed to the engine as objects. Importing this package imports nothing; each builder imports torch.
"""

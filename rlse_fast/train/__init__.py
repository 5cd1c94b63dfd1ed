"""Training of the StyleGAN2 face prior: `data` (cached face folders) and `prior` (the loop)."""

"""StyleGAN2 (Karras et al. 2020): generator, discriminator and their state-dict layout (`state_dict`)."""
from .discriminator import Discriminator, DiscriminatorConfig
from .generator import Generator, GeneratorConfig, config_dict

__all__ = ["Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig", "config_dict"]

"""StyleGAN2 (Karras et al. 2020): the networks (`networks`) and their state-dict layout (`state_dict`)."""
from .networks import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, config_dict

__all__ = ["Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig", "config_dict"]

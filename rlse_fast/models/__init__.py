from .stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

__all__ = ["Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig"]

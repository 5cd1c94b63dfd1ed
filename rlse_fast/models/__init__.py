from .stylegan2 import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

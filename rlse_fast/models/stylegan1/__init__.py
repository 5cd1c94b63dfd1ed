"""StyleGAN (v1, Karras et al. 2019): generator, progressive discriminator, their layers and their
state-dict layout. The package exports the generator's names, as the module `models.stylegan1` did."""
from .generator import ARCHITECTURE, Generator, GeneratorConfig, MappingNetwork, SynthesisNetwork, config_dict

__all__ = ["ARCHITECTURE", "Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork", "config_dict"]

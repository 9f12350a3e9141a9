"""audioldm: audio latent diffusion (mel VAE, conditional U-Net, vocoders) with recipes and a generation API."""

__version__ = "0.1.0"

"""Build diffusers / transformers modules configured like ours. Our U-Net, VAE and HiFi-GAN use the same parameter
names, so ``reference.load_state_dict(ours.state_dict(), strict=True)`` works and both compute the same function
(parity tests and bench/ scripts rely on this)."""

from __future__ import annotations

from ..unet import UNetConfig
from ..vae import VAEConfig
from ..vocoders.hifigan import HiFiGANConfig

__all__ = ["diffusers_unet", "diffusers_vae", "speecht5_hifigan"]


def diffusers_unet(c: UNetConfig):
    """A random ``diffusers.UNet2DConditionModel`` with our U-Net's structure (AudioLDM's settings:
    class_embed_type="simple_projection", class_embeddings_concat for cond_mode "concat")."""
    from diffusers import UNet2DConditionModel

    levels = range(len(c.block_channels))
    down = ["CrossAttnDownBlock2D" if i in c.attention_levels else "DownBlock2D" for i in levels]
    up = ["CrossAttnUpBlock2D" if i in c.attention_levels else "UpBlock2D" for i in reversed(levels)]
    return UNet2DConditionModel(
        in_channels=c.in_channels, out_channels=c.out_channels, down_block_types=down, up_block_types=up,
        block_out_channels=c.block_channels, layers_per_block=c.num_res_blocks, norm_num_groups=c.norm_groups,
        attention_head_dim=[ch // c.head_dim for ch in c.block_channels],  # diffusers reads this as the head count
        cross_attention_dim=c.block_channels if c.context_dim is None else c.context_dim,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=c.cond_dim,
        class_embeddings_concat=c.cond_mode == "concat", flip_sin_to_cos=True, freq_shift=0)


def diffusers_vae(c: VAEConfig):
    """A random ``diffusers.AutoencoderKL`` with our VAE's structure (1 input channel: the mel image)."""
    from diffusers import AutoencoderKL

    n = len(c.ch_mult)
    return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=c.z_channels,
                         block_out_channels=[c.ch * m for m in c.ch_mult], layers_per_block=c.num_res_blocks,
                         down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
                         norm_num_groups=c.norm_groups)


def speecht5_hifigan(c: HiFiGANConfig):
    """A random ``transformers.SpeechT5HifiGan`` (the vocoder class diffusers' AudioLDM pipeline uses)."""
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    return SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=c.mel.n_mels, sampling_rate=c.mel.sample_rate, upsample_initial_channel=c.upsample_initial_channel,
        upsample_rates=c.upsample_rates, upsample_kernel_sizes=c.upsample_kernel_sizes,
        resblock_kernel_sizes=c.resblock_kernel_sizes, resblock_dilation_sizes=c.resblock_dilation_sizes,
        leaky_relu_slope=c.leaky_relu_slope, normalize_before=False)).eval()

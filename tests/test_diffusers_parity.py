"""Our VAE and U-Net keep diffusers' parameter names and compute the same functions: a tiny random model's weights
load strictly into diffusers' AutoencoderKL / UNet2DConditionModel and give the same outputs (the basis for loading
AudioLDM's public weights)."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from audioldm.unet import UNET_PRESETS, UNet  # noqa: E402
from audioldm.vae import VAE_PRESETS, MelVAE  # noqa: E402


def diffusers_unet(c):
    down = ["CrossAttnDownBlock2D" if i in c.attention_levels else "DownBlock2D" for i in range(len(c.block_channels))]
    up = ["CrossAttnUpBlock2D" if i in c.attention_levels else "UpBlock2D"
          for i in reversed(range(len(c.block_channels)))]
    return diffusers.UNet2DConditionModel(
        in_channels=c.in_channels, out_channels=c.out_channels, down_block_types=down, up_block_types=up,
        block_out_channels=c.block_channels, layers_per_block=c.num_res_blocks, norm_num_groups=c.norm_groups,
        attention_head_dim=[ch // c.head_dim for ch in c.block_channels],
        cross_attention_dim=c.block_channels if c.context_dim is None else c.context_dim,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=c.cond_dim,
        class_embeddings_concat=c.cond_mode == "concat", flip_sin_to_cos=True, freq_shift=0)


@pytest.mark.parametrize("kw", [{}, {"head_dim": 8, "num_res_blocks": 2}, {"context_dim": 24}])
def test_unet_matches_diffusers(kw):
    torch.manual_seed(0)
    cfg = UNET_PRESETS["tiny"](**kw)
    ours, ref = UNet(cfg).eval(), diffusers_unet(cfg).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x, t, pooled = torch.randn(2, 4, 8, 16), torch.tensor([10.0, 700.0]), torch.randn(2, 32)
    tokens = torch.randn(2, 5, 24) if cfg.context_dim else None
    with torch.no_grad():
        a = ours(x, t, {"pooled": pooled, "tokens": tokens, "mask": None})
        b = ref(x, t, encoder_hidden_states=tokens, class_labels=pooled).sample
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_vae_matches_diffusers():
    torch.manual_seed(0)
    cfg = VAE_PRESETS["tiny"]()
    cfg.input_shift, cfg.input_scale = 0.0, 1.0  # AudioLDM feeds raw log-mel
    ours = MelVAE(cfg).eval()
    n = len(cfg.ch_mult)
    ref = diffusers.AutoencoderKL(in_channels=1, out_channels=1, latent_channels=cfg.z_channels,
                                  block_out_channels=[cfg.ch * m for m in cfg.ch_mult],
                                  layers_per_block=cfg.num_res_blocks, down_block_types=["DownEncoderBlock2D"] * n,
                                  up_block_types=["UpDecoderBlock2D"] * n, norm_num_groups=cfg.norm_groups).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    mel, z = torch.randn(2, 64, 40) - 5, torch.randn(2, 4, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(mel).mean,
                                   ref.encode(mel.transpose(1, 2).unsqueeze(1)).latent_dist.mean, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.decode(z), ref.decode(z).sample.squeeze(1).transpose(1, 2), atol=1e-4, rtol=0)

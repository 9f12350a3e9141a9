"""Our VAE and U-Net keep diffusers' parameter names and compute the same functions: a tiny random model's weights
load strictly into diffusers' AutoencoderKL / UNet2DConditionModel and give the same outputs (the basis for loading
AudioLDM's public weights)."""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from audioldm.convert.diffusers import diffusers_unet, diffusers_vae  # noqa: E402
from audioldm.unet import UNET_PRESETS, UNet  # noqa: E402
from audioldm.vae import VAE_PRESETS, MelVAE  # noqa: E402


@pytest.mark.parametrize("kw", [{}, {"head_dim": 8, "num_res_blocks": 2}, {"context_dim": 24}, {"num_heads": 4}])
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
    ref = diffusers_vae(cfg).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    mel, z = torch.randn(2, 64, 40) - 5, torch.randn(2, 4, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(mel).mean,
                                   ref.encode(mel.transpose(1, 2).unsqueeze(1)).latent_dist.mean, atol=1e-4, rtol=0)
        torch.testing.assert_close(ours.decode(z), ref.decode(z).sample.squeeze(1).transpose(1, 2), atol=1e-4, rtol=0)

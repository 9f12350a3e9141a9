"""Vocoders: one slot, four implementations.

**Contract.** A vocoder is an ``nn.Module`` with a ``mel_config`` attribute whose ``forward(mel)`` maps log-mel
``[B, n_mels, F]`` (computed by :class:`audioldm.mel.MelFrontend` with that MelConfig) to a waveform ``[B, F * hop]``
float32 in about [-1, 1]. Sample ``t`` of the output lines up with sample ``t`` of the audio the mel came from.
Trained vocoders save and load as a component folder (``config.json`` + ``model.safetensors``) with
``save_pretrained`` / ``load_vocoder``.

- :class:`GriffinLimVocoder` — no training; the mel's peak fit, phase from a random or phase-gradient start
  (``phase.py``). The shipped vocoder slot (``audioldm/pretrained/vocoder-16k``, :func:`universal_vocoder`).
- :class:`HiFiGAN` — transposed-convolution generator with multi-receptive-field residual blocks (Kong et al. 2020).
- :class:`Vocos` — ConvNeXt backbone at frame rate + inverse-STFT head (Siuzdak 2023); far cheaper on CPU.
- :class:`SpectralVocoder` — a learned correction of the peak-fit STFT magnitude, phase by the phase-gradient
  heuristic and a few fast Griffin-Lim iterations (``recipes/vocoder`` trains it).
"""

from .griffinlim import GriffinLimVocoder
from .hifigan import HIFIGAN_PRESETS, HiFiGAN, HiFiGANConfig
from .spectral import SPECTRAL_PRESETS, SpectralVocoder, SpectralVocoderConfig
from .vocos import VOCOS_PRESETS, Vocos, VocosConfig

__all__ = ["GriffinLimVocoder", "HiFiGAN", "HiFiGANConfig", "HIFIGAN_PRESETS", "Vocos", "VocosConfig",
           "VOCOS_PRESETS", "SpectralVocoder", "SpectralVocoderConfig", "SPECTRAL_PRESETS", "load_vocoder",
           "build_vocoder", "universal_vocoder"]

_KINDS = {"hifigan": (HiFiGAN, HiFiGANConfig), "vocos": (Vocos, VocosConfig),
          "spectral": (SpectralVocoder, SpectralVocoderConfig)}


def build_vocoder(kind: str, preset: str):
    """A fresh (untrained) vocoder: kind 'hifigan', 'vocos' or 'spectral', preset name from its PRESETS."""
    presets = {"hifigan": HIFIGAN_PRESETS, "vocos": VOCOS_PRESETS, "spectral": SPECTRAL_PRESETS}
    if kind not in presets:
        raise ValueError(f"unknown vocoder kind {kind!r}; known: {sorted(presets)}")
    if preset not in presets[kind]:
        raise ValueError(f"unknown {kind} preset {preset!r}; known: {sorted(presets[kind])}")
    cls, _ = _KINDS[kind]
    return cls(presets[kind][preset]())


def load_vocoder(folder, device=None, dtype=None):
    """Load a vocoder component folder, whichever kind its config.json names."""
    import json
    from pathlib import Path

    from ..weights import WeightsError, load_component

    cfg = Path(folder) / "config.json"
    if not cfg.is_file():
        raise WeightsError(f"{cfg}: missing vocoder config")
    try:
        kind = json.loads(cfg.read_text()).get("kind")
    except (json.JSONDecodeError, AttributeError) as e:
        raise WeightsError(f"{cfg}: invalid JSON ({e})") from None
    if kind == "griffinlim":
        return GriffinLimVocoder.from_pretrained(folder)
    if kind not in _KINDS:
        raise WeightsError(f"{cfg}: \"kind\" is {kind!r}; expected one of {sorted(_KINDS) + ['griffinlim']}")
    cls, cfg_cls = _KINDS[kind]
    older = {"phase": "frame"} if kind == "vocos" else None  # Vocos folders from before VocosConfig.phase
    return load_component(folder, cls, cfg_cls, kind, device=device, dtype=dtype, older_defaults=older)


def universal_vocoder(device=None):
    """The 16 kHz vocoder slot shipped in the package (audioldm/pretrained/vocoder-16k; Griffin-Lim today)."""
    from ..pretrained import UNIVERSAL_VOCODER, shipped_path
    return load_vocoder(shipped_path(UNIVERSAL_VOCODER), device=device)

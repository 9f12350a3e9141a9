"""CLAP audio conditioning, AudioLDM's central trick: train the U-Net on the CLAP *audio* embedding of each clip (no
captions needed), then generate from the CLAP *text* embedding of a prompt. Both towers project into CLAP's joint
space, where matching audio and text embeddings are close in cosine.

- :func:`clap_audio_embedder` loads only the audio tower of a local transformers ``ClapModel`` folder (the text
  weights are never read) with CLAP's own feature extractor, and embeds waveforms at CLAP's own rate: clips are
  resampled to it (AudioLDM resamples its 16 kHz clips to 48 kHz the same way).
- :func:`check_text_tower` refuses a CLAP folder whose text tower is not the source model's text encoder: audio
  embeddings of another CLAP live in another space, and the model would generate from text it never matched.
- :class:`AudioEmbeddingConditioner` stands in for the text conditioner during training: its inputs are the cached
  audio embeddings [B, D] (stored in the latent cache, one per clip).

**Unit norm.** Both embeddings are L2-normalised, as AudioLDM and diffusers' AudioLDMPipeline do (the CLAP text
conditioner normalises the text embedding; the audio embedding is normalised here), so training and generation
conditions have the same norm and only their direction carries meaning.

**Null embedding.** Classifier-free guidance drops the condition to the CLAP *text* embedding of the empty prompt "",
computed once by the source model's text encoder. AudioLDM's unconditional token is the same vector, and so is the
default negative prompt of diffusers' pipeline, so guidance at generation pushes away from exactly what training
dropped to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import resample

__all__ = ["ClapError", "clap_audio_embedder", "check_text_tower", "AudioEmbeddingConditioner"]


class ClapError(ValueError):
    """A CLAP folder that is missing, incomplete or does not match the model it should condition."""


def _clap_folder(folder) -> Path:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ClapError(f"{folder}: not a local transformers ClapModel folder (no config.json)")
    if not any(folder.glob("*.safetensors")):
        raise ClapError(f"{folder}: no *.safetensors weights (pickled weights are never loaded)")
    if not (folder / "preprocessor_config.json").is_file():
        raise ClapError(f"{folder}: no preprocessor_config.json; CLAP's feature extractor (ClapFeatureExtractor) "
                        f"must be saved with the model (processor.save_pretrained)")
    return folder


def clap_audio_embedder(folder, device=None, batch_size: int = 16):
    """``embed(wavs [B, T] float32, sample_rate) -> [B, D]`` unit-norm projected audio embeddings from the audio tower
    of the ClapModel folder ``folder`` (``ClapAudioModelWithProjection``; the text tower is not loaded). Each wave is
    resampled to the feature extractor's rate first. ``embed.name`` is the folder's name; ``embed.dim`` is D."""
    import transformers

    folder = _clap_folder(folder)
    cfg = transformers.AutoConfig.from_pretrained(str(folder))
    if getattr(cfg, "model_type", "") != "clap":
        raise ClapError(f"{folder}: model_type {getattr(cfg, 'model_type', None)!r}; --clap needs a ClapModel with "
                        f"both towers (model_type 'clap'); a diffusers AudioLDM folder ships only the text tower")
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # not the load report listing every text weight as unused
    try:
        model = transformers.ClapAudioModelWithProjection.from_pretrained(str(folder), use_safetensors=True).eval()
    finally:
        transformers.logging.set_verbosity(level)
    if device is not None:
        model.to(device)
    fe = transformers.ClapFeatureExtractor.from_pretrained(str(folder))
    rate = int(fe.sampling_rate)

    @torch.no_grad()
    def embed(wavs: torch.Tensor, sample_rate: int) -> torch.Tensor:
        out = []
        for s in range(0, len(wavs), batch_size):
            batch = [resample(np.asarray(w, dtype=np.float32), int(sample_rate), rate)
                     for w in torch.as_tensor(wavs[s:s + batch_size]).float().cpu().numpy()]
            feats = fe(batch, sampling_rate=rate, return_tensors="pt")
            dev = next(model.parameters()).device
            e = model(**{k: v.to(dev) for k, v in feats.items()}).audio_embeds
            out.append(F.normalize(e.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, model.config.projection_dim)

    embed.name, embed.dim, embed.sampling_rate = folder.name, int(model.config.projection_dim), rate
    return embed


def check_text_tower(folder, text_model: nn.Module, atol: float = 1e-3) -> None:
    """Raise :class:`ClapError` unless the text tower in the ClapModel folder ``folder`` (keys ``text_model.*`` and
    ``text_projection.*``) equals ``text_model``'s weights (a ``ClapTextModelWithProjection``: the source model's text
    encoder), within ``atol`` (float16 storage rounding); the message names the first mismatching tensors."""
    from safetensors import safe_open

    folder = _clap_folder(folder)
    ours = {k: v for k, v in text_model.state_dict().items() if k.startswith(("text_model.", "text_projection."))}
    if not ours:
        raise ClapError(f"the model's text encoder ({type(text_model).__name__}) is not a CLAP text tower; "
                        f"--conditioning clap-audio needs a model conditioned on CLAP text embeddings")
    theirs = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                if k in ours:
                    theirs[k] = st.get_tensor(k)
    params = {k for k, _ in text_model.named_parameters()}  # buffers (position ids) may be absent from old files
    missing = sorted(k for k in ours if k in params and k not in theirs)
    bad = [f"{k}: shape {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}" if theirs[k].shape != ours[k].shape
           else f"{k}: differs by {float((theirs[k].float() - ours[k].float().cpu()).abs().max()):.3g}"
           for k in sorted(theirs) if theirs[k].shape != ours[k].shape
           or not torch.allclose(theirs[k].float(), ours[k].float().cpu(), atol=atol, rtol=0)]
    if missing or bad:
        what = [f"missing {missing[:5]}"] if missing else []
        what += [f"{len(bad)} tensor(s) differ, first {bad[:3]}"] if bad else []
        raise ClapError(f"{folder}: its text tower is not the model's text encoder ({'; '.join(what)}); its audio "
                        f"embeddings would not be in the space the model generates from. Use the CLAP checkpoint "
                        f"the model's text encoder came from")


class AudioEmbeddingConditioner(nn.Module):
    """Training-time conditioner over precomputed embeddings: ``forward(embeddings [B, D]) -> {"pooled": [B, D]}``
    (unit norm, as the CLAP text conditioner's) and ``null_condition(B)`` = ``null`` [1, D] repeated. No parameters."""

    def __init__(self, null: torch.Tensor):
        super().__init__()
        self.register_buffer("null", null.reshape(1, -1).float().clone(), persistent=False)
        self.config = None

    @property
    def pooled_dim(self) -> int:
        return int(self.null.shape[-1])

    @property
    def token_dim(self):
        return None

    def forward(self, embeddings) -> dict:
        e = torch.as_tensor(embeddings).float().to(self.null.device)
        if e.ndim != 2 or e.shape[1] != self.pooled_dim:
            raise ValueError(f"audio embeddings must be [B, {self.pooled_dim}], got {tuple(e.shape)}")
        return {"pooled": F.normalize(e, dim=-1)}

    def null_condition(self, batch_size: int) -> dict:
        return {"pooled": self.null.expand(batch_size, -1)}

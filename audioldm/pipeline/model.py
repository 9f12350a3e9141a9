"""The inference object: :class:`AudioLDM` loads a model folder (``from_pretrained``), writes one
(``save_pretrained``) and generates audio from prompts or labels (``generate``). Around it: the folder format in
model_folder.py, the diffusers import in convert/diffusers.py, request parsing in requests.py, settings, seeds and
the result type in settings.py, and audio-to-audio editing (``transform``, ``inpaint``, ``super_resolve``) in
editing.py, whose methods the class inherits.

Precision: weights stay float32; ``dtype`` (bfloat16 / float16) is the autocast compute type of the U-Net and VAE
(float16 only on CUDA/MPS). The mel front-end and the vocoder always run in float32.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..diffusion import LatentDiffusion, NoiseSchedule
from ..errors import DistilledRangeError, PipelineError
from ..mel import MelConfig, MelFrontend
from ..model_folder import read_model_folder, resolve_folder, write_model_folder
from ..sampling import SigmaTable, guided, initial_noise, noise_sampler, sample
from ..unet import UNet
from ..vae import MelVAE
from ..weights import WeightsError
from .accel import DETERMINISTIC, GraphedLoop, compile_unet
from .editing import EditingMethods
from .longform import decode_chunked, windowed_denoiser
from .requests import (
    build_conditions,
    conditioning_kind,
    normalise_requests,
    reads_prompts,
    request_reads,
)
from .settings import (
    DistilledRange,
    GenerationDefaults,
    GenerationResult,
    resolve_settings,
    seeds_for,
)

__all__ = ["AudioLDM"]


def _resolve_device(device) -> torch.device:
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


class AudioLDM(EditingMethods):
    """VAE + conditional U-Net + noise schedule + conditioner + vocoder, ready to generate."""

    def __init__(self, vae: MelVAE, unet: UNet, schedule: NoiseSchedule, conditioner: torch.nn.Module,
                 vocoder: torch.nn.Module, defaults: GenerationDefaults | None = None, name: str = "audioldm-model",
                 info: dict | None = None, distilled: DistilledRange | None = None):
        self.vae, self.unet, self.schedule = vae.eval(), unet.eval(), schedule
        self.conditioner, self.vocoder = conditioner.eval(), vocoder.eval()
        self.defaults = defaults or GenerationDefaults()
        self.name = name
        self.info = dict(info or {})  # free-form facts saved in model_index.json "info" (training data, licence)
        self.distilled = distilled  # a guidance- and step-distilled student (recipes/distill): its range, its sigmas
        self.diffusion = LatentDiffusion(unet, schedule)
        self.frontend = MelFrontend(vae.mel_config)
        self.dtype = torch.float32
        self.loras: list = []  # (Adapter, scale) merged into the U-Net by load_lora, in order
        self.graphs = False  # accelerate(): replay sampling loops as CUDA graphs
        self.source = None  # the folder this model was loaded from (from_pretrained), for adapters' base check
        self.teacher_folder = None  # the default model only: where its teacher is, to answer what it cannot
        self._teacher = None
        self._graph_cache: dict = {}
        self._check()

    # ---- consistency of the parts ----------------------------------------------------------------------------------
    def _check(self) -> None:
        vae_c, unet_c = self.vae.config, self.unet.config
        try:
            vae_c.mel.check_same(self.vocoder.mel_config, "vae and vocoder")
        except ValueError as e:
            raise PipelineError(f"vocoder: {e}") from None
        checks = [("unet", "in_channels", unet_c.in_channels, "vae z_channels", vae_c.z_channels),
                  ("unet", "out_channels", unet_c.out_channels, "vae z_channels", vae_c.z_channels),
                  ("unet", "cond_dim", unet_c.cond_dim, "conditioner pooled_dim", self.conditioner.pooled_dim),
                  ("unet", "context_dim", unet_c.context_dim, "conditioner token_dim", self.conditioner.token_dim)]
        for comp, key, have, what, want in checks:
            if have != want:
                raise PipelineError(f"{comp}: config {key}={have} does not match the {what} ({want})")
        if bool(unet_c.guidance_embed) != (self.distilled is not None):
            raise PipelineError("unet: a U-Net with guidance_embed needs the model's \"distilled\" range, and only "
                                "such a U-Net can have one" if unet_c.guidance_embed else
                                "model_index.json \"distilled\" needs a U-Net with guidance_embed (a student)")
        width = vae_c.mel.n_mels // vae_c.downsample
        if width % unet_c.downsample:
            raise PipelineError(f"unet: {len(unet_c.block_channels)} levels need the latent width ({width}) to divide "
                                f"by {unet_c.downsample}")

    @property
    def mel_config(self) -> MelConfig:
        return self.vae.mel_config

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def conditioning(self) -> str:
        """"text", "labels" or "both" (a prompt and/or labels per sample)."""
        return conditioning_kind(self.conditioner)

    @property
    def uses_labels(self) -> bool:
        """Label-only models (a "both" model reads labels too; see :attr:`conditioning`)."""
        return self.conditioning == "labels"

    @property
    def reads_prompts(self) -> bool:
        """Text and joint models, and label models whose conditioner parses prompts into labels."""
        return reads_prompts(self.conditioner)

    def load_lora(self, path, scale: float = 1.0, force: bool = False):
        """Merge a LoRA adapter (folder or .safetensors; lora.py) into the U-Net at ``scale``; adapters stack.
        A mismatching or unreadable adapter is refused before anything changes, and so is one whose recorded base
        (NAME@HASH) is not this model unless ``force``. Returns the Adapter."""
        from ..files import portable_model_id
        from ..lora import LoraError, merge_lora, read_lora
        adapter = read_lora(path)
        if adapter.base and self.source is not None and not force:
            mine = portable_model_id(self.source)
            if adapter.base != mine:
                raise LoraError(f"{path}: an adapter for {adapter.base}, and this model is {mine}; pass "
                                f"force=True (--force) to merge it anyway")
        merge_lora(self.unet, adapter, scale)
        self.loras.append((adapter, scale))
        return adapter

    def unload_loras(self) -> None:
        """Unmerge every adapter load_lora merged, last first: the U-Net is back to its base weights (to ~1e-6)."""
        from ..lora import unmerge_lora
        while self.loras:
            unmerge_lora(self.unet, *self.loras.pop())

    def to(self, device=None, dtype: torch.dtype | None = None) -> "AudioLDM":
        """Move every part to ``device`` ("auto": CUDA, then MPS, then CPU); ``dtype`` sets the compute precision."""
        dev = _resolve_device(device) if device is not None else self.device
        for m in (self.vae, self.unet, self.conditioner, self.vocoder, self.frontend):
            m.to(dev)
        if dtype is not None:
            if dtype not in (torch.float32, torch.bfloat16, torch.float16):
                raise PipelineError(f"dtype must be float32, bfloat16 or float16, got {dtype}")
            if dtype == torch.float16 and dev.type == "cpu":
                raise PipelineError("dtype float16 needs a GPU; use bfloat16 or float32 on CPU")
            self.dtype = dtype
        return self

    def autocast(self):
        """The autocast context for U-Net and VAE calls (a no-op in float32)."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ---- folders ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_id=None, device=None, dtype: torch.dtype | None = None) -> "AudioLDM":
        """Load a model folder (model_folder.py), a diffusers AudioLDM folder (converted on the fly), a hub id, the
        name of a model shipped in the package ("gm-notes"), or with no argument the default model (the shipped
        2-evaluation student, or $AUDIOLDM_MODEL). ``device`` None = CPU, "auto" = CUDA/MPS when present."""
        folder = resolve_folder(path_or_id)
        from ..convert.diffusers import diffusers_components, is_diffusers_folder
        from ..pretrained import DEFAULT_MODEL, TEACHER, shipped_model
        if is_diffusers_folder(folder):  # AudioLDM's public weights (diffusers format)
            try:
                pipe = cls(**diffusers_components(folder), name=str(path_or_id))
            except (WeightsError, ValueError) as e:
                raise PipelineError(str(e)) from None
        else:
            pipe = cls(**read_model_folder(folder))
        pipe.source = folder
        student = shipped_model(DEFAULT_MODEL)
        if path_or_id is None and student is not None and Path(folder).resolve() == student.resolve():
            pipe.teacher_folder = shipped_model(TEACHER)  # the default answers any valid request (answering())
        return pipe.to(device if device is not None else "cpu", dtype)

    def save_pretrained(self, path, overwrite: bool = False, dtype: torch.dtype | None = None,
                        vocoder_ref: str | None = None) -> Path:
        """Write the model folder atomically; ``dtype`` (e.g. torch.float16) stores the VAE, U-Net and vocoder
        weights at that precision (they load back as float32). The folder stands alone unless ``vocoder_ref``
        ("shipped:NAME") names a vocoder shipped in the package to use instead of a copy (the shipped models)."""
        return write_model_folder(path, self, overwrite, dtype, vocoder_ref)

    def answering(self, steps=None, guidance=None, sampler=None, negative_prompt=None,
                  negative_labels=None) -> "AudioLDM":
        """The model that answers a request with these settings. A distilled student refuses what it was not
        distilled for (DistilledRangeError) unless it was loaded as the default model (``from_pretrained()``, the
        CLI without --model) and has no adapters merged: then its teacher (loaded once) answers, and one line on
        stderr says why."""
        if self.distilled is None or self.teacher_folder is None or self.loras:
            return self
        try:
            self.distilled.check(resolve_settings(self.defaults, None, steps, guidance, sampler))
            if negative_prompt is not None or negative_labels is not None:
                raise DistilledRangeError("negative_prompt / negative_labels: a distilled model has no "
                                          "unconditional branch to steer with them")
            return self
        except DistilledRangeError as e:
            if self._teacher is None:
                self._teacher = AudioLDM.from_pretrained(self.teacher_folder).to(self.device, self.dtype)
            print(f"note: {e}; answered by its teacher {self._teacher.name} (the default model, {self.name}, "
                  f"is a distilled 2-evaluation student)", file=sys.stderr)
            return self._teacher

    # ---- building blocks shared by generate and the editing modes ---------------------------------------------------
    def latent_shape(self, frames: int) -> tuple[int, int, int]:
        """(C, H, W) of the latents for ``frames`` mel frames, H rounded up so the U-Net can downsample it."""
        d, u = self.vae.config.downsample, self.unet.config.downsample
        h = -(-frames // d)
        return self.vae.config.z_channels, -(-h // u) * u, self.mel_config.n_mels // d

    def requests(self, prompt=None, labels=None, num_per_prompt: int = 1) -> tuple[list, list]:
        """Per-sample lists (prompts, labels) from single/list prompts and/or labels; see requests.py."""
        return normalise_requests(self.conditioner, self.name, prompt, labels, num_per_prompt)

    def conditions(self, prompts: list, labels: list, negative_prompt=None, negative_labels=None) -> tuple[dict, dict]:
        """(condition, unconditional/negative condition) for one batch."""
        if self.distilled is not None and (negative_prompt is not None or negative_labels is not None):
            raise DistilledRangeError("negative_prompt / negative_labels: a distilled model has no unconditional "
                                      "branch to steer with them; use its teacher")
        return build_conditions(self.conditioner, prompts, labels, negative_prompt, negative_labels)

    def window(self) -> int:
        """Latent frames the U-Net was trained on (the default duration's): longer latents are denoised in windows
        of this length (longform.py)."""
        return self.latent_shape(self.mel_config.num_frames(int(round(self.defaults.duration * self.sample_rate))))[1]

    def denoise_latents(self, x: torch.Tensor, sigmas: torch.Tensor, cond: dict, uncond: dict, guidance: float,
                        sampler: str, seeds: list[int], keep: tuple[torch.Tensor, torch.Tensor] | None = None,
                        bar=None, loop: bool = False) -> torch.Tensor:
        """Run ``sampler`` from y = x at sigmas[0] down to 0. ``keep`` = (z0 [B, C, H, W], m [1|B, 1, H, W] in
        {0, 1}): where m is 1 the clean estimate is replaced by z0 at every step, so those latents end exactly at z0
        while the rest is generated in context (inpainting, super-resolution). Latents longer than :meth:`window`,
        or ``loop`` (a circular time axis), are denoised in overlapping windows fused at every step."""
        long = loop or x.shape[2] > self.window()
        if self.graphs and keep is None and sampler in DETERMINISTIC and not long:  # accelerate(): one graph
            with torch.no_grad(), self.autocast():
                z = self._graphed(sampler, sigmas, guidance, x, cond, uncond).float()
            if bar is not None:
                bar.update(len(sigmas) - 1)
        else:
            den = self._denoiser(cond, uncond, guidance, x.shape[0])
            if long:
                w = self.window()
                den = windowed_denoiser(den, x.shape[2], w, max(1, w // 2), circular=loop)
            if keep is not None:
                z0, m = keep
                base = den
                den = lambda y, s: base(y, s) * (1 - m) + z0 * m  # noqa: E731
            callback = (lambda i, x_, x0: bar.update(1)) if bar is not None else None
            with torch.no_grad(), self.autocast():
                z = sample(sampler, den, x, sigmas, noise=noise_sampler(seeds, x.shape[1:], x.device),
                           callback=callback).float()
        end = float(sigmas[-1])
        return z / (1 + end ** 2) ** 0.5 if end > 0 else z  # y at sigma_end -> the VP latent the VAE decodes

    def _denoiser(self, cond: dict, uncond: dict | None, guidance: float, batch: int):
        """(y, sigma) -> x0: classifier-free guidance in one batched call, or, for a distilled student, one call with
        the guidance scale as an input."""
        if self.distilled is not None:
            c = {**cond, "guidance": torch.full((batch,), float(guidance), device=self.device)}
            return lambda y, s: self.diffusion.denoise(y, s, c)
        return guided(self.diffusion.denoise, cond, uncond, guidance)

    def _graphed(self, sampler, sigmas, guidance, x, cond, uncond) -> torch.Tensor:
        """The sampling loop as a replayed CUDA graph (accel.py), one per sampler, sigmas, guidance and shapes."""
        packed = {**{f"c:{k}": v for k, v in cond.items()},
                  **({f"u:{k}": v for k, v in uncond.items()} if uncond is not None else {})}
        key = (sampler, tuple(float(s) for s in sigmas), float(guidance), tuple(x.shape),
               tuple((k, tuple(v.shape)) for k, v in sorted(packed.items())))
        if key not in self._graph_cache:
            sig = SigmaTable(sigmas, self.device)  # host floats + device copy, made before capture

            def loop(x_, p):
                c = {k[2:]: v for k, v in p.items() if k.startswith("c:")}
                u = {k[2:]: v for k, v in p.items() if k.startswith("u:")} or None
                return sample(sampler, self._denoiser(c, u, guidance, x_.shape[0]), x_, sig)
            self._graph_cache[key] = GraphedLoop(loop)
        return self._graph_cache[key](x, packed)

    def accelerate(self, graphs: bool = True, compile: bool = False) -> "AudioLDM":
        """GPU fast paths (accel.py): ``graphs`` replays each deterministic sampling loop as a CUDA graph captured on
        its first use (inpainting, super-resolution, ancestral samplers and requests longer than the window keep the
        plain loop; the progress bar jumps once per loop); ``compile`` torch.compiles the U-Net. Harmless on CPU,
        where the loop runs eagerly."""
        self.graphs = bool(graphs)
        self._graph_cache.clear()
        if compile:
            compile_unet(self.unet)
        return self

    def sample_from_noise(self, prompts: list, labels: list, settings: dict, seeds: list[int], shape,
                          negative_prompt=None, negative_labels=None, keep=None, bar=None,
                          loop: bool = False) -> torch.Tensor:
        """One batch of latents [B, *shape], sampled from per-sample seeded noise under the requests' conditions with
        ``settings`` (steps, guidance, sampler); ``keep`` as in :meth:`denoise_latents`."""
        sig = self.sampling_sigmas(settings["steps"])
        cond, uncond = self.conditions(prompts, labels, negative_prompt, negative_labels)
        x = initial_noise(seeds, shape, float(sig[0]), self.device)
        return self.denoise_latents(x, sig, cond, uncond, settings["guidance"], settings["sampler"], seeds,
                                    keep=keep, bar=bar, loop=loop)

    def sampling_sigmas(self, steps: int) -> torch.Tensor:
        """Descending sigmas [steps + 1] from the schedule's spacing, offset and end point; a distilled model's own
        sigmas for that step count."""
        if self.distilled is not None:
            return torch.tensor(self.distilled.sigmas[str(steps)], dtype=torch.float32)
        return self.schedule.sampling_sigmas(steps, final_sigma=self.schedule.final_sigma)

    def decode(self, z: torch.Tensor, frames: int, samples: int, loop: bool = False) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
        """latents [B, C, H, W] -> (log-mel [B, n_mels, frames], waveform [B, samples]) in float32. Latents longer
        than :meth:`window` are decoded in chunks (longform.decode_chunked). ``loop``: the ends are decoded
        against each other and the vocoder's rendering of the start, continuing from the end, is cross-faded in, so
        the clip repeats without a seam."""
        w, d = self.window(), self.vae.config.downsample
        with torch.no_grad():
            with self.autocast():
                mel = decode_chunked(self.vae.decode_latents, z, frames, w, max(1, w // 4), d, circular=loop)
            mel = mel.float()
            if not loop:
                return mel, self.vocoder(mel).float()[:, :samples]
            k = min(frames // 2, max(4, w * d // 4))  # mel frames rendered twice: after the end and at the start
            wav = self.vocoder(torch.cat([mel, mel[..., :k]], dim=-1)).float()
            hop = self.mel_config.hop_length
            main, again = wav[:, :frames * hop], wav[:, frames * hop:(frames + k) * hop]
            ramp = torch.linspace(0, 1, again.shape[1], device=wav.device)
            main = torch.cat([again * (1 - ramp) + main[:, :again.shape[1]] * ramp, main[:, again.shape[1]:]], 1)
        return mel, main[:, :samples]

    def encode(self, audio: torch.Tensor, frames_total: int) -> torch.Tensor:
        """waveform [B, T] -> scaled latents [B, C, H, W] of a mel padded (with silence) to ``frames_total``."""
        with torch.no_grad():
            mel = self.frontend(audio.to(self.device).float())
            pad = frames_total - mel.shape[-1]
            if pad > 0:
                mel = torch.nn.functional.pad(mel, (0, pad), value=float(np.log(self.mel_config.log_floor)))
            with self.autocast():
                return self.vae.encode_latents(mel).float()

    def settings(self, duration, steps, guidance, sampler) -> dict:
        """Validated generation settings, the model's defaults filled in (settings.py); a distilled model refuses
        steps, guidance and samplers outside its range."""
        s = resolve_settings(self.defaults, duration, steps, guidance, sampler)
        if self.distilled is not None:
            self.distilled.check(s)
        return s

    def seeds_for(self, seed, n: int) -> list[int]:
        """Per-sample seeds: an int gives seed, seed + 1, ...; a list is used as is; None draws one at random."""
        return seeds_for(seed, n)

    def progress_bar(self, total: int, progress: bool, desc: str):
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=not progress, leave=False)

    # ---- text/labels to audio ----------------------------------------------------------------------------------------
    def generate(self, prompt=None, labels=None, duration: float | None = None, steps: int | None = None,
                 guidance: float | None = None, sampler: str | None = None, seed=None, negative_prompt=None,
                 negative_labels=None, num_per_prompt: int = 1, batch_size: int = 8,
                 progress: bool = True, loop: bool = False) -> GenerationResult:
        """Generate ``len(prompts) * num_per_prompt`` clips of ``duration`` seconds. Sample k uses seed k (see
        :meth:`seeds_for`) and equals generating it alone with that seed. ``params["answered_by"]`` names the model
        that made the audio (the default model's teacher, for what the student was not distilled for)."""
        other = self.answering(steps, guidance, sampler, negative_prompt, negative_labels)
        if other is not self:
            return other.generate(prompt, labels, duration, steps, guidance, sampler, seed, negative_prompt,
                                  negative_labels, num_per_prompt, batch_size, progress, loop)
        prompts, label_list = self.requests(prompt, labels, num_per_prompt)
        s = self.settings(duration, steps, guidance, sampler)
        n = len(prompts)
        reads = request_reads(self.conditioner, prompts, label_list)  # warns about words a text encoder drops
        seeds = self.seeds_for(seed, n)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PipelineError(f"batch_size must be a positive integer, got {batch_size!r}")
        samples = int(round(s["duration"] * self.sample_rate))
        frames = self.mel_config.num_frames(samples)
        shape = self.latent_shape(frames)
        audio, mels, lats = [], [], []
        with self.progress_bar(n * s["steps"], progress, "generate") as bar:
            for b in range(0, n, batch_size):
                sl = slice(b, b + batch_size)
                z = self.sample_from_noise(prompts[sl], label_list[sl], s, seeds[sl], shape, negative_prompt,
                                           negative_labels, bar=bar, loop=loop)
                mel, wav = self.decode(z, frames, samples, loop=loop)
                audio.append(wav.cpu())
                mels.append(mel.cpu())
                lats.append(z.cpu())
        params = {**s, "mode": "generate", "loop": bool(loop), "seeds": seeds, "negative_prompt": negative_prompt,
                  "negative_labels": negative_labels, "model": self.name, "answered_by": self.name,
                  "audioldm_version": __version__}
        return GenerationResult(torch.cat(audio).numpy().astype(np.float32), self.sample_rate, torch.cat(mels),
                                torch.cat(lats), prompts, label_list, seeds, params, reads)

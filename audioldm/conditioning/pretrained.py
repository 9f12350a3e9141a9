"""A frozen pretrained text conditioner through transformers: CLAP text models (the pooled, L2-normalised projected
text embedding, as AudioLDM uses), T5 encoders and sentence-transformers checkpoints (masked-mean pooling). Loads from a
local folder or a hub id (the hub only when online). Output follows the conditioner contract in conditioning.py."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConditionError

__all__ = ["PretrainedTextConfig", "PretrainedTextConditioner"]


@dataclass
class PretrainedTextConfig:
    source: str = "laion/clap-htsat-unfused"  # local folder or hub id
    kind: str = "auto"  # "clap" | "t5" | "mean" (sentence-transformers style) | "auto" (from the model config)
    max_tokens: int = 77
    tokens: bool = False  # also return the last hidden states as a token sequence
    pooled_dim: int = 0  # filled in from the model when 0


class PretrainedTextConditioner(nn.Module):
    def __init__(self, config: PretrainedTextConfig, model=None, tokenizer=None):
        super().__init__()
        try:
            import transformers
        except ImportError:
            raise ImportError("pretrained text conditioners need transformers: pip install 'audioldm[pretrained]'") \
                from None
        self.config = c = config
        self.tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(c.source)
        if model is None:
            mcfg = transformers.AutoConfig.from_pretrained(c.source)
            mtype = getattr(mcfg, "model_type", "")
            if c.kind == "auto":
                c.kind = "clap" if mtype.startswith("clap") else ("t5" if mtype in ("t5", "mt5", "umt5") else "mean")
            if c.kind == "clap":
                model = transformers.ClapTextModelWithProjection.from_pretrained(c.source, use_safetensors=True)
            elif c.kind == "t5":
                model = transformers.T5EncoderModel.from_pretrained(c.source, use_safetensors=True)
            else:
                model = transformers.AutoModel.from_pretrained(c.source, use_safetensors=True)
        elif c.kind == "auto":
            c.kind = "clap" if "Clap" in type(model).__name__ else ("t5" if "T5" in type(model).__name__ else "mean")
        self.model = model.eval().requires_grad_(False)
        hidden = getattr(model.config, "hidden_size", None) or getattr(model.config, "d_model")
        pooled = getattr(model.config, "projection_dim", None) if c.kind == "clap" else hidden
        if c.pooled_dim and c.pooled_dim != pooled:
            raise ValueError(f"PretrainedTextConfig.pooled_dim={c.pooled_dim} but {c.source} gives {pooled}")
        c.pooled_dim = pooled
        self.hidden = hidden

    @property
    def pooled_dim(self) -> int:
        return self.config.pooled_dim

    @property
    def token_dim(self) -> int | None:
        return self.hidden if self.config.tokens else None

    def train(self, mode: bool = True):  # stays frozen in eval mode
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> dict:
        for p in prompts:
            if not isinstance(p, str):
                raise ConditionError(f"prompts must be strings, got {p!r}")
        dev = next(self.model.parameters()).device
        enc = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.config.max_tokens,
                             return_tensors="pt").to(dev)
        mask = enc["attention_mask"].bool()
        if self.config.kind == "clap":
            out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             output_hidden_states=self.config.tokens)
            pooled = F.normalize(out.text_embeds, dim=-1)
            hidden = out.hidden_states[-1] if self.config.tokens else None
        else:
            hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        cond = {"pooled": pooled.float()}
        if self.config.tokens:
            cond["tokens"], cond["mask"] = hidden.float(), mask
        return cond

    def null_condition(self, batch_size: int) -> dict:
        return self([""] * batch_size)

    def prompt_report(self, prompt: str) -> dict:
        """The subword tokens the encoder reads (subword vocabularies cover any word: no unknown-word check)."""
        return {"tokens": self.tokenizer.tokenize(prompt)[: self.config.max_tokens], "unknown_words": []}

    def save_pretrained(self, folder, overwrite: bool = False):
        """Write ``folder/config.json`` (kind "pretrained_text") and the transformers model + tokenizer (safetensors)
        into ``folder/text_model``, so the folder loads offline with :meth:`from_folder`."""
        import json
        from pathlib import Path

        from ..config import config_to_dict
        from ..files import atomic_folder

        with atomic_folder(folder, overwrite) as tmp:
            self.model.save_pretrained(tmp / "text_model", safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "text_model")
            cfg = {**config_to_dict(self.config), "source": "text_model"}
            cfg["text_kind"] = cfg.pop("kind")  # "kind" names the component in config.json
            (tmp / "config.json").write_text(json.dumps({"kind": "pretrained_text", **cfg}, indent=2) + "\n")
        return Path(folder)

    @classmethod
    def from_folder(cls, folder, device=None) -> "PretrainedTextConditioner":
        """Load what :meth:`save_pretrained` wrote (safetensors weights only; never a pickle)."""
        import json
        from pathlib import Path

        import transformers

        from ..config import config_from_dict
        from ..weights import WeightsError

        folder = Path(folder)
        d = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        d.pop("kind", None)
        if "text_kind" in d:
            d["kind"] = d.pop("text_kind")
        config = config_from_dict(PretrainedTextConfig, d, str(folder / "config.json"))
        src = folder / config.source
        if not any(src.glob("*.safetensors")):
            raise WeightsError(f"{src}: no *.safetensors text-model weights (pickled weights are never loaded)")
        config.source = str(src)
        auto = {"clap": transformers.ClapTextModelWithProjection, "t5": transformers.T5EncoderModel}
        model = auto.get(config.kind, transformers.AutoModel).from_pretrained(str(src), use_safetensors=True)
        tok = transformers.AutoTokenizer.from_pretrained(str(src))
        out = cls(config, model=model, tokenizer=tok)
        return out.to(device) if device is not None else out

"""Conditional 2D U-Net over latents [B, C, frames, freq] predicting eps or v (it knows nothing of schedules).

Levels of ResnetBlocks (GroupNorm, SiLU, timestep embedding) with transformer blocks at chosen levels (self-attention,
then a second attention that attends to the conditioner's token sequence when there is one — or to itself, as AudioLDM
does when it has no token sequence — then a GEGLU feed-forward; all with ``scaled_dot_product_attention``), stride-2
downsampling and nearest upsampling with skip connections. A pooled condition vector enters through FiLM: it is
projected and added to, or concatenated with, the timestep embedding (AudioLDM concatenates). Parameter names follow
diffusers' UNet2DConditionModel so AudioLDM's weights map one-to-one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import preset
from .nn import (
    ResnetBlock,
    Upsample2d,
    group_norm,
    maybe_checkpoint,
    timestep_embedding,
)

__all__ = ["UNetConfig", "UNET_PRESETS", "UNet"]


@dataclass
class UNetConfig:
    in_channels: int = 8
    out_channels: int = 8
    block_channels: list[int] = field(default_factory=lambda: [128, 256, 384, 640])
    num_res_blocks: int = 2
    attention_levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    head_dim: int = 32  # attention head width (when num_heads is 0)
    num_heads: int = 0  # > 0: this many heads at every attention level (AudioLDM / diffusers' attention_head_dim=8)
    transformer_depth: int = 1
    cond_dim: int = 512  # pooled condition vector size; 0 = none
    cond_mode: str = "concat"  # "concat" (AudioLDM) or "add" to the timestep embedding
    context_dim: int | None = None  # token sequence width for cross-attention; None = no tokens (self-attention)
    norm_groups: int = 32
    dropout: float = 0.0
    gradient_checkpointing: bool = False
    guidance_embed: bool = False  # a guidance-distilled student: cond["guidance"] [B] is an input (Meng et al. 2023)

    def __post_init__(self):
        if self.cond_mode not in ("concat", "add"):
            raise ValueError(f"UNetConfig.cond_mode must be 'concat' or 'add', got {self.cond_mode!r}")
        for i, c in enumerate(self.block_channels):
            if c % self.norm_groups:
                raise ValueError(f"UNetConfig.block_channels[{i}]={c} is not a multiple of norm_groups={self.norm_groups}")
            if i in self.attention_levels and c % (self.num_heads or self.head_dim):
                what = f"num_heads={self.num_heads}" if self.num_heads else f"head_dim={self.head_dim}"
                raise ValueError(f"UNetConfig.block_channels[{i}]={c} is not a multiple of {what}")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.block_channels)]
        if bad:
            raise ValueError(f"UNetConfig.attention_levels {bad} out of range for {len(self.block_channels)} levels")

    @property
    def time_dim(self) -> int:
        return 4 * self.block_channels[0]

    @property
    def temb_dim(self) -> int:
        """Width of the embedding the resnets receive."""
        return 2 * self.time_dim if (self.cond_dim and self.cond_mode == "concat") else self.time_dim

    def heads_at(self, channels: int) -> int:
        """Attention heads of a level with ``channels`` channels."""
        return self.num_heads or channels // self.head_dim

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_channels) - 1)


UNET_PRESETS = {  # name -> factory (config.preset)
    "tiny": preset(UNetConfig, in_channels=4, out_channels=4, block_channels=[32, 64], num_res_blocks=1,
                   attention_levels=[1], head_dim=16, cond_dim=32, norm_groups=8),
    # CPU-trainable in tens of minutes on 2 cores (~4M parameters)
    "demo": preset(UNetConfig, block_channels=[32, 64, 128], num_res_blocks=1, attention_levels=[1, 2], head_dim=32,
                   cond_dim=128, norm_groups=16),
    # the shape of AudioLDM-S's U-Net (~185M parameters)
    # AudioLDM-S: 8 heads at every attention level, as its public (diffusers-format) weights compute
    "audioldm-s": preset(UNetConfig, num_heads=8),
}


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names; ``context`` None means self-attention.
    ``mask`` [B, L] (True = keep) hides padding tokens."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        kv = context_dim or dim
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv, dim, bias=False)
        self.to_v = nn.Linear(kv, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def forward(self, x, context=None, mask=None):
        b, n, d = x.shape
        ctx = x if context is None else context
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], self.heads, -1).transpose(1, 2)
        attn_mask = None if (mask is None or context is None) else mask[:, None, None, :].bool()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out[0](y.transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x):
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context=None, mask=None):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context, mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """[B, C, H, W] -> same: GroupNorm, 1x1 conv in, transformer blocks over the H*W tokens, 1x1 conv out, residual."""

    def __init__(self, ch: int, heads: int, depth: int, context_dim: int | None, groups: int):
        super().__init__()
        self.norm = group_norm(ch, groups, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(ch, heads, context_dim)
                                                 for _ in range(depth)])
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, context=None, mask=None):
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for blk in self.transformer_blocks:
            y = blk(y, context, mask)
        return x + self.proj_out(y.transpose(1, 2).reshape(b, c, h, w))


class _Down(nn.Module):
    def __init__(self, in_ch, out_ch, n, attn, c: UNetConfig, down: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(in_ch if i == 0 else out_ch, out_ch, c.temb_dim, c.dropout,
                                                  c.norm_groups, 1e-5) for i in range(n)])
        self.attentions = nn.ModuleList([SpatialTransformer(out_ch, c.heads_at(out_ch), c.transformer_depth,
                                                            c.context_dim, c.norm_groups) for _ in range(n)]
                                        if attn else [])
        self.downsamplers = nn.ModuleList([_Downsample(out_ch)] if down else [])


class _Downsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class _Up(nn.Module):
    def __init__(self, in_chs: list[int], out_ch, attn, c: UNetConfig, up: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(i, out_ch, c.temb_dim, c.dropout, c.norm_groups, 1e-5)
                                      for i in in_chs])
        self.attentions = nn.ModuleList([SpatialTransformer(out_ch, c.heads_at(out_ch), c.transformer_depth,
                                                            c.context_dim, c.norm_groups) for _ in in_chs]
                                        if attn else [])
        self.upsamplers = nn.ModuleList([Upsample2d(out_ch)] if up else [])


class _Mid(nn.Module):
    def __init__(self, ch, c: UNetConfig):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(ch, ch, c.temb_dim, c.dropout, c.norm_groups, 1e-5)
                                      for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialTransformer(ch, c.heads_at(ch), c.transformer_depth, c.context_dim,
                                                            c.norm_groups)])


class _TimeEmbedding(nn.Module):
    def __init__(self, in_dim, dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet(nn.Module):
    """forward(x [B, C, H, W], t [B] (float ok), cond {"pooled": [B, cond_dim], "tokens": [B, L, context_dim],
    "mask": [B, L], and with ``guidance_embed`` "guidance": [B]}) -> [B, out_channels, H, W]. H and W must be
    multiples of 2^(levels - 1)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config or UNetConfig()
        chs = c.block_channels
        self.conv_in = nn.Conv2d(c.in_channels, chs[0], 3, padding=1)
        self.time_embedding = _TimeEmbedding(chs[0], c.time_dim)
        self.class_embedding = nn.Linear(c.cond_dim, c.time_dim) if c.cond_dim else None
        # the guidance scale w, embedded like a timestep (of 100 w) and added to the timestep embedding; its last
        # layer starts at zero, so a student made from a teacher starts as the teacher's conditional branch
        self.guidance_embedding = _TimeEmbedding(chs[0], c.time_dim) if c.guidance_embed else None
        if self.guidance_embedding is not None:
            nn.init.zeros_(self.guidance_embedding.linear_2.weight)
            nn.init.zeros_(self.guidance_embedding.linear_2.bias)
        self.down_blocks = nn.ModuleList()
        skips, prev = [chs[0]], chs[0]
        for i, ch in enumerate(chs):
            last = i == len(chs) - 1
            self.down_blocks.append(_Down(prev, ch, c.num_res_blocks, i in c.attention_levels, c, not last))
            skips += [ch] * c.num_res_blocks + ([] if last else [ch])
            prev = ch
        self.mid_block = _Mid(prev, c)
        self.up_blocks = nn.ModuleList()
        for i, ch in enumerate(reversed(chs)):
            level = len(chs) - 1 - i
            ins = []
            for _ in range(c.num_res_blocks + 1):
                ins.append(prev + skips.pop())
                prev = ch
            self.up_blocks.append(_Up(ins, ch, level in c.attention_levels, c, level != 0))
        self.conv_norm_out = group_norm(chs[0], c.norm_groups, eps=1e-5)
        self.conv_out = nn.Conv2d(chs[0], c.out_channels, 3, padding=1)

    def fsdp_units(self) -> list[nn.Module]:
        """The blocks forward() calls one by one (every ResNet and attention block): FSDP2's sharding units, each
        gathered just before it runs (training/distributed.py)."""
        blocks = [*self.down_blocks, self.mid_block, *self.up_blocks]
        return [m for b in blocks for m in (*b.resnets, *b.attentions)]

    def _run(self, fn, *args):
        return maybe_checkpoint(self.config.gradient_checkpointing and self.training, fn, *args)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict | None = None) -> torch.Tensor:
        c, cond = self.config, cond or {}
        d = c.downsample
        if x.dim() != 4 or x.shape[1] != c.in_channels or x.shape[2] % d or x.shape[3] % d:
            raise ValueError(f"UNet: expected latents [B, {c.in_channels}, H, W] with H, W multiples of {d}, "
                             f"got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        temb = self.time_embedding(timestep_embedding(t, c.block_channels[0]).to(x.dtype))
        if self.guidance_embedding is not None:
            w = cond.get("guidance")
            if w is None or w.shape != (x.shape[0],):
                raise ValueError(f"UNet: a guidance-distilled U-Net needs cond['guidance'] [B={x.shape[0]}], got "
                                 f"{None if w is None else tuple(w.shape)}")
            temb = temb + self.guidance_embedding(timestep_embedding(100 * w, c.block_channels[0]).to(x.dtype))
        if self.class_embedding is not None:
            pooled = cond.get("pooled")
            if pooled is None or pooled.shape != (x.shape[0], c.cond_dim):
                raise ValueError(f"UNet: cond['pooled'] must be [B={x.shape[0]}, {c.cond_dim}], got "
                                 f"{None if pooled is None else tuple(pooled.shape)}")
            emb = self.class_embedding(pooled.to(temb.dtype))
            temb = torch.cat([temb, emb], -1) if c.cond_mode == "concat" else temb + emb
        ctx, mask = cond.get("tokens"), cond.get("mask")
        if c.context_dim is None:
            ctx = mask = None
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for i, r in enumerate(blk.resnets):
                h = self._run(r, h, temb)
                if len(blk.attentions):
                    h = self._run(blk.attentions[i], h, ctx, mask)
                skips.append(h)
            for ds in blk.downsamplers:
                h = ds(h)
                skips.append(h)
        h = self._run(self.mid_block.resnets[0], h, temb)
        h = self._run(self.mid_block.attentions[0], h, ctx, mask)
        h = self._run(self.mid_block.resnets[1], h, temb)
        for blk in self.up_blocks:
            for i, r in enumerate(blk.resnets):
                h = self._run(r, torch.cat([h, skips.pop()], 1), temb)
                if len(blk.attentions):
                    h = self._run(blk.attentions[i], h, ctx, mask)
            for us in blk.upsamplers:
                h = us(h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))

    def save_pretrained(self, folder, overwrite: bool = False, dtype=None):
        from .weights import save_component
        return save_component(folder, self, self.config, "unet", overwrite=overwrite, dtype=dtype)

    @classmethod
    def from_pretrained(cls, folder, device=None, dtype=None) -> "UNet":
        from .weights import load_component
        return load_component(folder, cls, UNetConfig, "unet", device=device, dtype=dtype)

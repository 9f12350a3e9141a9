"""One evaluation of a trained model against held-out real data, with the stage decomposition:
held-out real audio -> mel -> vocoder, -> VAE -> vocoder, and generated clips (all, and split into conditions seen
in U-Net training and conditions never seen there), each scored by :func:`generalisation.score_set` with one judge
trained on the training split's real clips. :func:`report_table` renders it as markdown.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..data import ClipDataset
from .classifier import frechet_distance
from .generalisation import (
    chance_levels,
    score_set,
    train_judge,
    within_category_spread,
)

__all__ = ["evaluate_model", "report_table", "clip_mels", "vocode"]


def clip_mels(clips, mel_config, seconds: float, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, list]:
    """Log-mels [N, n_mels, F] of (up to ``limit``, a seeded random subset of) ``clips`` cut to ``seconds``."""
    if limit is not None and len(clips) > limit:
        idx = sorted(np.random.default_rng(seed).choice(len(clips), limit, replace=False).tolist())
        clips = [clips[i] for i in idx]
    ds = ClipDataset(clips, mel_config, seconds)
    return torch.stack([ds[i]["mel"] for i in range(len(ds))]), clips


@torch.no_grad()
def vocode(pipe, mels: torch.Tensor, vae: bool, batch_size: int = 16) -> torch.Tensor:
    """Real log-mels [N, n_mels, F] through (the VAE's round trip and) the vocoder: waveforms [N, F * hop] (CPU)."""
    out = []
    for s in range(0, len(mels), batch_size):
        m = mels[s:s + batch_size].to(pipe.device)
        if vae:
            m = pipe.vae(m, sample=False)[0].float()
        out.append(pipe.vocoder(m).float()[:, :m.shape[-1] * pipe.mel_config.hop_length].cpu())
    return torch.cat(out)


@torch.no_grad()
def _through(pipe, mels: torch.Tensor, vae: bool, batch_size: int = 16) -> torch.Tensor:
    """Held-out real log-mels [N, n_mels, F] through (the VAE and) the vocoder, back to log-mels of the audio."""
    wav = vocode(pipe, mels, vae, batch_size)
    return torch.cat([pipe.frontend(wav[s:s + batch_size].to(pipe.device))[..., :mels.shape[-1]].cpu()
                      for s in range(0, len(wav), batch_size)])


def _seen_sources_ceiling(train_mels: torch.Tensor, train_cats: list, judge_steps: int, seed: int) -> float:
    """A second, in-domain ceiling: a judge trained on 80% of the training clips, scored on the other 20% (seen
    sources, unseen clips); held-out real clips from unseen sources can sit far below it."""
    perm = np.random.default_rng(seed + 2).permutation(len(train_cats))
    cut = int(0.8 * len(perm))
    probe = train_judge(train_mels[perm[:cut]], [train_cats[i] for i in perm[:cut]], steps=judge_steps, seed=seed)
    pred = probe.predict(train_mels[perm[cut:]])
    known = [(p_, train_cats[i]) for p_, i in zip(pred, perm[cut:]) if train_cats[i] in probe.classes]
    return float(np.mean([a == b for a, b in known])) if known else math.nan


def _heldout_conditions(heldout_clips, category, request, seen: set, max_conditions: int, seed: int):
    """(conditions, keys): one request per distinct held-out key, its category the majority over its held-out clips;
    at most ``max_conditions`` keys, as many unseen in training as seen where there are enough of each."""
    conds: dict = {}
    for c in heldout_clips:
        key, req = request(c)
        conds.setdefault(key, {"request": req, "cats": []})["cats"].append(category(c))
    keys = sorted(conds)
    if len(keys) > max_conditions:
        unseen_k, seen_k = [x for x in keys if x not in seen], [x for x in keys if x in seen]
        n_unseen = min(len(unseen_k), max(max_conditions - len(seen_k), max_conditions // 2))
        rng = np.random.default_rng(seed)
        keys = sorted([unseen_k[i] for i in sorted(rng.choice(len(unseen_k), n_unseen, replace=False))]
                      + [seen_k[i] for i in sorted(rng.choice(len(seen_k), max_conditions - n_unseen,
                                                              replace=False))])
    return conds, keys


def evaluate_model(pipe, train_clips, heldout_clips, category, request, seen: set, seconds: float,
                   judge_steps: int = 600, per_condition: int = 4, max_conditions: int = 32, max_train: int = 2000,
                   max_heldout: int | None = None,
                   seed: int = 0, embedder=None, progress: bool = False) -> dict:
    """Evaluate ``pipe`` (an AudioLDM).

    category(clip) -> str: what the judge must recognise. request(clip) -> (key, {"prompt": ...} or
    {"labels": ...}): the condition that clip stands for; ``seen``: the keys present in U-Net training.
    Generates ``per_condition`` clips (seeds seed, seed + 1, ...) for up to ``max_conditions`` held-out conditions
    (half of them unseen in training where possible); the real rows use up to ``max_heldout`` held-out clips.
    """
    t0 = time.time()
    mel_cfg = pipe.mel_config
    train_mels, train_used = clip_mels(train_clips, mel_cfg, seconds, max_train, seed)
    train_cats = [category(c) for c in train_used]
    ceiling_seen = _seen_sources_ceiling(train_mels, train_cats, judge_steps, seed)
    judge = train_judge(train_mels, train_cats, steps=judge_steps, seed=seed, embedder=embedder)
    real_mels, heldout_used = clip_mels(heldout_clips, mel_cfg, seconds, max_heldout, seed)
    real_cats = [category(c) for c in heldout_used]
    ref_emb, train_emb = judge.embed(real_mels), judge.embed(train_mels)
    # real-vs-real: a training subset as large as the held-out set, against the held-out set
    k = min(len(train_emb), len(ref_emb))
    sub = np.random.default_rng(seed + 1).choice(len(train_emb), k, replace=False)
    real_spread = within_category_spread(ref_emb, real_cats)

    rows = {"real (held-out)": score_set(judge, real_mels, real_cats, ref_emb, train_emb),
            "real -> vocoder": score_set(judge, _through(pipe, real_mels, False), real_cats, ref_emb, train_emb),
            "real -> VAE -> vocoder": score_set(judge, _through(pipe, real_mels, True), real_cats, ref_emb,
                                                train_emb)}

    conds, keys = _heldout_conditions(heldout_clips, category, request, seen, max_conditions, seed)
    gen_mels, gen_cats, gen_seen = [], [], []
    t_gen = time.time()
    for key in keys:
        req = conds[key]["request"]
        res = pipe.generate(**req, num_per_prompt=per_condition, seed=seed, duration=seconds, batch_size=16,
                            progress=progress)
        m = pipe.frontend(torch.from_numpy(res.audio).to(pipe.device)).cpu()
        gen_mels.append(m[..., :real_mels.shape[-1]])
        cat = max(set(conds[key]["cats"]), key=conds[key]["cats"].count)
        gen_cats += [cat] * len(res.audio)
        gen_seen += [key in seen] * len(res.audio)
    gen_time = time.time() - t_gen
    gm = torch.cat(gen_mels)
    rows["generated (all held-out conditions)"] = score_set(judge, gm, gen_cats, ref_emb, train_emb)
    for flag, name in ((True, "generated (conditions seen in training)"),
                       (False, "generated (conditions unseen in training)")):
        idx = [i for i, s in enumerate(gen_seen) if s == flag]
        if idx:
            rows[name] = score_set(judge, gm[idx], [gen_cats[i] for i in idx], ref_emb, train_emb)
    for r in rows.values():  # diversity beside the held-out real clips' own spread, over the same categories
        common = [c for c in r["spread_per_category"] if c in real_spread]
        r["real_spread_same_categories"] = float(np.mean([real_spread[c] for c in common])) if common else math.nan
        r["spread_ratio_to_real"] = (float(np.mean([r["spread_per_category"][c] for c in common]))
                                     / r["real_spread_same_categories"]) if common else math.nan
    ceiling = rows["real (held-out)"]["accuracy"]
    gen = rows["generated (all held-out conditions)"]
    return {
        "judge": {"classes": judge.classes, "train_clips": len(train_used), "steps": judge_steps,
                  "embedder": "judge" if embedder is None else getattr(embedder, "name", type(embedder).__name__)},
        "chance": chance_levels(real_cats, judge.classes), "ceiling_heldout_real": ceiling,
        "ceiling_seen_sources": ceiling_seen,
        "adherence_fraction_of_seen_sources_ceiling": gen["accuracy"] / ceiling_seen if ceiling_seen else math.nan,
        "adherence_fraction_of_ceiling": gen["accuracy"] / ceiling if ceiling else math.nan,
        "frechet_real_vs_real": frechet_distance(train_emb[sub], ref_emb),
        "conditions": {"heldout": len(conds), "heldout_real_clips": len(heldout_used), "generated_for": len(keys),
                       "unseen_in_training": sum(k not in seen for k in keys), "per_condition": per_condition},
        "rows": rows, "seconds": seconds,
        "generation_seconds_per_clip": round(gen_time / max(len(gen_cats), 1), 3),
        "wall_seconds": round(time.time() - t0, 1)}


def report_table(rep: dict) -> str:
    """Markdown: one row per set, accuracy / FD / memorisation / diversity columns, chance and ceiling above."""
    ch = rep["chance"]
    lines = [f"judge: {len(rep['judge']['classes'])} categories, trained on {rep['judge']['train_clips']} real "
             f"training clips; chance {ch['uniform']:.1%} (uniform) / {ch['majority']:.1%} (majority; balanced: "
             f"{ch['uniform']:.1%} / {ch.get('balanced_majority', math.nan):.1%}); "
             f"FD real-vs-real {rep['frechet_real_vs_real']:.2f}; ceiling {rep['ceiling_heldout_real']:.1%} on "
             f"held-out real clips, {rep['ceiling_seen_sources']:.1%} on unseen clips of training sources; adherence "
             f"= {rep['adherence_fraction_of_ceiling']:.0%} / {rep['adherence_fraction_of_seen_sources_ceiling']:.0%} "
             f"of those ceilings",
             "", "| audio | n | accuracy | balanced accuracy | FD to held-out real | nearest-train dist. "
             "(median / p10) | within-category spread (vs real) |", "|---|---|---|---|---|---|---|"]
    for name, r in rep["rows"].items():
        lines.append(f"| {name} | {r['n']} | {r['accuracy']:.1%} | {r.get('balanced_accuracy', math.nan):.1%} | "
                     f"{r['frechet_to_heldout_real']:.2f} | "
                     f"{r['nearest_train_distance_median']:.3f} / {r['nearest_train_distance_p10']:.3f} | "
                     f"{r['within_category_spread']:.3f} ({r['spread_ratio_to_real']:.0%}) |")
    return "\n".join(lines)

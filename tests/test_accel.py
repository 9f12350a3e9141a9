"""accel.py's CUDA-graph path, its logic checked on CPU: the static-buffer loop gives what the plain loop gives, new
inputs really reach it on every call, one loop per shape, and shapes other than the captured ones are refused."""

import pytest
import torch

from audioldm import AudioLDM
from audioldm.pipeline.accel import GraphedLoop


def test_graphed_generation_matches_the_plain_loop(tiny_model, monkeypatch):
    plain = AudioLDM.from_pretrained(tiny_model)
    fast = AudioLDM.from_pretrained(tiny_model).accelerate(graphs=True)
    kw = dict(duration=0.64, steps=4, progress=False)
    calls = []
    real = GraphedLoop.__call__
    monkeypatch.setattr(GraphedLoop, "__call__", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    for seed, prompt in ((0, "a loud piano note"), (7, "a loud violin note"), (0, "a loud violin note")):
        a = plain.generate(prompt, seed=seed, **kw).latents
        assert not calls  # the plain pipeline never enters the static-buffer loop ...
        b = fast.generate(prompt, seed=seed, **kw).latents
        assert calls and calls.pop()  # ... the accelerated one always does: two different code paths compared
        calls.clear()
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    assert len(fast._graph_cache) == 1  # same sampler, sigmas, guidance and shapes: one loop, reused
    fast.generate("a loud violin note", seed=0, duration=0.32, steps=4, progress=False)  # (longer than the
    # trained window, 0.64 s here, a request is denoised in windows by the plain loop: longform.py)
    fast.generate("a loud violin note", seed=0, duration=0.64, steps=5, progress=False)
    assert len(fast._graph_cache) == 3
    # inpainting keeps the plain loop (its clean-estimate replacement is not part of the graph)
    wav = plain.generate("a violin note", seed=1, **kw).audio[0]
    torch.testing.assert_close(fast.inpaint(wav, 0.2, 0.4, "a loud piano note", seed=3, steps=4, progress=False).latents,
                               plain.inpaint(wav, 0.2, 0.4, "a loud piano note", seed=3, steps=4, progress=False).latents)


def test_graphed_loop_buffers_and_shapes():
    calls = []

    def loop(x, cond):
        calls.append(x.data_ptr())
        return x * 2 + cond["a"]

    g = GraphedLoop(loop, capture=False)
    x, a = torch.ones(2, 3), {"a": torch.zeros(2, 3)}
    torch.testing.assert_close(g(x, a), 2 * x)
    out = g(3 * x, {"a": torch.ones(2, 3)})
    torch.testing.assert_close(out, 7 * x)
    assert calls[0] == calls[1]  # the loop always reads the same (static) buffer
    out.add_(100)  # the caller gets a copy, not the static output buffer
    torch.testing.assert_close(g(x, a), 2 * x)
    with pytest.raises(ValueError, match="another shape"):
        g(torch.ones(3, 3), {"a": torch.zeros(3, 3)})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs a GPU (bench/gpu_fast.py too)")
def test_cuda_graph_capture_matches_the_plain_loop(tiny_model):
    plain = AudioLDM.from_pretrained(tiny_model, device="cuda")
    fast = AudioLDM.from_pretrained(tiny_model, device="cuda").accelerate(graphs=True)
    for seed in (0, 3):
        a = plain.generate("a loud piano note", seed=seed, duration=0.64, steps=4, progress=False).latents
        b = fast.generate("a loud piano note", seed=seed, duration=0.64, steps=4, progress=False).latents
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert len(fast._graph_cache) == 1

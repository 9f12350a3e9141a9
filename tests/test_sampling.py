"""One contract every sampler passes, plus schedule golden numbers and the denoiser's parametrisations."""

import math

import pytest
import torch

from audioldm.diffusion import LatentDiffusion, NoiseSchedule, ScheduleConfig
from audioldm.sampling import SAMPLERS, SigmaTable, guided, initial_noise, noise_sampler, sample

MU, STD = 0.7, 0.5


def gaussian_denoiser(y, sigma, cond=None):
    """Exact E[x0 | y] for x0 ~ N(MU, STD^2) per element."""
    sigma = torch.as_tensor(sigma, dtype=y.dtype).reshape(-1, *([1] * (y.dim() - 1))) if torch.is_tensor(sigma) \
        else sigma
    return MU + STD ** 2 / (STD ** 2 + sigma ** 2) * (y - MU)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_sampler_contract(name):
    sched = NoiseSchedule()
    sig = sched.sampling_sigmas(100)
    seeds = list(range(3000))
    x = initial_noise(seeds, (1, 2, 2), float(sig[0]))
    out = sample(name, gaussian_denoiser, x, sig, noise=noise_sampler(seeds, (1, 2, 2)))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # recovers the data distribution with 100 steps: mean within 0.03; std within 5%, or 10% for ancestral DDPM,
    # which with an exact x0 estimate still under-disperses at few steps (seen: 0.456 at 100, 0.482 at 500 steps)
    assert abs(out.mean().item() - MU) < 0.03, out.mean()
    assert abs(out.std().item() / STD - 1) < (0.10 if name == "ddpm" else 0.05), out.std()
    # determinism with seeds, and sample k does not depend on the rest of the batch
    again = sample(name, gaussian_denoiser, initial_noise(seeds[5:7], (1, 2, 2), float(sig[0])), sig,
                   noise=noise_sampler(seeds[5:7], (1, 2, 2)))
    torch.testing.assert_close(again, out[5:7])


def test_ddim_eta0_is_deterministic_and_noise_free():
    sig = NoiseSchedule().sampling_sigmas(20)
    x = initial_noise([1, 2], (4, 4, 4), float(sig[0]))
    calls = []
    a = sample("ddim", gaussian_denoiser, x, sig, noise=lambda i: calls.append(i) or torch.randn_like(x))
    b = sample("ddim", gaussian_denoiser, x, sig)
    assert calls == [] and torch.equal(a, b)


def test_callback_and_unknown_sampler():
    sig = NoiseSchedule().sampling_sigmas(5)
    seen = []
    sample("euler", gaussian_denoiser, torch.zeros(1, 1, 1, 1), sig, callback=lambda i, x, x0: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown sampler 'plms'"):
        sample("plms", gaussian_denoiser, torch.zeros(1), sig)


def test_schedule_golden_numbers():
    # DDPM linear 1e-4 -> 0.02: sqrt(a_T) = 0.00635 (Ho et al.); SD-style scaled-linear 0.00085 -> 0.012: sqrt(a_T)
    # = 0.0682 (Lin et al. 2024, table 1); AudioLDM's 0.0015 -> 0.0195: computed independently below.
    lin = NoiseSchedule(ScheduleConfig(kind="linear", beta_start=1e-4, beta_end=0.02))
    assert lin.alphas_cumprod[-1].sqrt().item() == pytest.approx(0.00635, abs=5e-5)
    sd = NoiseSchedule(ScheduleConfig(beta_start=0.00085, beta_end=0.012))
    assert sd.alphas_cumprod[-1].sqrt().item() == pytest.approx(0.0682, abs=5e-4)
    ours = NoiseSchedule()
    betas = [(math.sqrt(0.0015) + (math.sqrt(0.0195) - math.sqrt(0.0015)) * i / 999) ** 2 for i in range(1000)]
    ac = 1.0
    for b in betas:
        ac *= 1 - b
    assert ours.alphas_cumprod[0].item() == pytest.approx(0.9985)
    assert ours.alphas_cumprod[-1].item() == pytest.approx(ac, rel=1e-9)
    cos = NoiseSchedule(ScheduleConfig(kind="cosine"))
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    assert cos.alphas_cumprod[499].item() == pytest.approx(f(500) / f(0), rel=1e-6)
    z = NoiseSchedule(ScheduleConfig(zero_terminal_snr=True))
    assert z.alphas_cumprod[-1].item() == pytest.approx(0.0, abs=1e-12)
    assert z.alphas_cumprod[0].item() == pytest.approx(0.9985)
    assert torch.isfinite(z.sigmas).all()


def test_timesteps_spacing_like_diffusers():
    s = NoiseSchedule()
    assert s.timesteps(10, "leading").tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert s.timesteps(10, "trailing").tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert s.timesteps(4, "linspace").tolist() == [999, 666, 333, 0]
    with pytest.raises(ValueError, match="steps must be"):
        s.timesteps(0)
    t = s.sigma_to_t(s.sigmas[[10, 500, 999]].float())
    torch.testing.assert_close(t, torch.tensor([10.0, 500.0, 999.0]), atol=1e-3, rtol=0)


class Oracle(torch.nn.Module):
    """A 'network' that knows x0 and eps: lets us check the eps/v parametrisations and the loss targets."""

    def __init__(self, x0, sched, pred):
        super().__init__()
        self.x0, self.sched, self.pred = x0, sched, pred

    def forward(self, x_t, t, cond):
        a = self.sched.alphas_cumprod[t.round().long()].float().view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * self.x0) / (1 - a).sqrt()
        return eps if self.pred == "eps" else a.sqrt() * eps - (1 - a).sqrt() * self.x0


@pytest.mark.parametrize("pred", ["eps", "v"])
def test_parametrisations_and_loss(pred):
    sched = NoiseSchedule(ScheduleConfig(prediction=pred))
    x0 = torch.randn(3, 2, 4, 4)
    ld = LatentDiffusion(Oracle(x0, sched, pred), sched)
    assert ld.loss(x0, {}).item() < 1e-8  # the oracle's output is exactly the target
    sig = sched.sigmas[[100, 600, 900]].float()
    y = x0 + sig.view(-1, 1, 1, 1) * torch.randn_like(x0)
    torch.testing.assert_close(ld.denoise(y, sig, {}), x0, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pred", ["eps", "v"])
def test_min_snr_weights_each_timestep(pred):
    """A network off its target by 0.5 everywhere has per-sample MSE 0.25, so the loss is 0.25 x the mean min-SNR
    weight (Hang et al. 2023, eq. 8): min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v."""
    gamma = 5.0
    sched = NoiseSchedule(ScheduleConfig(prediction=pred, min_snr_gamma=gamma))
    plain = NoiseSchedule(ScheduleConfig(prediction=pred))
    x0 = torch.randn(4, 2, 4, 4)

    class Off(Oracle):
        def forward(self, x_t, t, cond):
            return super().forward(x_t, t, cond) + 0.5

    t = torch.tensor([5, 100, 400, 900])  # SNR from > gamma (small t) to << 1
    a = sched.alphas_cumprod[t].float()
    snr = a / (1 - a)
    assert snr[0] > gamma > snr[-1]
    w = snr.clamp(max=gamma) / (snr if pred == "eps" else snr + 1)
    noise = torch.randn_like(x0)
    loss = LatentDiffusion(Off(x0, sched, pred), sched).loss(x0, {}, noise=noise, t=t)
    torch.testing.assert_close(loss, 0.25 * w.mean(), atol=1e-5, rtol=1e-4)
    unweighted = LatentDiffusion(Off(x0, plain, pred), plain).loss(x0, {}, noise=noise, t=t)
    torch.testing.assert_close(unweighted, torch.tensor(0.25), atol=1e-5, rtol=1e-4)


def test_guidance_is_one_batched_call():
    calls = []

    def den(y, sigma, cond):
        calls.append(y.shape[0])
        return cond["c"].view(-1, 1) * torch.ones_like(y)

    fn = guided(den, {"c": torch.tensor([2.0])}, {"c": torch.tensor([0.5])}, scale=3.0)
    out = fn(torch.zeros(1, 4), 1.0)
    assert calls == [2] and torch.allclose(out, torch.full((1, 4), 0.5 + 3.0 * 1.5))


def _ode_solution(y, sigma_from, sigma_to):
    """The probability-flow ODE dy/dsigma = (y - D(y, sigma)) / sigma for x0 ~ N(MU, STD^2), solved exactly:
    y - MU scales with sqrt(STD^2 + sigma^2)."""
    return MU + (y - MU) * math.sqrt((STD ** 2 + sigma_to ** 2) / (STD ** 2 + sigma_from ** 2))


@pytest.mark.parametrize("name,order", [("euler", 1), ("ddim", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_deterministic_sampler_convergence_order(name, order):
    """The error at sigma_min falls as steps double at the sampler's order: a DPM++(2M) that lost its second-order
    term, or a Heun reduced to Euler, measures about 1 here instead of 2."""
    y = initial_noise(list(range(64)), (4,), 10.0).double()
    exact = _ode_solution(y, 10.0, 0.05)
    errs = []
    for n in (8, 16, 32, 64):
        sig = torch.logspace(math.log10(10.0), math.log10(0.05), n + 1, dtype=torch.float64)
        errs.append((sample(name, gaussian_denoiser, y, sig) - exact).abs().max().item())
    rates = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(abs(r - order) < 0.3 for r in rates[1:]), (errs, rates)


class _HostTraffic:
    """Counts what would be a host-device copy or a sync on a GPU: creating a tensor from host data (torch.tensor,
    torch.as_tensor of a non-tensor, Tensor.new_tensor), .to() with a device that makes a new tensor, and reading a
    tensor back (.item(), .tolist(), .cpu(), .numpy(), float(), int(), bool())."""

    def __init__(self, monkeypatch):
        self.n = 0
        T = torch.Tensor
        for name in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "new_tensor"):
            monkeypatch.setattr(T, name, self._counting(getattr(T, name)))
        to = T.to

        def counted_to(t, *a, **kw):
            r = to(t, *a, **kw)
            if r is not t and ("device" in kw or any(isinstance(v, (str, torch.device, torch.Tensor)) for v in a)):
                self.n += 1
            return r
        monkeypatch.setattr(T, "to", counted_to)
        tensor, as_tensor = torch.tensor, torch.as_tensor
        monkeypatch.setattr(torch, "tensor", self._counting(tensor))

        def counted_as_tensor(v, *a, **kw):
            if not torch.is_tensor(v):
                self.n += 1
            return as_tensor(v, *a, **kw)
        monkeypatch.setattr(torch, "as_tensor", counted_as_tensor)

    def _counting(self, fn):
        def wrapped(*a, **kw):
            self.n += 1
            return fn(*a, **kw)
        return wrapped


@pytest.mark.parametrize("name", ["ddim", "euler", "heun", "dpmpp_2m"])
def test_deterministic_samplers_copy_nothing_per_step(name, monkeypatch):
    """Through the real path (guided CFG -> LatentDiffusion.denoise -> U-Net): the host traffic of a sampler call
    does not grow with its steps, i.e. no per-step host-device copy or .item()."""
    from audioldm.unet import UNET_PRESETS, UNet
    torch.manual_seed(0)
    unet = UNet(UNET_PRESETS["tiny"](cond_dim=8)).eval()
    diff = LatentDiffusion(unet, NoiseSchedule())
    cond, uncond = {"pooled": torch.randn(2, 8)}, {"pooled": torch.zeros(2, 8)}
    den = guided(diff.denoise, cond, uncond, 3.0)
    x = torch.randn(2, 4, 8, 8)
    counts = {}
    for steps in (3, 9):
        sig = NoiseSchedule().sampling_sigmas(steps)
        diff.denoise(x, sig[0], cond)  # the log-sigma table's one copy to the device, before counting
        traffic = _HostTraffic(monkeypatch)
        with torch.no_grad():
            sample(name, den, x, sig)
        counts[steps] = traffic.n
        monkeypatch.undo()
    assert counts[3] == counts[9], counts
    # sigmas prepared once (host floats + device copy, as the CUDA-graph path does): no host traffic at all
    table = SigmaTable(NoiseSchedule().sampling_sigmas(5), x.device)
    traffic = _HostTraffic(monkeypatch)
    with torch.no_grad():
        sample(name, den, x, table)
    assert traffic.n == 0

"""The Gradio page of `audioldm ui` around a :class:`audioldm.ui.session.Session` (the request logic lives there).

Element ids the browser test and the screenshot script rely on: ``prompt``, ``negative-prompt``, ``generate``,
``edit``, ``status`` (the request's outcome, or the model's error message), ``reads``, ``sample-K-audio`` and
``sample-K-spec`` (K = 1 .. MAX_SAMPLES), ``download``.
"""

from __future__ import annotations

from .session import EDIT_MODES, MAX_SAMPLES, MAX_UPLOAD_MB, Session, describe_reads, require_gradio

__all__ = ["build_app", "launch"]

_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]  # local fonts only: nothing fetched
_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]
_CSS = "#status.error, #status .error {color: #b00020} footer {display: none !important}"


def _intro(session: Session) -> str:
    pipe = session.pipe
    d = pipe.defaults
    what = {"text": "a text prompt", "labels": "labels (the fields below)" + (
        ", or a prompt it parses into labels" if pipe.reads_prompts else ""),
        "both": "a prompt, labels, or both"}[pipe.conditioning]
    extra = ""
    if pipe.distilled is not None:
        r = pipe.distilled
        extra = (f" Distilled student: steps {r.steps}, guidance {r.guidance_min:g} to {r.guidance_max:g}, "
                 f"samplers {list(r.SAMPLERS)}, no negative prompt.")
    return (f"### {pipe.name}\nConditioned on {what}. {pipe.sample_rate} Hz; defaults: {d.duration:g} s, "
            f"{d.steps} steps, guidance {d.guidance:g}, {d.sampler}.{extra}")


def _label_widgets(gr, session: Session) -> list:
    widgets = []
    for f in session.fields:
        if f.kind == "categorical":
            widgets.append(gr.Dropdown(choices=list(f.values), value=f.values[0] if f.values else None,
                                       label=f.name, elem_id=f"label-{f.name}"))
        else:
            whole = float(f.low).is_integer() and float(f.high).is_integer()
            mid = (f.low + f.high) / 2
            widgets.append(gr.Slider(minimum=f.low, maximum=f.high, value=round(mid) if whole else mid,
                                     step=1 if whole else (f.high - f.low) / 100, label=f.name,
                                     elem_id=f"label-{f.name}"))
    return widgets


def _form(gr, session: Session) -> dict:
    """The request form: prompt, negative prompt, label widgets and sampling settings (inside the open Blocks)."""
    from ..sampling import SAMPLERS

    pipe, d = session.pipe, session.pipe.defaults
    strict = pipe.distilled is not None and pipe.teacher_folder is None  # the default hands the rest to its teacher
    samplers = list(pipe.distilled.SAMPLERS) if strict else list(SAMPLERS)
    f = {}
    with gr.Row():
        with gr.Column(scale=3):
            f["prompt"] = gr.Textbox(label="Prompt", lines=2, elem_id="prompt",
                                     visible=pipe.reads_prompts, placeholder="e.g. a violin playing C5, loud")
            f["negative"] = gr.Textbox(label="Negative prompt", elem_id="negative-prompt",
                                       visible=pipe.reads_prompts and not strict)
            f["use_labels"] = gr.Checkbox(label="use the label fields" + (
                " (a typed prompt takes precedence)" if pipe.conditioning == "labels" and pipe.reads_prompts
                else ""), value=pipe.conditioning == "labels", visible=bool(session.fields), elem_id="use-labels")
            with gr.Row():
                f["labels"] = _label_widgets(gr, session)
        with gr.Column(scale=2):
            with gr.Row():
                f["duration"] = gr.Number(label="Duration (s)", value=d.duration, elem_id="duration")
                f["steps"] = gr.Number(label="Steps", value=d.steps, precision=0, elem_id="steps")
                f["guidance"] = gr.Number(label="Guidance", value=d.guidance, elem_id="guidance")
            with gr.Row():
                f["sampler"] = gr.Dropdown(choices=samplers, value=d.sampler, label="Sampler", elem_id="sampler")
                f["num"] = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples", elem_id="num")
            with gr.Row():
                f["seed"] = gr.Number(label="Seed", value=0, precision=0, elem_id="seed")
                f["random_seed"] = gr.Checkbox(label="random seed", value=True, elem_id="random-seed")
                f["loop"] = gr.Checkbox(label="seamless loop", value=False, elem_id="loop")
    return f


def _edit_tab(gr, pipe) -> dict:
    """The audio-to-audio inputs: an uploaded clip, the mode and each mode's setting."""
    e = {"upload": gr.Audio(sources=["upload"], type="filepath", label="Input clip", elem_id="upload"),
         "mode": gr.Radio(list(EDIT_MODES), value="transform", label="Mode", elem_id="mode")}
    with gr.Row():
        e["strength"] = gr.Slider(0, 1, value=0.6, step=0.05, label="Strength (transform)")
        e["start"] = gr.Number(label="Start s (inpaint)", value=0.5)
        e["end"] = gr.Number(label="End s (inpaint)", value=1.0)
        e["cutoff"] = gr.Number(label="Cutoff Hz (super_resolve)", value=min(4000, pipe.sample_rate // 4))
        e["seconds"] = gr.Number(label="Seconds to add (continue)", value=2.0)
    return e


def _results(gr) -> list:
    """The outputs: status, what the model read, a player and a spectrogram per sample, the zip."""
    status = gr.Markdown("Ready.", elem_id="status")
    reads = gr.Markdown("", elem_id="reads")
    audios, specs = [], []
    for k in range(1, MAX_SAMPLES + 1):
        with gr.Row():
            audios.append(gr.Audio(type="filepath", format="wav", label=f"sample {k}", interactive=False,
                                   visible=False, buttons=["download"], elem_id=f"sample-{k}-audio"))
            specs.append(gr.Image(type="filepath", label=f"spectrogram {k}", interactive=False,
                                  visible=False, buttons=["download"], elem_id=f"sample-{k}-spec"))
    download = gr.File(label="Download (export format: audio + manifest.json)", visible=False, elem_id="download")
    return [status, reads, *audios, *specs, download]


def _show(gr, rec=None, error=None) -> list:
    """Updates of :func:`_results`'s outputs for a finished request ``rec``, or for the ``error`` it raised."""
    if error is not None:
        msg = f"**error:** {type(error).__name__}: {error}"
        return [gr.update(value=msg, elem_classes=["error"]), gr.update(value=""),
                *[gr.update(visible=False, value=None)] * (2 * MAX_SAMPLES), gr.update(visible=False)]
    n = len(rec["samples"])
    warn = "".join(f"\n\n**warning:** {w}" for w in rec["warnings"])
    msg = f"Done: {n} sample(s) in {rec['folder'].name}.{warn}"
    aud = [gr.update(visible=k < n, value=str(rec["wavs"][k]) if k < n else None) for k in range(MAX_SAMPLES)]
    img = [gr.update(visible=k < n, value=str(rec["pngs"][k]) if k < n else None) for k in range(MAX_SAMPLES)]
    return [gr.update(value=msg, elem_classes=[]), describe_reads(rec["samples"]), *aud, *img,
            gr.update(visible=True, value=str(rec["zip"]))]


def build_app(session: Session):
    """The gr.Blocks page for ``session`` (not launched)."""
    gr = require_gradio()
    pipe = session.pipe
    with gr.Blocks(title=f"audioldm: {pipe.name}", analytics_enabled=False) as app:
        gr.Markdown(_intro(session))
        f = _form(gr, session)
        with gr.Tabs():
            with gr.Tab("Generate"):
                go = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Tab("Audio to audio"):
                e = _edit_tab(gr, pipe)
                edit = gr.Button("Run", variant="primary", elem_id="edit")
        outputs = _results(gr)
        common = [f[k] for k in ("prompt", "negative", "use_labels", "duration", "steps", "guidance", "sampler",
                                 "seed", "random_seed", "num", "loop")] + f["labels"]

        def split(data):
            p, neg, use, dur, st, g, smp, sd, rnd, n, lp, *lab = [data[c] for c in common]
            return p, neg, use, lab, Session.settings(dur, st, g, smp, sd, rnd, n, lp)

        # inputs come as one dict (a set of components), so Gradio sees the Progress default and tracks tqdm
        def on_generate(data, progress=gr.Progress(track_tqdm=True)):
            try:
                p, neg, use, lab, s = split(data)
                return _show(gr, session.generate(p, neg, use, lab, s))
            except Exception as err:  # the page shows the model's message; the server keeps serving
                return _show(gr, error=err)

        def on_edit(data, progress=gr.Progress(track_tqdm=True)):
            try:
                p, neg, use, lab, s = split(data)
                return _show(gr, session.edit(data[e["mode"]], data[e["upload"]], p, neg, use, lab, s,
                                              strength=data[e["strength"]], start=data[e["start"]],
                                              end=data[e["end"]], cutoff_hz=data[e["cutoff"]],
                                              seconds=data[e["seconds"]]))
            except Exception as err:
                return _show(gr, error=err)

        # one queue for both buttons: one request at a time on this model
        go.click(on_generate, set(common), outputs, concurrency_limit=1, concurrency_id="model",
                 trigger_mode="multiple")
        edit.click(on_edit, {*e.values(), *common}, outputs, concurrency_limit=1, concurrency_id="model",
                   trigger_mode="multiple")
    app.queue(default_concurrency_limit=1)
    return app


def launch(session: Session, host: str = "127.0.0.1", port: int = 7860, quiet: bool = False) -> None:
    """Serve the page until interrupted. Only ``session.out_root`` is served besides Gradio's own cache."""
    gr = require_gradio()
    app = build_app(session)
    theme = gr.themes.Default(font=_FONTS, font_mono=_MONO)  # plain font names: no Google Fonts request
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, quiet=quiet,
               allowed_paths=[str(session.out_root)], theme=theme, css=_CSS, footer_links=[], ssr_mode=False,
               pwa=False, mcp_server=False, max_file_size=f"{MAX_UPLOAD_MB}mb")

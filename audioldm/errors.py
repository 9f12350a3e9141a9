"""The errors a user meets when a request or a model does not fit, in one module that imports nothing, so any module
can raise them without importing another's code (no import circles: tests/test_import_cycles.py)."""

__all__ = ["ConditionError", "UnknownWordsWarning", "PipelineError", "DistilledRangeError"]


class ConditionError(ValueError):
    """A label or prompt the conditioner cannot encode; the message lists what it knows."""


class UnknownWordsWarning(UserWarning):
    """A prompt to a learned word-level text encoder has words outside its vocabulary (they are dropped)."""


class PipelineError(ValueError):
    """A model folder or a generation request that cannot be used; the message names the component/field."""


class DistilledRangeError(PipelineError):
    """A request a distilled student cannot serve (steps, guidance or sampler outside what it was distilled for, or
    a negative prompt); its teacher can."""

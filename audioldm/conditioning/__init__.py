"""Conditioners, one module per kind, all keeping one contract (base.py): a batch of label dicts or prompts becomes
``{"pooled": [B, D], "tokens": [B, L, Dt], "mask": [B, L]}``.

- labels.py: :class:`LabelConditioner` (categorical and numeric fields; prompts parsed into labels by prompts.py)
- text.py: :class:`TextConditioner`, a learned word- or byte-level text encoder trained with the U-Net
- pretrained.py: :class:`PretrainedTextConditioner`, a frozen transformers text encoder (T5, CLAP, BERT, ...)
- clap.py: CLAP's audio tower as the condition (training on uncaptioned clips) and its checks
- joint.py: :class:`JointConditioner`, a text conditioner beside a label conditioner
- io.py: saving and loading any of them by kind
"""

from ..errors import ConditionError, UnknownWordsWarning
from .base import concat_conditions, drop_conditions, pad_tokens, prompt_reports
from .labels import (
           LabelConditioner,
           LabelConditionerConfig,
           LabelField,
           fields_from_labels,
)
from .text import ByteTokenizer, TextConditioner, TextConditionerConfig, WordTokenizer

__all__ = ["LabelField", "fields_from_labels", "LabelConditionerConfig", "LabelConditioner", "TextConditionerConfig",
           "TextConditioner", "ConditionError", "UnknownWordsWarning", "prompt_reports", "drop_conditions",
           "concat_conditions", "pad_tokens", "WordTokenizer", "ByteTokenizer"]

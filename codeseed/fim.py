"""Fill-in-the-middle prompt formats of the code models codeseed knows how to drive.

A format is data: the sentinel strings and the tokens that end a middle. The bundled model uses
the StarCoder sentinels, with `<|endoftext|>` closing the middle.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FimFormat:
    name: str
    prefix: str
    suffix: str
    middle: str
    stops: tuple[str, ...]

    def prompt(self, prefix: str, suffix: str) -> str:
        """Prefix-suffix-middle (PSM) order, the one every format below supports."""
        return f"{self.prefix}{prefix}{self.suffix}{suffix}{self.middle}"


FORMATS = (
    FimFormat("starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<|endoftext|>", "<file_sep>")),
    FimFormat("santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", ("<|endoftext|>",)),
    FimFormat("qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
              ("<|fim_pad|>", "<|endoftext|>", "<|file_sep|>", "<|im_end|>")),
    FimFormat("deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ("<｜end▁of▁sentence｜>", "<|EOT|>")),
    FimFormat("codellama", "▁<PRE>", "▁<SUF>", "▁<MID>", ("▁<EOT>", "</s>")),
)
BUNDLED = FORMATS[0]
SPECIAL_TOKENS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]


class NoFimError(ValueError):
    pass


def detect(vocab: dict[str, int]) -> FimFormat:
    """The first format whose three sentinels are all single tokens of this vocabulary."""
    for fmt in FORMATS:
        if all(tok in vocab for tok in (fmt.prefix, fmt.suffix, fmt.middle)):
            return fmt
    raise NoFimError("this model has no fill-in-the-middle tokens (known formats: "
                     + ", ".join(f.name for f in FORMATS) + "); seeded mode needs one")

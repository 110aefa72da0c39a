"""The probe model's character-level tokenizer and chat format.

One token per character (printable ASCII and newline), so every digit is its own token and
decoding is exact, plus a handful of special tokens for the chat turns. The Jinja chat template
renders::

    <|bos|><|user|>\\n{question}<|end|>\\n<|assistant|>\\n{answer}<|end|>\\n

and ``<|end|>`` is the end-of-sequence token, so generation stops at the end of the assistant
turn. :class:`ChatEncoder` builds the same ids without Jinja, for speed in training; a check in
``train_probe`` compares both.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

__all__ = [
    "BOS",
    "CHAT_TEMPLATE",
    "EOS",
    "PAD",
    "ChatEncoder",
    "build_tokenizer",
    "save_tokenizer",
]

PAD = "<|pad|>"
BOS = "<|bos|>"
EOS = "<|end|>"
UNK = "<|unk|>"
_ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
_SPECIAL = (PAD, BOS, EOS, UNK, *_ROLE_TOKENS)
_CHARACTERS = "\n" + "".join(chr(code) for code in range(32, 127))

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer, ids fixed: special tokens 0..6, then newline and ASCII 32..126."""
    vocab = {token: index for index, token in enumerate((*_SPECIAL, *_CHARACTERS))}
    # A BPE model without merges and without a pre-tokenizer splits text into characters.
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    backend.add_special_tokens(list(_SPECIAL))
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(_ROLE_TOKENS),
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        padding_side="left",
        model_max_length=512,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: Path) -> None:
    """Save with the chat template inside ``tokenizer_config.json`` (no separate Jinja file)."""
    tokenizer.save_pretrained(str(directory), save_jinja_files=False)


class ChatEncoder:
    """Ids of one user turn and the assistant's answer, built by table lookup (fast)."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        vocab: dict[str, int] = tokenizer.get_vocab()
        self._ids = {char: vocab[char] for char in _CHARACTERS}
        self._unk = vocab[UNK]
        self._prefix = [vocab[BOS], vocab["<|user|>"], vocab["\n"]]
        self._middle = [vocab[EOS], vocab["\n"], vocab["<|assistant|>"], vocab["\n"]]
        self._eos = vocab[EOS]

    def encode(self, question: str, answer: str) -> tuple[list[int], int]:
        """The ids, and the index where the answer starts.

        The answer's ids run from that index to the end and include the closing ``<|end|>``
        (the model must learn to stop); the template's trailing newline is not part of it.
        """
        prompt = [*self._prefix, *self._chars(question), *self._middle]
        return [*prompt, *self._chars(answer), self._eos], len(prompt)

    def _chars(self, text: str) -> list[int]:
        return [self._ids.get(char, self._unk) for char in text]

"""TEST DOUBLE: a tiny random-weight Llama and a byte-level BPE tokenizer, saved to a folder.

Not a trained model: its answers are noise, but they are deterministic (fixed seed), real
transformers/tokenizers artefacts, and small enough that the engine tests load it at fp32, int8
and nf4 on a CPU in well under a second. Widths are multiples of 128 because bitsandbytes'
CPU 4-bit kernel needs that. The tokenizer is byte-level BPE trained on a few sentences that
include accented letters, CJK and an emoji, so some characters span several tokens and some
tokens hold parts of characters: exactly what incremental detokenization must get right.

The end-of-sequence token's output row is zeroed, so its logit is 0 while the others are random:
greedy decoding practically never picks it and tests control length through ``max_tokens``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = ["CHAT_TEMPLATE", "EOS", "TEXT", "build_tiny_llama"]

EOS = "<|end|>"
_SPECIAL = ("<|pad|>", "<|bos|>", EOS, "<|user|>", "<|assistant|>", "<|system|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
TEXT = (
    "The quick brown fox jumps over the lazy dog. Café crème brûlée, naïve façade. "
    "日本語のテキストと絵文字 🙂🚀 mixed with numbers 12345 and words like tokenizer, "
    "batching, quantization, energy, accuracy. Σ Ω ß ø — « guillemets » ‰."
)


def _tokenizer() -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=list(_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([TEXT] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core,
        bos_token="<|bos|>",
        eos_token=EOS,
        pad_token="<|pad|>",
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_llama(folder: Path, *, seed: int = 0, layers: int = 2) -> Path:
    """Write the model and tokenizer to ``folder`` (created) and return it."""
    tokenizer = _tokenizer()
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # Random init is N(0, 0.02): logits would have a std of ~0.2, and sampling at
        # temperature 1 would be almost uniform. Scaled to a std of ~2 (unit-RMS hidden states,
        # 128 wide) it has a few likely choices per step. The EOS row is zeroed (see above).
        model.lm_head.weight.mul_(10.0)
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder

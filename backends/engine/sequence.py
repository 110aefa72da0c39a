"""Turn one sequence's generated token ids into text deltas and decide when it is finished.

Pure (no torch): the scheduler pushes each sampled id and sends on what comes back.

Incremental detokenization decodes a short window of recent tokens rather than one token at a
time, because a token may hold part of a UTF-8 character (byte-level BPE) or change how the
previous token renders (SentencePiece's leading space). The window's text minus what the same
window rendered before is the new text; while it ends in U+FFFD (an unfinished character) it is
held back until the next token completes it. This is the algorithm of Hugging Face TGI and vLLM.

Stop sequences are matched on the text, not the ids (a stop string can span tokens). Text that
could still turn out to be the start of a stop string is held back, so a client never receives
part of a stop sequence; the stop string itself is never sent (OpenAI's behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FinishReason", "SequenceDecoder", "StepText"]

FinishReason = Literal["stop", "length"]

_PROMPT_CONTEXT = 5
"""Prompt tokens decoded along with the first generated ones, so their rendering is right."""


@dataclass(frozen=True, slots=True)
class StepText:
    """What one pushed token produced: text safe to send now, and whether it ended the output."""

    text: str
    finish_reason: FinishReason | None


class SequenceDecoder:
    """Detokenize and check stop conditions for one generated sequence.

    ``max_new_tokens`` already accounts for the context window; ``eos_token_ids`` end the
    sequence with ``finish_reason="stop"`` and are counted but never rendered.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        stop: tuple[str, ...] = (),
        eos_token_ids: frozenset[int] = frozenset(),
    ) -> None:
        self._tokenizer = tokenizer
        context = prompt_ids[-_PROMPT_CONTEXT:]
        self._ids: list[int] = list(context)
        self._prefix = 0
        self._read = len(context)
        self._max_new = max_new_tokens
        self._stop = tuple(s for s in stop if s)
        self._longest_stop = max((len(s) for s in self._stop), default=0)
        self._eos = eos_token_ids
        self._pending = ""
        self.generated = 0
        """Tokens generated so far (EOS and the token that completed a stop string count)."""
        self.finish_reason: FinishReason | None = None

    def push(self, token_id: int) -> StepText:
        """Add one generated token; once finished, further pushes are an error."""
        if self.finish_reason is not None:
            raise RuntimeError("push() after the sequence finished")
        self.generated += 1
        if token_id in self._eos:
            return self._finish("stop")
        self._ids.append(token_id)
        last = self.generated >= self._max_new
        self._pending += self._next_text(final=last)
        cut = self._earliest_stop(self._pending)
        if cut is not None:
            return self._end(self._pending[:cut], "stop")
        if last:
            return self._finish("length")
        return StepText(self._release(), None)

    def _decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text

    def _next_text(self, *, final: bool) -> str:
        """New text from the window; an unfinished character waits unless ``final``."""
        before = self._decode(self._ids[self._prefix : self._read])
        after = self._decode(self._ids[self._prefix :])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before) :]

    def _earliest_stop(self, text: str) -> int | None:
        hits = [i for i in (text.find(s) for s in self._stop) if i >= 0]
        return min(hits) if hits else None

    def _release(self) -> str:
        """Send all pending text except a tail that may still grow into a stop string."""
        keep = 0
        for size in range(min(len(self._pending), self._longest_stop - 1), 0, -1):
            tail = self._pending[-size:]
            if any(s.startswith(tail) for s in self._stop):
                keep = size
                break
        out = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(out) :]
        return out

    def _finish(self, reason: FinishReason) -> StepText:
        """Flush everything held back (an unfinished character renders as U+FFFD)."""
        text = self._pending + self._next_text(final=True)
        cut = self._earliest_stop(text)
        if cut is not None:
            return self._end(text[:cut], "stop")
        return self._end(text, reason)

    def _end(self, text: str, reason: FinishReason) -> StepText:
        self.finish_reason = reason
        self._pending = ""
        return StepText(text, reason)

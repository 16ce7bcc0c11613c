"""Token ids to text as they are generated, cut at stop strings.

A stop string can end inside a token, or be split over several ("</ans" + "wer>"), so it is searched in the
decoded text, not among tokens. While the text so far ends with something a stop string starts with, that
tail is held back: a streaming client never receives text it would have to take back. The whole reply is
decoded again at each token (a few hundred tokens at most, microseconds in the Rust tokenizer) because a
byte-level token can end in the middle of a UTF-8 character, which only the next tokens complete.
"""

from __future__ import annotations

from typing import Any

INCOMPLETE = "\ufffd"  # what the decoder shows for the bytes of a character still to come


class TextStream:
    def __init__(self, tokenizer: Any, stop: list[str]):
        self._tokenizer = tokenizer
        self._stop = [s for s in stop if s]
        self._ids: list[int] = []
        self._sent = 0  # characters of the decoded text handed out so far
        self.stopped = False  # a stop string was found; nothing more will be handed out

    def push(self, token_id: int) -> str:
        """The new text that is safe to send after `token_id`; sets `stopped` when a stop string appears."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        complete = text.rstrip(INCOMPLETE)
        # Only the text not yet sent can hold a new match, plus the longest stop string's worth before it.
        first = self._find_stop(complete, max(0, self._sent - max((len(s) for s in self._stop), default=0)))
        if first is not None:
            self.stopped = True
            return self._take(complete, max(first, self._sent))
        return self._take(complete, len(complete) - self._held_back(complete))

    def flush(self) -> str:
        """What was held back, at the end of a reply that did not stop at a stop string."""
        if self.stopped:
            return ""
        return self._take(self._tokenizer.decode(self._ids, skip_special_tokens=True), None)

    def _take(self, text: str, end: int | None) -> str:
        end = len(text) if end is None else end
        piece = text[self._sent:end] if end > self._sent else ""
        self._sent = max(self._sent, end)
        return piece

    def _find_stop(self, text: str, start: int) -> int | None:
        hits = [k for k in (text.find(s, start) for s in self._stop) if k >= 0]
        return min(hits) if hits else None

    def _held_back(self, text: str) -> int:
        """Length of the longest end of `text` that is the start of a stop string."""
        longest = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest

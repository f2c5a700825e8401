"""A reply ends at the model's own end-of-turn token; what follows it is not the reply.

A server that does not stop at the model's end-of-turn token (vLLM's `ignore_eos`, a GGUF
whose end token the server does not know, llama-server `--special` rendering control
tokens as text) returns what the model wrote after its turn ended: the token itself and
chat turns it invents, ``<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>
assistant\\n...``. Recorded from the embedded SmolLM2-135M for the parse corpus
(`session13.jsonl`, `--ignore-eos` entries): an answer or a call, then ``<|im_end|>`` and
invented system, user and assistant turns. The reply is the text before the end token;
without this the template tokens after it made every such answer read as call markup and
be refused, and a call's invented turns could be read as more calls.

The end tokens are the ones llama.cpp recognises as end of turn by their text
(`src/llama-vocab.cpp`, EOT/EOG detection: ChatML ``<|im_end|>``, Llama 3 ``<|eot_id|>``,
Gemma ``<end_of_turn>``, Cohere ``<|END_OF_TURN_TOKEN|>``, GPT-2 family
``<|endoftext|>``, Granite ``<|end_of_text|>``, DeepSeek end of sentence (fullwidth bars),
Kimi ``[EOT]``, CodeLlama ``<EOT>``, SmolDocling ``<end_of_utterance>``) and Llama 2 /
Mistral ``</s>``. Not Harmony's ``<|call|>``/``<|return|>`` nor Llama's ``<|eom_id|>``:
those end a message inside one turn, and their readers handle what follows. ``<|end|>``
is both: Phi-3's end of turn (Phi-3.5's template writes it after every turn, llama.cpp
stops at it) and Harmony's end of a message inside the assistant's turn (followed by
``<|start|>assistant``). It counts only when a role's turn opening follows it, as Phi-3
writes an invented user turn (``<|end|>\n<|user|>...``, microsoft/PhiCookBook#45,
parse corpus session 15).

The reply is cut at the first end token that follows some text, unless the next thing
after it is an assistant turn opening (``<|im_start|>assistant``, ...): the model then
goes on speaking as itself, and the formats read the whole as before. A token inside a
quoted string (an odd number of ``"`` before it) is an argument's text and is passed
over, and ``</s>``, ``<EOT>`` and ``[EOT]``, which ordinary text also holds (HTML's
``<s>...</s>``), and ``<|end|>`` count only when a turn opening follows them.
"""

from __future__ import annotations

import re

_END_OF_TURN = re.compile(
    r"<\|(?:im_end|eot_id|endoftext|end_of_text|END_OF_TURN_TOKEN)\|>"
    r"|<\|end\|>|<end_of_turn>|</s>|\[EOT\]|<EOT>|<end_of_utterance>"
    "|<\uff5cend\u2581of\u2581sentence\uff5c>"
)
# what may sit between the end token and the next turn's opening: blank space and more
# end tokens (SmolLM2 writes `<|im_end|>\n<|im_end|><|im_start|>system`)
_FILLER = re.compile(r"(?:\s|" + _END_OF_TURN.pattern + r")*")
# end tokens that are also ordinary text (`</s>` closes HTML's strike-through `<s>`):
# cut at only when a turn opening follows them
_AMBIGUOUS_ENDS = frozenset({"</s>", "<EOT>", "[EOT]", "<|end|>"})
_TURN_OPENING = re.compile(
    r"<\|im_start\|>|<\|start_header_id\|>|<start_of_turn>|<\|START_OF_TURN_TOKEN\|>"
    r"|<\|(?:user|system|assistant)\|>|\[INST\]|<\uff5c(?:User|Assistant)\uff5c>"
)
# the model speaking as itself again: not a turn it invented for someone else
_ASSISTANT_OPENING = re.compile(
    r"<\|im_start\|>\s*assistant\b|<\|start_header_id\|>\s*assistant\b"
    r"|<start_of_turn>\s*model\b|<\|START_OF_TURN_TOKEN\|>\s*<\|CHATBOT_TOKEN\|>"
    r"|<\|assistant\|>|<\uff5cAssistant\uff5c>"
)
_SCAN_LIMIT = 64  # end tokens looked at: bounded work on a run of them


def end_of_turn(text: str) -> int | None:
    """Where the model's turn ends in `text` (the offset of its end-of-turn token) when
    more follows that is not the model's own next words, else `None`.

    `None` when the reply has no such token, when nothing but blank space and end tokens
    precede it (the reply would be empty: left to the formats' checks), when nothing but
    end tokens and blank space follow it (a trailing end token, which the formats strip),
    or when an assistant turn opening follows it. Linear work."""
    if "<" not in text and "[EOT]" not in text:
        return None
    for count, m in enumerate(_END_OF_TURN.finditer(text)):
        if count >= _SCAN_LIMIT:
            return None
        if _FILLER.fullmatch(text, 0, m.start()):
            continue
        if text.count('"', 0, m.start()) % 2:
            continue  # inside a quoted string: an argument's text, not the model's token
        after = _FILLER.match(text, m.end())
        rest_at = after.end() if after is not None else m.end()
        if rest_at >= len(text) or _ASSISTANT_OPENING.match(text, rest_at):
            return None
        if m.group() in _AMBIGUOUS_ENDS and not _TURN_OPENING.match(text, rest_at):
            continue
        return m.start()
    return None


def cut_invented_turns(text: str) -> tuple[str, bool]:
    """The reply up to the model's end-of-turn token (see `end_of_turn`), and whether
    anything was cut."""
    at = end_of_turn(text)
    if at is None:
        return text, False
    return text[:at], True

"""Degenerate replies: a model that repeated itself instead of calling or answering.

Small and quantised models (and large ones, late in a long session) fall into loops: the
same word, phrase, line, call or reasoning step until the token limit. Such a reply is
neither a call nor an answer; the formats refuse it (`formats.py`) and the loop asks the
model again, where showing it to the user would end the run with filler.

The test is general, built and measured on real data (benchmarks/data/degenerate, issue
#15 session 15): hundreds of SmolLM2-135M replies recorded at temperature 0, loops quoted in
public issue threads, and hundreds of real long answers (package READMEs, Debian
changelogs and copyright files, standard-library code, dpkg and apt logs, CSV, JSON, the
parse corpora's final answers) that must stay answers. Six statistics, each cheap:

- **a periodic tail** (`_periodic_tail`): with whitespace removed (loops re-wrap their
  lines and vary their spacing), the reply ends in four exact copies of one unit of 2
  to 400 characters (three of a unit of 100 or more), a letter among them, making up at
  least a quarter of it. Real
  answers vary their items (a number, a name), and logs and tables whose lines look alike
  differ in their lengths, so no copy is exact.
- **few distinct words and phrases** (`_word_salad`): a loop that varies its order
  (a ReAct chain of invented rounds) repeats few words in few orders.
- **a copied tail** (`_copied_tail`): the reply's last third compresses to almost
  nothing given the rest (zlib with the head as its dictionary): a loop whose copies vary.
- **a few lines over and over** (`_repeated_lines`): most of the reply's lines are one
  or two lines, their copies varying in length between them.
- **a stutter** (`_stutter`): a quarter of the words are the word before them again.
- **one token** (`_one_token`): a short reply that is one word over and over.

All work is linear in the text and bounded; for a plain answer the periodic test costs
one `str.rfind` of its last word over its last 1,000 characters (`_ends_in_a_repeat`).
"""

from __future__ import annotations

import operator
import zlib
from itertools import pairwise

from pilothouse.actions.fences import FENCE

_UNIT_MAX = 400  # a unit longer than this is a structure, not a loop
_PROBE = 12  # the tail whose earlier copies give the candidate periods
_CANDIDATES = 8  # candidate periods tried, nearest first
_MIN_COPIES = 4  # whole copies of the unit the loop must hold (three: an answer said thrice)
_LONG_UNIT = 100  # a unit this long needs only three copies (a paragraph said thrice)
_MIN_SPAN = 48  # characters (whitespace aside) the loop must cover
_MIN_SHARE = 4  # the loop covers at least 1/_MIN_SHARE of the reply
_MAX_CHARS = 200_000  # longer replies are judged on their last 200,000 characters


def degenerate(text: str) -> bool:
    """Whether the reply is filler: a loop, or one token over and over, where a call or
    an answer should be. Linear work, bounded (at most 200,000 characters are looked at,
    at most 10,000 words counted); never raises on any string."""
    if _ends_in_a_repeat(text) and _periodic_tail("".join(text[-_MAX_CHARS:].split())):
        return True
    if _repeated_lines(text) or _copied_tail(text):
        return True
    tokens = text.split(maxsplit=10_000)[:10_000]
    if len(tokens) < 8:
        return len(tokens) == 1 and _repeated_unit(tokens[0])
    if len(tokens) >= _STUTTER_MIN_WORDS and _stutter(tokens):
        return True
    if len(tokens) >= _SALAD_MIN_WORDS and _word_salad(text, tokens):
        return True
    return _one_token(tokens)


_STUTTER_MIN_WORDS = 16
_STUTTER_SHARE = 4  # at least 1/_STUTTER_SHARE of the words repeat the word before


def _stutter(tokens: list[str]) -> bool:
    """Whether at least a quarter of the words (with a letter in them) are the word
    before them again: ``prevent prevent prevent`` inside an answer
    (anthropics/claude-code#44743), every word written four times (ggml-org/llama.cpp
    #15311), ``Other; Other; Other;`` (google-gemini/cookbook#327). Real text doubles a
    word rarely (the answers of benchmarks/data/degenerate's tune half: at most 1.2% of
    their words); a table's empty cells (``| | |``) have no letter. The last 16 words
    are looked at first (a loop runs to the token limit, so its end stutters too); the
    pairs are compared in C; the letters are looked at only when enough pairs match."""
    tail = tokens[-_STUTTER_MIN_WORDS:]
    if sum(map(operator.eq, tail, tail[1:])) * _STUTTER_SHARE < len(tail) - 1:
        return False  # the end does not stutter: a loop runs to the token limit
    pairs = len(tokens) - 1
    if sum(map(operator.eq, tokens, tokens[1:])) * _STUTTER_SHARE < pairs:
        return False
    same = sum(1 for a, b in pairwise(tokens) if a == b and any(c.isalpha() for c in a))
    return same * _STUTTER_SHARE >= pairs


def _one_token(tokens: list[str]) -> bool:
    """At least 8 tokens, one of them at least three quarters of all, and at most 3
    distinct (anthropics/claude-code and kirodotdev/Kiro threads: ``court`` repeated,
    then ``course``)."""
    counts: dict[str, int] = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
        if len(counts) > 3:
            return False
    return max(counts.values()) * 4 >= len(tokens) * 3


_COPY_MIN_TAIL = 60  # bytes: a shorter last third compresses too little to judge
_COPY_RATIO = 24  # the last third compresses this many times over, given the rest
_COPY_GATE = 32  # the reply's last characters must occur before (cheap gate)
_COPY_WINDOW = 32_768  # zlib's window: the head is read as its last 32 KiB


def _copied_tail(text: str) -> bool:
    """Whether the last third of the reply (whitespace runs made one space) is almost all
    a copy of what came before it: compressed with the rest of the reply as zlib's
    dictionary, it shrinks at least 24 times (and is at least 60 bytes). A loop whose
    copies vary (fragments cut at different places, a unit copied twice or three times,
    a clause loop with no spaces) is caught here, where the periodic test needs exact
    copies. A quarter of the tail must be letters (a rule ``-----`` or ``1000...0`` is
    not a loop). Real answers say new things at their end: the tune half's answers compress
    at most 15.5 times so (a dpkg log, whose lines repeat but for the package and the
    status word), prose and code 2 to 8 times. Gated by a cheap test (the last 32
    characters occur earlier), so a plain answer pays one `str.find`; the compression
    is linear, over at most 32 KiB of head."""
    end = len(text.rstrip())
    if end < 3 * _COPY_GATE or text.find(text[end - _COPY_GATE : end], 0, end - 1) < 0:
        return False
    data = " ".join(text[-_MAX_CHARS:].split()).encode("utf-8", "surrogatepass")
    cut = len(data) - len(data) // 3
    tail = data[cut:]
    if len(tail) < _COPY_MIN_TAIL:
        return False
    tail_text = tail.decode("utf-8", "ignore")
    if sum(1 for c in tail_text if c.isalpha()) * 4 < len(tail_text):
        return False  # a rule, a run of zeros, a row of numbers: not a loop of words
    head = data[max(0, cut - _COPY_WINDOW) : cut]
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, head)
    packed = len(packer.compress(tail)) + len(packer.flush())
    return packed * _COPY_RATIO <= len(tail)


def _ends_in_a_repeat(text: str) -> bool:
    """Whether the reply's last characters (up to 8, from its last word) occur earlier in
    its last 1,000 characters: what every loop's end does (the cut-off last copy is a
    prefix of the unit), and most answers' ends do not. A cheap gate before the reply is
    copied without its whitespace, which keeps a plain answer's cost flat."""
    end = len(text.rstrip())
    if end < _MIN_SPAN:
        return False
    last = text[max(0, end - 64) : end].split()[-1][-8:]
    return text.rfind(last, max(0, end - 1000), end - 1) >= 0


def _periodic_tail(squeezed: str) -> bool:
    """Whether `squeezed` (the reply without whitespace) ends in a loop: a unit of 2 to
    400 characters with a letter in it, copied exactly at least four times in a row up
    to the end (the last copy may be cut off), or three times for a unit of 100
    characters or more (a paragraph written three times over; a sentence said thrice can
    still be an answer), the copies covering at least 48 characters and a quarter of the
    reply. Candidate periods are the distances back to earlier copies of the last 12
    characters (found with `str.rfind`, at most 8 of them)."""
    n = len(squeezed)
    if n < _MIN_SPAN:
        return False
    probe = squeezed[-_PROBE:]
    end = n - _PROBE  # the next earlier copy must start before this
    lowest = max(0, n - _PROBE - _UNIT_MAX)
    for _ in range(_CANDIDATES):
        found = squeezed.rfind(probe, lowest, end + _PROBE - 1)
        if found < 0:
            return False
        end = found
        period = n - _PROBE - found
        if period < 2:
            continue
        unit = squeezed[n - period :]
        if len(set(unit)) < 2 or not any(c.isalpha() for c in unit):
            continue  # a rule, a number, a row of digits and commas: not a loop
        span = _copies_span(squeezed, period)
        copies = _MIN_COPIES if period < _LONG_UNIT else _MIN_COPIES - 1
        if span >= max(copies * period, _MIN_SPAN) and span * _MIN_SHARE >= n:
            return True
    return False


def _copies_span(text: str, period: int) -> int:
    """How many characters at the end of `text` are exact copies of the unit before
    them: walking back a period at a time while each block equals the one before it,
    then the cut-off copy before the first whole one, character by character. Blocks are
    compared as slices, so the work is done in C. Copies must be exact: a list or a
    table whose rows differ only in a counter (``| feature 3 | yes | no |``) is an
    answer, so a loop whose copies count up is left to the other tests."""
    n = len(text)
    start = n - period  # text[start:] is the last unit (maybe cut off)
    while start - period >= 0 and text[start - period : start] == text[start : start + period]:
        start -= period
    while start > 0 and text[start - 1] == text[start - 1 + period]:
        start -= 1
    return n - start


def _repeated_lines(text: str) -> bool:
    """Whether the reply is a loop of a few lines whose copies vary in length, so they
    do not line up as a period: at least 16 non-blank lines, the most frequent one at
    least 12 times and three fifths of them, or the two most frequent at least 8 times
    each and three fifths together (google-gemini/gemini-cli#15877: "One detail: X. /
    Correct. / I'll execute." over and over, X changing). An answer that lists things
    repeats no line that often (none of the tune half's answers, logs and code included).
    Linear (at most 10,000 lines)."""
    if text.count("\n") < 15:
        return False
    counts: dict[str, int] = {}
    total = 0
    for line in text.split("\n", 10_000)[:10_000]:
        line = line.strip()
        if line:
            counts[line] = counts.get(line, 0) + 1
            total += 1
    if total < 16:
        return False
    top = sorted(counts.values(), reverse=True)[:2]
    if top[0] >= 12 and top[0] * 5 >= total * 3:
        return True
    return len(top) == 2 and top[1] >= 8 and (top[0] + top[1]) * 5 >= total * 3


_SALAD_MIN_WORDS = 60  # shorter replies are judged by the other tests
_SALAD_MAX_DISTINCT = 0.35  # distinct words per word, at most
_SALAD_MAX_PHRASES = 0.75  # distinct runs of four words per run, at most
_SALAD_TABLE_ROWS = 3  # a reply with this many table rows is a table, not salad
_SALAD_PROBE = 40  # the last words looked at first: a loop that runs to the end repeats there


def _word_salad(text: str, tokens: list[str]) -> bool:
    """Whether the reply is a loop that varies: at least 60 words, at most 35% of them
    distinct and at most 75% of its runs of four words distinct (a ReAct chain whose
    action and invented observation change from round to round, a word-salad loop, a loop
    of forged tool results whose call id counts up). Prose keeps more than half its words
    distinct at these lengths and almost all its four-word runs; code repeats its keyword
    arguments and a table its bars and cells, so a reply holding a code fence or three
    table rows is not judged. A loop runs to the token limit, so the last 40 words are
    looked at first: more than 24 distinct there and the reply is not judged further.
    Linear work: one set of the (at most 10,000) words, and of their four-word runs only
    when the words are few."""
    if len(set(tokens[-_SALAD_PROBE:])) > _SALAD_PROBE * 3 // 5:
        return False  # the tail varies like prose: no loop ends this reply (cheap test)
    distinct = len(set(tokens))
    if distinct > len(tokens) * _SALAD_MAX_DISTINCT:
        return False
    if FENCE in text or text.count("\n|") + text.startswith("|") >= _SALAD_TABLE_ROWS:
        return False  # code (keyword arguments repeat) or a table
    runs = len(tokens) - 3
    phrases = len(set(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False)))
    return phrases <= runs * _SALAD_MAX_PHRASES


def _repeated_unit(word: str) -> bool:
    """Whether `word` is a unit of 2 to 8 characters (at least 2 distinct ones)
    repeated at least 8 times, the whole word: ``nynynyny...`` (google-gemini/gemini-cli
    #5813), ``abcabcabc...``. A number such as ``1000000000`` or a rule ``--------`` is
    not (one character)."""
    if len(word) < 16 or len(set(word[:8])) < 2:
        return False
    for period in range(2, 9):
        if len(word) < 8 * period:
            break
        if all(word[i] == word[i - period] for i in range(period, len(word))):
            return True
    return False

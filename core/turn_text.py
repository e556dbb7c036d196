"""Does the caller's transcript so far sound finished? The text half of the end-of-turn check.

Smart Turn alone is not trusted (MODELS.md): on the evaluation set's mid-sentence pauses it calls
"my order number is …" complete as often as a finished turn. What the caller has said so far
tells many of those apart: a turn does not end on "the", "of", "is" or "could", and Whisper
marks what it hears trailing off ("I was wondering if I could...", "the s-"). The check is used
with the acoustic verdict, never alone: Smart Turn must say "complete" *and* the words must not
say "unfinished". A missing full stop is not taken as "unfinished": Whisper tiny drops it from
finished turns heard with only 100 ms of silence after them ("Ever failed"). Plain string work;
it runs off the frame path with the STT result.
"""

import re

NEVER_LAST_WORDS = frozenset("""
a an the my your our their his her its
and or but because if whether than
um uh er erm
""".split())
"""Words no turn ends on, question or statement: articles, possessives, conjunctions, fillers."""

OPEN_STATEMENT_WORDS = NEVER_LAST_WORDS | frozenset("""
of to for with from at into onto between
is are was were be been being am do does did have has had
will would can could shall should may might must
i we he she they it's i'm as while when where which who whose
""".split())
"""Words a statement does not end on: prepositions, auxiliaries and modals, subject pronouns,
relative words. Ambiguous ones a finished turn often ends on are left out ("thank *you*", "I think
*so*", "put me *through*"); an auxiliary can end a short answer ("yes, I *can*"): such a turn waits
for the hangover, a cost of hundreds of milliseconds where a wrong "finished" cuts the caller off.
A question may end on a preposition ("who am I speaking *to*?"): only ``NEVER_LAST_WORDS`` count there."""

TRAILING_OFF = ("...", "…", "-", ",", ":", ";")
"""How Whisper writes speech that stops short: an ellipsis, a cut-off word, a clause left open."""

_WORD = re.compile(r"[a-z0-9']+")


def transcript_sounds_unfinished(text):
    """True when the words so far cannot end the turn.

    Nothing heard; trailing off (``TRAILING_OFF``); or a last word that leaves the sentence open
    (``OPEN_STATEMENT_WORDS``, or ``NEVER_LAST_WORDS`` for a question).
    """
    text = (text or "").strip()
    if not text or text.endswith(TRAILING_OFF):
        return True
    words = _WORD.findall(text.lower())
    return not words or words[-1] in (NEVER_LAST_WORDS if text.endswith("?") else OPEN_STATEMENT_WORDS)

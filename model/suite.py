"""A behavioural test suite for the sentiment model, in the manner of
CheckList (Ribeiro et al., 2020): short reviews made from templates, each
with the verdict a reader gives it, grouped by the capability it tests.

Written for Critic (issue 15) from the templates below; no case comes from a
dataset, and no case is used to train or choose anything but what this suite
reports. `critic evaluate --suite [--artifact model.tar.gz]` prints the pass
rate of each capability.

Every case is labelled positive (1) or negative (0): the model has no neutral
class, so a "negated neutral" case pairs a negated neutral clause with a
verdict, and passes when the negation does not flip that verdict. Sarcasm is
listed as known-hard: reported, but not in the total.

The cases are a fixed function of this file (sampling is seeded), so a pass
rate means the same cases from one run, one model and one machine to the next.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

POSITIVE, NEGATIVE = 1, 0
# At most this many cases from one template's product: templates stay balanced.
PER_TEMPLATE = 24
SEED = 15

GOOD = ["good", "great", "wonderful", "excellent", "brilliant", "enjoyable", "entertaining", "amazing",
        "fantastic", "superb", "impressive", "beautiful"]
BAD = ["bad", "terrible", "awful", "boring", "dull", "horrible", "stupid", "disappointing", "tedious",
       "poor", "weak", "painful"]
THINGS = ["the movie", "this film", "it", "the acting", "the story", "the script", "the ending", "the cast"]
GOOD_NOUNS = ["a masterpiece", "a gem", "a triumph", "a classic", "a delight", "a must-see"]
BAD_NOUNS = ["a mess", "a disaster", "a waste of time", "garbage", "a letdown", "a bore"]
LIKE = ["like", "enjoy", "love", "recommend", "care for"]
INTENSE = ["really", "very", "truly", "absolutely", "incredibly", "so", "extremely", "utterly"]


@dataclass(frozen=True)
class Case:
    text: str
    label: int  # 1 positive, 0 negative
    capability: str


@dataclass(frozen=True)
class Capability:
    name: str
    description: str
    counted: bool = True  # False: known-hard, reported apart from the total


CAPABILITIES = (
    Capability("negated positive", 'a positive word or verb under "not", "never", "n\'t": negative'),
    Capability("negated negative", 'a negative word under a negation ("not bad", "never boring"): positive'),
    Capability("hedged negation", '"hardly", "far from", "nothing", "no": the verdict flips'),
    Capability("negated neutral", "a negated neutral clause beside a verdict: the verdict stands"),
    Capability("contrast", 'two clauses of opposite polarity: the verdict follows "but", "though", "yet"'),
    Capability("one-word verdict", "a review of one word or a short exclamation"),
    Capability("rating", 'a score out of 10 or in stars: 7 and up positive, 4 and under negative'),
    Capability("comparison", "better or worse than something: the comparison gives the verdict"),
    Capability("intensifier", "an intensified polar word keeps its polarity"),
    Capability("issue 15 examples", "the reviews reported in issue 15"),
    Capability("sarcasm", "praise that means scorn (known-hard: not counted in the total)", counted=False),
)


def _fill(template: str, label: int, capability: str, rng: random.Random, **slots: list[str]) -> list[Case]:
    """The template with every combination of its slots, sampled down to
    PER_TEMPLATE, first letter capitalised."""
    names = list(slots)
    combos = list(itertools.product(*(slots[n] for n in names)))
    if len(combos) > PER_TEMPLATE:
        combos = rng.sample(combos, PER_TEMPLATE)
    cases = []
    for combo in combos:
        text = template.format(**dict(zip(names, combo)))
        cases.append(Case(text[0].upper() + text[1:], label, capability))
    return cases


def _negation(rng) -> list[Case]:
    neg, pos = "negated positive", "negated negative"
    return [
        *_fill("{thing} was not {good}.", NEGATIVE, neg, rng, thing=THINGS, good=GOOD),
        *_fill("{thing} wasn't {good}.", NEGATIVE, neg, rng, thing=THINGS, good=GOOD),
        *_fill("{thing} is not {good} at all.", NEGATIVE, neg, rng, thing=THINGS, good=GOOD),
        *_fill("not {good}.", NEGATIVE, neg, rng, good=GOOD),
        *_fill("I didn't {like} this movie.", NEGATIVE, neg, rng, like=LIKE),
        *_fill("I did not {like} it at all.", NEGATIVE, neg, rng, like=LIKE),
        *_fill("I can't say I {like} this film.", NEGATIVE, neg, rng, like=LIKE),
        *_fill("{thing} was never {good}.", NEGATIVE, neg, rng, thing=THINGS[:3], good=GOOD),
        *_fill("{thing} was not {bad}.", POSITIVE, pos, rng, thing=THINGS, bad=BAD),
        *_fill("{thing} wasn't {bad} at all.", POSITIVE, pos, rng, thing=THINGS, bad=BAD),
        *_fill("not {bad} at all.", POSITIVE, pos, rng, bad=BAD),
        *_fill("{thing} is never {bad}.", POSITIVE, pos, rng, thing=THINGS[:3], bad=["boring", "dull", "tedious"]),
        *_fill("I didn't {verb} a single minute of it.", POSITIVE, pos, rng, verb=["hate", "regret", "mind"]),
        *_fill("I never got {bored}.", POSITIVE, pos, rng, bored=["bored", "tired of it", "restless"]),
        *_fill("you won't be {disappointed}.", POSITIVE, pos, rng, disappointed=["disappointed", "bored", "sorry"]),
        *_fill("I don't regret {watching} it.", POSITIVE, pos, rng, watching=["watching", "seeing", "buying"]),
    ]


def _hedged(rng) -> list[Case]:
    cap = "hedged negation"
    return [
        *_fill("hardly {noun}.", NEGATIVE, cap, rng, noun=GOOD_NOUNS),
        *_fill("{thing} is far from {good}.", NEGATIVE, cap, rng, thing=THINGS, good=["good", "great", "perfect",
                                                                                     "brilliant", "excellent"]),
        *_fill("nothing {special} about {thing}.", NEGATIVE, cap, rng, special=["special", "good", "memorable"],
               thing=THINGS),
        *_fill("no {noun} here.", NEGATIVE, cap, rng, noun=["masterpiece", "classic", "gem", "fun"]),
        *_fill("{thing} is far from {bad}.", POSITIVE, cap, rng, thing=THINGS, bad=["bad", "boring", "terrible",
                                                                                   "dull"]),
        *_fill("there is nothing {bad} about {thing}.", POSITIVE, cap, rng, bad=["wrong", "bad", "boring"],
               thing=THINGS),
    ]


NEUTRAL_NEGATED = ["it is not a sequel", "I did not see it in a cinema", "it isn't in English",
                   "I had not read the book", "it is not a long film", "I didn't know the director"]


def _negated_neutral(rng) -> list[Case]:
    cap = "negated neutral"
    return [
        *_fill("{neutral}, and {thing} is {good}.", POSITIVE, cap, rng, neutral=NEUTRAL_NEGATED, thing=THINGS[:4],
               good=GOOD[:6]),
        *_fill("{neutral}. {thing} was {bad}.", NEGATIVE, cap, rng, neutral=NEUTRAL_NEGATED, thing=THINGS[:4],
               bad=BAD[:6]),
        *_fill("{neutral}, but it was {good}.", POSITIVE, cap, rng, neutral=NEUTRAL_NEGATED, good=GOOD),
        *_fill("{neutral}, but it was {bad}.", NEGATIVE, cap, rng, neutral=NEUTRAL_NEGATED, bad=BAD),
    ]


def _contrast(rng) -> list[Case]:
    cap = "contrast"
    parts = ["the acting", "the story", "the music", "the cast", "the first half", "the trailer"]
    return [
        *_fill("{a} was {good}, but {b} was {bad}.", NEGATIVE, cap, rng, a=parts, good=GOOD[:6], b=THINGS[:2],
               bad=BAD[:6]),
        *_fill("{a} was {bad}, but {b} was {good}.", POSITIVE, cap, rng, a=parts, bad=BAD[:6], b=THINGS[:2],
               good=GOOD[:6]),
        *_fill("I expected to {hate} it, but it was {good}.", POSITIVE, cap, rng, hate=["hate", "dislike"],
               good=GOOD),
        *_fill("I expected to {love} it, but it was {bad}.", NEGATIVE, cap, rng, love=["love", "like", "enjoy"],
               bad=BAD),
        *_fill("it starts {good}, but the rest is {bad}.", NEGATIVE, cap, rng, good=GOOD[:6], bad=BAD[:6]),
        *_fill("it starts {bad}, but the rest is {good}.", POSITIVE, cap, rng, bad=BAD[:6], good=GOOD[:6]),
        *_fill("although {a} is {bad}, {b} is {good}.", POSITIVE, cap, rng, a=parts, bad=BAD[:4], b=THINGS[:2],
               good=GOOD[:4]),
        *_fill("{a} is {good}, yet {b} is {bad}.", NEGATIVE, cap, rng, a=parts, good=GOOD[:4], b=THINGS[:2],
               bad=BAD[:4]),
    ]


def _one_word(rng) -> list[Case]:
    cap = "one-word verdict"
    return [
        *_fill("{word}{end}", POSITIVE, cap, rng, word=["masterpiece", "brilliant", "superb", "loved it",
                                                          "wonderful", "excellent", "oscar-worthy", "amazing",
                                                          "a gem", "stunning", "magnificent", "perfect"],
               end=[".", "!"]),
        *_fill("{word}{end}", NEGATIVE, cap, rng, word=["awful", "garbage", "boring", "hated it", "terrible",
                                                          "rubbish", "dreadful", "avoid", "unwatchable",
                                                          "pathetic", "a waste", "horrible"],
               end=[".", "!"]),
    ]


def _rating(rng) -> list[Case]:
    cap = "rating"
    good, bad = ["7", "8", "9", "10"], ["1", "2", "3", "4"]
    return [
        *_fill("{n}/10", POSITIVE, cap, rng, n=good),
        *_fill("{n}/10", NEGATIVE, cap, rng, n=bad),
        *_fill("{n}/10.", POSITIVE, cap, rng, n=good),
        *_fill("{n}/10.", NEGATIVE, cap, rng, n=bad),
        *_fill("I give it {n} out of 10.", POSITIVE, cap, rng, n=good),
        *_fill("I give it {n} out of 10.", NEGATIVE, cap, rng, n=bad),
        *_fill("rating: {n}/10", POSITIVE, cap, rng, n=good),
        *_fill("rating: {n}/10", NEGATIVE, cap, rng, n=bad),
        *_fill("{stars} stars.", POSITIVE, cap, rng, stars=["five", "5"]),
        *_fill("{stars} star.", NEGATIVE, cap, rng, stars=["one", "1"]),
    ]


def _comparison(rng) -> list[Case]:
    cap = "comparison"
    others = ["the original", "the book", "the first one", "I expected", "the trailer suggested"]
    return [
        *_fill("{better} than {other}.", POSITIVE, cap, rng, better=["better", "much better", "far better",
                                                                      "funnier"], other=others),
        *_fill("{worse} than {other}.", NEGATIVE, cap, rng, worse=["worse", "much worse", "far worse", "duller"],
               other=others),
        *_fill("not as {good} as {other}.", NEGATIVE, cap, rng, good=["good", "funny", "exciting"], other=others),
        *_fill("the {best} {film} I have seen this year.", POSITIVE, cap, rng, best=["best", "funniest", "finest"],
               film=["film", "movie", "comedy"]),
        *_fill("the {worst} {film} I have ever seen.", NEGATIVE, cap, rng, worst=["worst", "dullest", "silliest"],
               film=["film", "movie", "comedy"]),
        *_fill("I have seen {better} {film}.", NEGATIVE, cap, rng, better=["better", "far better"],
               film=["films", "movies", "student films"]),
    ]


def _intensifier(rng) -> list[Case]:
    cap = "intensifier"
    return [
        *_fill("{thing} was {very} {good}.", POSITIVE, cap, rng, thing=THINGS, very=INTENSE, good=GOOD),
        *_fill("{thing} was {very} {bad}.", NEGATIVE, cap, rng, thing=THINGS, very=INTENSE, bad=BAD),
        *_fill("{very} {good}!", POSITIVE, cap, rng, very=INTENSE, good=GOOD),
        *_fill("{very} {bad}!", NEGATIVE, cap, rng, very=INTENSE, bad=BAD),
    ]


ISSUE_15 = [("Not bad at all.", POSITIVE), ("I expected to hate it, but it was not bad at all.", POSITIVE),
            ("Not good.", NEGATIVE), ("Oscar-worthy.", POSITIVE),
            ("The trailer was great; the movie was not.", NEGATIVE),
            ("Not bad at all. I expected to hate it, but the cast won me over.", POSITIVE)]

SARCASM = ["Oh great, another two hours of my life I will never get back.",
           "What a masterpiece, if you enjoy watching paint dry.",
           "Best nap I have had in years.",
           "Wow, just wow. I want my money back.",
           "Sure, because every film needs a ninety-minute car chase.",
           "A triumph of editing: I could not tell which scene was which.",
           "Brilliant, if you have never seen a movie before.",
           "I laughed so hard. At the drama.",
           "Perfect for insomniacs.",
           "The special effects were truly special. Special as in cardboard."]


def cases() -> list[Case]:
    """Every case, in a fixed order."""
    rng = random.Random(SEED)
    reported = {text for text, _ in ISSUE_15}  # each text once: the issue's own examples count there
    templated = [*_negation(rng), *_hedged(rng), *_negated_neutral(rng), *_contrast(rng), *_one_word(rng),
                 *_rating(rng), *_comparison(rng), *_intensifier(rng)]
    return [
        *(case for case in templated if case.text not in reported),
        *(Case(text, label, "issue 15 examples") for text, label in ISSUE_15),
        *(Case(text, NEGATIVE, "sarcasm") for text in SARCASM),
    ]


def pass_rates(suite: list[Case], scores: list[float]) -> dict:
    """{"capabilities": {name: {cases, passed, pass_rate, counted}}, "total": {...}, "failures": {name: [...]}};
    a case passes when P(positive) is on its label's side of 0.5. The total counts every counted capability."""
    counted = {c.name: c.counted for c in CAPABILITIES}
    rows: dict[str, dict] = {}
    failures: dict[str, list] = {}
    for case, score in zip(suite, scores):
        row = rows.setdefault(case.capability, {"cases": 0, "passed": 0, "counted": counted[case.capability]})
        passed = (score >= 0.5) == (case.label == POSITIVE)
        row["cases"] += 1
        row["passed"] += passed
        if not passed:
            failures.setdefault(case.capability, []).append({"text": case.text, "label": case.label,
                                                             "score": round(score, 4)})
    for row in rows.values():
        row["pass_rate"] = row["passed"] / row["cases"]
    total = [r for r in rows.values() if r["counted"]]
    cases_counted, passed_counted = sum(r["cases"] for r in total), sum(r["passed"] for r in total)
    # The mean over capabilities weighs each alike, whatever its number of cases.
    return {"capabilities": rows,
            "total": {"cases": cases_counted, "passed": passed_counted, "pass_rate": passed_counted / cases_counted,
                      "mean_capability_pass_rate": sum(r["pass_rate"] for r in total) / len(total)},
            "failures": failures}

"""Review text -> tokens. One module, used by training and serving alike.

Steps: decode, strip HTML, normalise (NFKC, lower case, one kind of
apostrophe, "n't" -> " not"), tokenise. Nothing is dropped or stemmed: in
cross-validation by movie, removing stopwords cost the n-gram model about a
point ("the worst", "a must", "not even" are evidence) and Porter stems gained
0.1, within noise, at twice the time (scripts/ablate_preprocessing.py).

HTML is stripped with the standard library's html.parser, which replaced
BeautifulSoup (`BeautifulSoup(text, "html.parser").get_text(" ")`) so that the
inference artifact needs nothing the SageMaker PyTorch image lacks. It
reproduces what BeautifulSoup made of the same parser's events; the tokens
were checked identical on all 100,000 IMDB reviews (scripts/html_parity.py),
and tests/model/test_preprocess.py compares the two on tricky and random markup.
"""
from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from html.entities import html5
from html.parser import HTMLParser

# A review longer than this is cut to its head and tail: sentiment sits at the
# start and the end, and no step below may grow with an unbounded input.
MAX_CHARS = 100_000

# Words of letters and digits in any script, and punctuation: "!" and "?" carry
# tone, the rest mark where clauses end (in n-grams: "great ." is not "great acting").
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?|[!?.,;:()\"-]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_NOT = re.compile(r"n't\b")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

# What BeautifulSoup's HTML tree builder knew, as of beautifulsoup4 4.15 (the
# version the shipped model was trained with):
# - every HTML5 entity name, with or without its ";", and the text it stands for
#   (the first in sorted order wins: "amp" before "amp;");
_ENTITIES: dict[str, str] = {}
for _name, _text in sorted(html5.items()):
    _ENTITIES.setdefault(_name.removesuffix(";"), _text)
# - void elements: closed as soon as they open, and one later end tag of the
#   same name is then ignored;
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem", "meta", "param",
    "source", "track", "wbr", "basefont", "bgsound", "command", "frame", "image", "isindex", "nextid", "spacer"})
# - elements whose text get_text() leaves out (scripts, styles, templates and
#   ruby annotations: code or asides, not the review);
_HIDDEN = frozenset({"script", "style", "template", "rt", "rp"})
# - elements inside which a run of whitespace is kept as it is; elsewhere it
#   becomes one "\n" (if it has one) or one " ".
_VERBATIM = frozenset({"pre", "textarea"})
_ASCII_SPACES = " \n\t\f\r"
# bs4 maps these numeric references to Windows-1252, as HTML5 says.
_C1 = {n: bytes([n]).decode("cp1252") for n in range(0x80, 0xA0) if n not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}
_DECIMAL = re.compile("^([0-9]+)(.*)")
_HEX = re.compile("^([0-9a-f]+)(.*)")


class ReviewError(ValueError):
    """The input cannot be read as a review (not UTF-8, not text, empty)."""


def decode(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ReviewError("review is not valid UTF-8") from None
    raise ReviewError(f"review must be text, not {type(raw).__name__}")


def _character(code: int) -> str:
    """The text of a numeric character reference (HTML5's rules, as bs4 applies them)."""
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return _C1.get(code) or chr(code)


def _charref(name: str) -> tuple[str, str]:
    """(text, trailing data) of "&#<name>;", as bs4's handle_charref reads it."""
    base, number = 10, _DECIMAL
    if name.startswith(("x", "X")):
        name, base, number = name[1:], 16, _HEX
    try:
        return _character(int(name, base)), ""
    except ValueError:  # not a plain number, or a decimal one of over 4,300 digits
        match = number.search(name)
        if match is None:
            return "", name
        digits, extra = match.groups()
        digits = digits.lstrip("0")
        # bs4 raises ValueError past 4,300 digits; past 8, no number is a character.
        return _character(int(digits or "0", base) if len(digits) <= 8 else 0x110000), extra


class _Text(HTMLParser):
    """The text BeautifulSoup(markup, "html.parser").get_text(" ") gives: the
    same parser's events, handled as bs4's tree builder handles them, keeping
    only what decides the text (the names of the open elements, not a tree).

    A string is a run of character data between two pieces of markup: every
    tag (but an ignored end tag), comment, declaration and processing
    instruction ends one, and the strings are joined with " ". Comments,
    doctypes, processing instructions and marked sections other than CDATA
    are not text; CDATA sections are."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)  # as bs4: references come one by one
        self.strings: list[str] = []
        self._data: list[str] = []
        self._open: list[str] = []
        self._hidden = 0  # open elements in _HIDDEN
        self._verbatim = 0  # open elements in _VERBATIM
        self._closed_voids: list[str] = []

    def text(self) -> str:
        return " ".join(self.strings)

    def _end_string(self, shown: bool | None = None) -> None:
        # shown: None for character data (hidden inside script, style...), else as given
        if not self._data:
            return
        data = "".join(self._data)
        self._data = []
        if not self._verbatim and not data.strip(_ASCII_SPACES):
            data = "\n" if "\n" in data else " "
        if shown if shown is not None else not self._hidden:
            self.strings.append(data)

    def _push(self, tag: str) -> None:
        self._open.append(tag)
        self._hidden += tag in _HIDDEN
        self._verbatim += tag in _VERBATIM

    def _close(self, tag: str) -> None:
        # Close the most recent open element of that name and all inside it;
        # an end tag with no open element of its name changes nothing.
        self._end_string()
        if tag in self._open:
            while True:
                last = self._open.pop()
                self._hidden -= last in _HIDDEN
                self._verbatim -= last in _VERBATIM
                if last == tag:
                    break

    def handle_starttag(self, tag, attrs):
        self._end_string()
        self._push(tag)
        if tag in _VOID:
            self._close(tag)
            self._closed_voids.append(tag)

    def handle_startendtag(self, tag, attrs):  # <tag/>: opened and closed, void or not
        self._end_string()
        self._push(tag)
        self._close(tag)

    def handle_endtag(self, tag):
        if tag in self._closed_voids:  # the end tag of a void element: ignored, and ends no string
            self._closed_voids.remove(tag)
        else:
            self._close(tag)

    def handle_data(self, data):
        self._data.append(data)

    def handle_entityref(self, name):  # an unknown name stays as written, less its ";"
        self._data.append(_ENTITIES.get(name, "&" + name))

    def handle_charref(self, name):
        self._data.extend(_charref(name))

    def _markup(self, data: str = "", shown: bool = False) -> None:
        self._end_string()
        self._data.append(data)
        self._end_string(shown)

    def handle_comment(self, data):
        self._markup()

    def handle_decl(self, decl):
        self._markup()

    def handle_pi(self, data):
        self._markup()

    def unknown_decl(self, data):
        if data.upper().startswith("CDATA["):
            self._markup(data[len("CDATA["):], shown=True)
        else:
            self._markup()

    def close(self):
        super().close()
        self._end_string()  # the last string, as BeautifulSoup ends its feed

    def parse_html_declaration(self, i):
        try:
            return super().parse_html_declaration(i)
        except AssertionError:
            # "<![" not followed by CDATA or an MS Office section: html.parser
            # gives up on the whole input (bs4 raised ParserRejectedMarkup).
            # Read that "<" as text, as any other "<" that starts no markup.
            self.handle_data("<")
            return i + 1


def strip_html(text: str) -> str:
    # IMDB's only markup is <br />: a regex handles it; the parser does the rest.
    text = _BR.sub(" ", text)
    if "<" in text or "&" in text:
        parser = _Text()
        try:
            parser.feed(text)
            parser.close()
        except AssertionError:
            # html.parser's way of refusing markup (none known since the
            # override above): keep the review's text as it is rather than fail it.
            return text
        text = parser.text()
    return text


def normalise(text: str) -> str:
    if not text.isascii():  # NFKC leaves ASCII as it is: skip the pass
        text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    return _NOT.sub(" not", text.lower().replace("`", "'"))


def tokenize(raw: str | bytes) -> list[str]:
    """Tokens of a review. Raises ReviewError for input that is not a review;
    a review with no word in it gives an empty list."""
    text = decode(raw)
    if "\x00" in text:
        text = text.replace("\x00", " ")
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2 :]
    if not text.strip():
        raise ReviewError("review is empty")
    return _TOKEN.findall(normalise(strip_html(text)))



# Where each token came from, for explanations (model/explain.py). The steps
# above lose positions (the parser joins strings, NFKC and lower case change
# lengths), so `locate` reads the review again keeping them: markup is
# skipped, a character reference stands for its text, and each character
# (with the combining marks after it) is normalised on its own. That reading
# gives the same tokens as `tokenize` nearly always; where it does not (the
# text of a <script>, markup html.parser reads otherwise, NFKC across
# characters, a final sigma), the two token lists are aligned.
_MARKUP = re.compile(  # an element whose text is not the review's, a comment, a tag
    r"<(script|style|template|rt|rp)\b[^>]*>.*?(?:</(?i:\1)\s*>|\Z)|<!--.*?--!?>|<(?!!--)[a-zA-Z/!?][^>]*>",
    re.DOTALL | re.IGNORECASE)
_REFERENCE = re.compile(r"&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z][-.a-zA-Z0-9]*);?")
_SPECIAL = re.compile(r"[<&]|[^\x00-\x7f]+")


class _Places:
    """Normalised text, and for each of its characters the [start, end) of
    the review it was read from."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def same(self, text: str, start: int) -> None:
        """ASCII text read one for one."""
        self.parts.append(text.lower())
        self.starts.extend(range(start, start + len(text)))
        self.ends.extend(range(start + 1, start + len(text) + 1))

    def whole(self, shown: str, start: int, end: int) -> None:
        """`shown` read from review[start:end] as a whole."""
        self.parts.append(shown)
        self.starts.extend([start] * len(shown))
        self.ends.extend([end] * len(shown))

    def read(self, text: str, base: int) -> None:
        """Read `text`, which starts at `base` in the review."""
        markup = "<" in text or "&" in text
        pos = 0
        for match in _SPECIAL.finditer(text) if markup or not text.isascii() else ():
            at = match.start()
            if at < pos:  # inside markup or a reference already read
                continue
            char = match.group()
            if char not in "<&" and unicodedata.combining(char[0]) and at > pos:
                at -= 1  # marks on the ASCII letter before them: read with it
            self.same(text[pos:at], base + pos)
            pos = at
            if char == "<" and (tag := _MARKUP.match(text, pos)):
                self.whole(" ", base + pos, base + tag.end())  # markup ends a string; strings are joined by " "
                pos = tag.end()
            elif char == "&" and (ref := _REFERENCE.match(text, pos)):
                name = ref.group(1)
                shown = "".join(_charref(name[1:])) if name.startswith("#") else _ENTITIES.get(name, "&" + name)
                self.whole(normalise(shown), base + pos, base + ref.end())
                pos = ref.end()
            elif char in "<&":
                self.same(char, base + pos)
                pos += 1
            else:
                pos = self._clusters(text, pos, match.end(), base)
        self.same(text[pos:], base + pos)

    def _clusters(self, text: str, pos: int, end: int, base: int) -> int:
        """Read text[pos:end] one character with its combining marks at a time; where it stopped."""
        while pos < end:
            stop = pos + 1
            while stop < len(text) and unicodedata.combining(text[stop]):
                stop += 1
            self.whole(normalise(text[pos:stop]), base + pos, base + stop)
            pos = stop
        return pos

    def tokens(self) -> list[tuple[str, int, int]]:
        """(token, start, end) of each token of the text read, as tokenize finds them."""
        text = "".join(self.parts)
        starts, ends = self.starts, self.ends
        if "n't" in text:  # "n't" -> " not": "not" is read from "n't"
            parts, new_starts, new_ends, pos = [], [], [], 0
            for match in _NOT.finditer(text):
                a = match.start()
                parts += [text[pos:a], " not"]
                new_starts += starts[pos:a] + [starts[a], starts[a], starts[a + 1], starts[a + 2]]
                new_ends += ends[pos:a] + [ends[a], ends[a], ends[a + 1], ends[a + 2]]
                pos = match.end()
            text = "".join(parts) + text[pos:]
            starts, ends = new_starts + starts[pos:], new_ends + ends[pos:]
        return [(m.group(), starts[m.start()], ends[m.end() - 1]) for m in _TOKEN.finditer(text)]


def locate(text: str, tokens: list[str]) -> list[tuple[int, int] | None]:
    """For each of `tokens` (tokenize(text), text a str), the [start, end) in
    code points of `text` it was read from, or None when it cannot be placed.
    Spans come in text order; tokens read from one place (two tokens of one
    character reference, or a stretch the alignment could only place as a
    whole) share it, and spans of neighbours can overlap where one character
    gave two tokens (a ligature, "x&frac12;y")."""
    text = text.replace("\x00", " ").replace("`", "'")  # as tokenize and normalise; same length
    places = _Places()
    if len(text) > MAX_CHARS:  # as tokenize: the head and the tail
        half = MAX_CHARS // 2
        places.read(text[:half], 0)
        places.whole(" ", half, half)
        places.read(text[-half:], len(text) - half)
    else:
        places.read(text, 0)
    found = places.tokens()
    if len(found) == len(tokens) and all(word == token for (word, _, _), token in zip(found, tokens)):
        return [(start, end) for _, start, end in found]
    spans = _align(tokens, found)
    if None in spans:
        _search_gaps(text, tokens, spans)
    return spans


# A stretch that differs is aligned word by word up to this many pairs of
# tokens (difflib's matcher is quadratic and worse on repetitive text); a
# longer one is placed as a whole, as one span.
_ALIGN_LIMIT = 250_000


def _same_word(token: str) -> str:
    # Read a character at a time, a final sigma is a plain one.
    return token.replace("\u03c2", "\u03c3")


def _align(tokens: list[str], found: list[tuple[str, int, int]]) -> list[tuple[int, int] | None]:
    """Place tokens on the tokens read again: the same word in the same order
    takes its place; a stretch of tokens against a stretch read otherwise
    takes it word for word if they are as many, else as a whole; a token
    with nothing against it stays unplaced (None)."""
    ours = [_same_word(token) for token in tokens]
    read = [_same_word(word) for word, _, _ in found]
    head = 0
    while head < min(len(ours), len(read)) and ours[head] == read[head]:
        head += 1
    tail = 0
    while tail < min(len(ours), len(read)) - head and ours[-1 - tail] == read[-1 - tail]:
        tail += 1
    spans: list[tuple[int, int] | None] = [None] * len(tokens)
    for k in range(head):
        spans[k] = found[k][1:]
    for k in range(1, tail + 1):
        spans[-k] = found[-k][1:]
    ours, read = ours[head : len(ours) - tail], read[head : len(read) - tail]
    if len(ours) * len(read) > _ALIGN_LIMIT:
        stretches = [("replace", 0, len(ours), 0, len(read))]
    else:
        stretches = SequenceMatcher(None, ours, read, autojunk=False).get_opcodes()
    for op, i1, i2, j1, j2 in stretches:
        i1, i2, j1, j2 = i1 + head, i2 + head, j1 + head, j2 + head
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                spans[i1 + k] = found[j1 + k][1:]
        elif op == "replace":
            for k in range(i1, i2):
                spans[k] = (found[j1][1], found[j2 - 1][2])
    return spans


def _search_gaps(text: str, tokens: list[str], spans: list[tuple[int, int] | None]) -> None:
    """Place tokens left unplaced by looking for them, in order and ignoring
    case, in the text between their placed neighbours: markup html.parser
    reads as text (an unclosed comment, a "<" it does not take for a tag)
    holds its words literally."""
    i = 0
    while i < len(tokens):
        if spans[i] is not None:
            i += 1
            continue
        j = i
        while j < len(tokens) and spans[j] is None:
            j += 1
        low = spans[i - 1][1] if i else 0
        high = spans[j][0] if j < len(tokens) else len(text)
        for k in range(i, j):
            match = re.compile(re.escape(tokens[k]), re.IGNORECASE).search(text, low, high)
            if match:
                spans[k] = match.span()
                low = match.end()
        i = j

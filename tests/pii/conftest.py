"""Labelled PII fixtures: real prose (Python's own documentation topics) with planted items of
known value, generated with valid checksums where the format has one."""

from __future__ import annotations

import random
import re
from pydoc_data.topics import topics

import pytest

FIRST = [
    "Margaret",
    "Alice",
    "Thomas",
    "Priya",
    "Chen",
    "Olga",
    "Samuel",
    "Fatima",
    "Lucas",
    "Ingrid",
    "Diego",
    "Hannah",
    "Kwame",
    "Sofia",
    "Mateo",
    "Amara",
    "Oliver",
    "Yuki",
    "Elena",
    "Rashid",
    "Claire",
    "Mohammed",
    "Laura",
    "Pedro",
    "Nadia",
    "Victor",
    "Emily",
    "Tariq",
    "Julia",
    "Daniel",
]
LAST = [
    "Hamilton",
    "Johnson",
    "Okafor",
    "Nakamura",
    "Fischer",
    "Kowalski",
    "Haddad",
    "Lindqvist",
    "Fernandes",
    "Moreau",
    "Whitfield",
    "Petrov",
    "Mensah",
    "Castillo",
    "Brennan",
    "Gallagher",
    "Schneider",
    "Obi",
    "Kaur",
    "Jensen",
    "Morales",
    "Dubois",
    "Novak",
    "Reyes",
    "Sullivan",
    "Andersen",
    "Takahashi",
    "Kelly",
    "Romero",
    "Weber",
]
# Names that no list in smelt carries (corpus/pii/names.py holds given names only; tests check
# that none of these is in it): only the NER model can find them.
UNLISTED_FIRST = [
    "Beatrice",
    "Gwendolyn",
    "Douglas",
    "Florence",
    "Eleanor",
    "Howard",
    "Mildred",
    "Lawrence",
    "Vivian",
    "Stanley",
    "Gordon",
    "Marjorie",
    "Clifford",
    "Louise",
    "Roland",
    "Wilfred",
    "Edith",
    "Leonard",
    "Agatha",
    "Norman",
    "Cedric",
    "Maxine",
    "Reginald",
    "Lorraine",
    "Vernon",
    "Russell",
    "Sylvia",
    "Warren",
    "Yvonne",
    "Bridget",
    "Desmond",
    "Francine",
    "Garrett",
    "Hortense",
    "Imogen",
    "Jasper",
    "Kendall",
    "Lionel",
    "Mabel",
    "Neville",
    "Ophelia",
    "Percival",
    "Quentin",
    "Rupert",
    "Seymour",
    "Tabitha",
    "Ulrich",
    "Valerie",
    "Winston",
    "Yolanda",
    "Zachary",
    "Augustus",
    "Barnaby",
    "Clementine",
    "Dashiell",
    "Esmeralda",
    "Fitzgerald",
    "Genevieve",
    "Horatio",
]
UNLISTED_LAST = [
    "Thornbury",
    "Castellano",
    "Whitlock",
    "Abernathy",
    "Okonkwo",
    "Lindgren",
    "Vasquez",
    "Hargreaves",
    "Delacroix",
    "Pemberton",
    "Yamamoto",
    "Kowalczyk",
    "Brannigan",
    "Oyelaran",
    "Fairweather",
    "Montague",
    "Gustafsson",
    "Ravensworth",
    "Achterberg",
    "Blackwood",
    "Szymanski",
    "Calloway",
    "Drummond",
    "Ellsworth",
    "Featherstone",
    "Galbraith",
    "Holloway",
    "Inglewood",
    "Jamieson",
    "Kingsley",
]
NAME_FRAMES = (
    "The report was reviewed by {} before release.",
    "Questions about this section can be sent to {}.",
    "{} wrote the first version of this chapter.",
    "According to {}, the behaviour is intentional.",
    "This example was contributed by {} in the last cycle.",
)


def prose(count: int, min_chars: int = 800, seed: int = 0) -> list[str]:
    """`count` documentation topics of at least `min_chars`, in a stable order."""
    texts = [text for _, text in sorted(topics.items()) if len(text) >= min_chars]
    return random.Random(seed).sample(texts, count)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


def grouped(value: str, size: int = 4, sep: str = " ") -> str:
    return sep.join(value[i : i + size] for i in range(0, len(value), size))


def structured_items(rng: random.Random) -> list[tuple[str, str]]:
    """(entity, value) of one of each kind, in varied formats."""
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    user = rng.choice(FIRST).lower() + "." + rng.choice(LAST).lower()
    card = luhn_complete(rng.choice(["4", "51", "55"]), 16, rng)
    amex = luhn_complete("37", 15, rng)
    de = iban("DE", digits(18))
    gb = iban("GB", "NWBK" + digits(14))
    return [
        (
            "EMAIL_ADDRESS",
            f"{user}{rng.randint(1, 99)}@{rng.choice(['example.com', 'mail.org', 'corp.co.uk'])}",
        ),
        ("PHONE_NUMBER", f"({rng.randint(201, 989)}) {rng.randint(200, 989)}-{digits(4)}"),
        ("PHONE_NUMBER", f"+1 {rng.randint(201, 989)}-{rng.randint(200, 989)}-{digits(4)}"),
        ("PHONE_NUMBER", f"+44 20 7{digits(3)} {digits(4)}"),
        ("PHONE_NUMBER", f"+49 30 {digits(8)}"),
        ("PHONE_NUMBER", f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}"),
        ("CREDIT_CARD", rng.choice([grouped(card), grouped(card, sep="-"), card])),
        ("CREDIT_CARD", f"{amex[:4]} {amex[4:10]} {amex[10:]}"),
        ("IBAN_CODE", rng.choice([de, grouped(de)])),
        ("IBAN_CODE", rng.choice([gb, grouped(gb)])),
        ("IP_ADDRESS", ".".join(str(rng.randint(1, 254)) for _ in range(4))),
        ("IP_ADDRESS", "2001:db8:" + ":".join(f"{rng.randint(0, 65535):x}" for _ in range(6))),
        ("US_SSN", f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"),
    ]


STRUCTURED_FRAMES = (
    "For details write to {}.",
    "The value on file is {}.",
    "See the record ({}) for the account.",
    "Contact: {} today.",
)


def plant(text: str, sentences: list[str], rng: random.Random) -> str:
    """Insert sentences at random paragraph or sentence boundaries."""
    boundaries = [m.end() for m in re.finditer(r"[.:]\s", text)] + [len(text)]
    cuts = sorted(rng.choice(boundaries) for _ in sentences)
    pieces, last = [], 0
    for cut, sentence in zip(cuts, sentences, strict=True):
        pieces += [text[last:cut], " ", sentence, " "]
        last = cut
    return "".join(pieces) + text[last:]


def digits_only(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.fixture(scope="session")
def rng() -> random.Random:
    return random.Random(1234)

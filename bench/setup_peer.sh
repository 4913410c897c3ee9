#!/usr/bin/env bash
# The corpus benchmark's peer: datatrove with its processing extra, in its own venv
# (`.venv-bench`), because `datatrove[processing]` pins trafilatura<1.12 while smelt uses 2.x.
# Also installs Debian's python3.11-doc and rust-doc (~530 and ~1,070 real HTML pages, the corpus
# and quality benchmarks' inputs), translated manual pages (the language-ID benchmark's text in
# nine languages), r-doc-pdf and glpk-doc (the PDF benchmark's PDFs), and the `bench` extra
# (lingua, py3langid, pdfminer.six) into .venv.
# Offline notes: datatrove's Gopher filters tokenize words with NLTK's punkt models, which cannot
# be downloaded here; the benchmark swaps in datatrove's spaCy word tokenizer (a blank "en"
# pipeline: rules only, no model download), so spaCy is installed beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3.11}
DEBIAN_INPUTS="python3.11-doc rust-doc r-doc-pdf glpk-doc manpages-de manpages-fr manpages-es
  manpages-it manpages-nl manpages-pl manpages-ru manpages-ja"
if [ ! -d /usr/share/doc/python3.11/html ] || [ ! -d /usr/share/doc/rust-doc/html/book ] \
   || [ ! -d /usr/share/doc/r-doc-pdf ] || [ ! -d /usr/share/man/ja ]; then
  # shellcheck disable=SC2086
  (apt-get update -qq && apt-get install -y -qq $DEBIAN_INPUTS >/dev/null) \
    || echo "not installed: $DEBIAN_INPUTS (the benchmarks' inputs)" >&2
fi
if [ -x .venv/bin/pip ]; then
  .venv/bin/pip install -q -c constraints.txt -e '.[dev,bench]'
fi
if [ ! -x .venv-bench/bin/python ]; then
  "$PY" -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install -q -U pip
.venv-bench/bin/pip install -q "datatrove[processing]==0.10.1" "spacy>=3.8,<3.9" "pyarrow>=16"
.venv-bench/bin/python -c "import datatrove, trafilatura, spacy; print('datatrove', datatrove.__version__ if hasattr(datatrove, '__version__') else '', 'trafilatura', trafilatura.__version__)"

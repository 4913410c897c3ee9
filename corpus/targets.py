"""Where a build writes and what it deduplicates against, for builds that recur.

A nightly rebuild cannot write to one fixed output (the next night's inputs differ, and a build
refuses an output that holds another build's plan), and it must deduplicate against every
corpus built before it, not only the first. So:

- `{date}` in the output URI becomes the build's date (`YYYY-MM-DD`, of the scheduled start
  when a scheduler started it): `s3://lake/corpus/nightly/{date}`.
- an entry of `dedup_against` holding a glob (`*`, `?`, `[`) becomes every *finished* corpus
  (one with `stats.json`) that matches it, the output itself excepted, in sorted order:
  `s3://lake/corpus/nightly/*` means "every earlier night".

Both are resolved once, before planning; the plan records the concrete list, so a rerun of the
same build resumes with the same references.
"""

from __future__ import annotations

from datetime import datetime

from smelt import storage

DATE_FIELD = "{date}"


def expand_output(output_uri: str, when: datetime) -> str:
    """`output_uri` with `{date}` replaced by the build's date."""
    return output_uri.replace(DATE_FIELD, when.strftime("%Y-%m-%d"))


def expand_dedup_against(entries: list[str], output_uri: str) -> list[str]:
    """Concrete corpus URIs: globs expanded to the finished corpora they match."""
    own = storage.normalize(output_uri)
    resolved: list[str] = []
    for entry in entries:
        if not storage.has_glob(entry):
            resolved.append(entry)
            continue
        for match in storage.glob_finished(entry, "stats.json"):
            if storage.normalize(match) != own and match not in resolved:
                resolved.append(match)
    return resolved

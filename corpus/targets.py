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
same build resumes with the same references. `date_of` goes the other way: which night a
concrete URI of a `{date}` template is (the nightly flow finds an earlier night's shards from
its corpus that way).
"""

from __future__ import annotations

import re
from datetime import datetime

from smelt import storage

DATE_FIELD = "{date}"
DATE_FORMAT = "%Y-%m-%d"


def expand_output(output_uri: str, when: datetime) -> str:
    """`output_uri` with `{date}` replaced by the build's date."""
    return output_uri.replace(DATE_FIELD, when.strftime(DATE_FORMAT))


def date_of(template: str, uri: str) -> datetime | None:
    """The date that turns `template` into `uri` (`nightly/{date}` and `nightly/2026-11-21`
    give 2026-11-21), or None when `uri` is no expansion of it."""
    if DATE_FIELD not in template:
        return None
    before, _, after = storage.normalize(template).partition(DATE_FIELD)
    pattern = re.escape(before) + r"(\d{4}-\d{2}-\d{2})" + re.escape(after)
    found = re.fullmatch(pattern, storage.normalize(uri))
    return datetime.strptime(found.group(1), DATE_FORMAT) if found else None


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

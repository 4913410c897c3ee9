"""The dedup stage of `corpus-build`: signatures per partition -> verified pairs per band-key
range -> clusters and removal lists, as Prefect tasks on the calling flow's task runner
(threads, processes or Dask). Tasks exchange URIs and small manifests only."""

from __future__ import annotations

from prefect import get_run_logger, unmapped

from smelt import storage
from smelt.corpus.config import DedupConfig
from smelt.corpus.dedup import partition_name, write_meta
from smelt.corpus.dedup.plan import (
    dedup_dir,
    earlier_band_rows,
    earlier_corpora,
    pairs_uri,
    range_count,
    shards,
)
from smelt.tasks.dedup import pairs_task, removals_task, signatures_task


def dedup_stage(
    partition_uris: list[str],
    work_uri: str,
    output_uri: str,
    config: DedupConfig,
    dedup_against: list[str] | None = None,
    runner_name: str = "",
) -> list[str | None]:
    """Per partition (same order), the URI of its removal list (id, kind) or None.

    Call inside a flow. Signatures and band keys persist under `OUTPUT/dedup/` (reused by a
    later build's `--dedup-against OUTPUT`); pairs and removal lists go under `WORK/dedup/`.
    Every step is skipped on a rerun when its marker says it finished with the same inputs.
    """
    logger = get_run_logger()
    if not partition_uris or not (config.exact or config.near):
        return [None] * len(partition_uris)
    dedup_uri = dedup_dir(output_uri)
    earlier = earlier_corpora(dedup_against or [], config)  # fail fast on a mismatched corpus
    signed = signatures_task.map(partition_uris, unmapped(dedup_uri), unmapped(config))
    manifests = signed.result()
    names = [partition_name(uri) for uri in partition_uris]
    write_meta(dedup_uri, config, names, sum(m["docs"] for m in manifests))
    rows = sum(m["band_rows"] for m in manifests) + earlier_band_rows(dedup_against or [], config)
    count = range_count(rows, config)
    all_shards = shards(dedup_uri, names, earlier, [m["fingerprint"] for m in manifests])
    logger.info(
        "dedup (%s): %d partitions signed, %d band rows -> %d key ranges, %d earlier corpora",
        runner_name or "default runner",
        len(names),
        rows,
        count,
        len(earlier),
    )
    found = pairs_task.map(
        list(range(count)),
        unmapped(count),
        unmapped(all_shards),
        [pairs_uri(work_uri, i) for i in range(count)],
        unmapped(config),
    )
    pair_uris = [manifest["uri"] for manifest in found.result()]
    uris, summary = removals_task.submit(
        pair_uris, names, storage.join(work_uri, "dedup", "removals")
    ).result()
    logger.info("dedup: %d verified pairs, removing %s", summary["pairs"], summary["removed"])
    return uris

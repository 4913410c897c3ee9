"""The `data-ablation` flow: one proxy model per corpus variant and seed, compared on the same items.

    tokenizer  (the `train_on` variant's corpus-build, then tokenizer-train: shared by all)
    for each variant, a flow run `<ablation>: <variant>`:
        corpus-build -> shards-build (shared tokenizer) -> for each seed: train -> evaluate
    rank-variants: report.json / .md / .csv / .png and artifacts

It composes the same flows `smelt corpus build`, `tokenizer train`, `shards build`, `train` and
`eval` run, through their public parameters, so the UI shows every stage of every variant
(all runs are tagged `ablation:<name>` and `variant:<variant>`). A rerun reuses everything that
is current: a corpus whose fingerprint matches its recipe, the tokenizer and shards whose
done-markers record the same inputs (`smelt.storage.stage`), a proxy run already at its last step, an
evaluation stored for the same checkpoint and items. A changed recipe rebuilds that variant's
corpus and shards, and its proxy runs start afresh in new run folders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from prefect import get_run_logger, tags

from smelt import storage
from smelt.corpus.build import current_fingerprint
from smelt.corpus.layout import corpus_fingerprint
from smelt.corpus.partition import PlanMismatchError
from smelt.errors import ConfigError
from smelt.evaluation.ablation import AblationConfig, AblationLayout, Recipe, run_is_finished
from smelt.evaluation.evaluator import EvalSettings
from smelt.evaluation.report import EvalLayout, evaluate_steps, write_json
from smelt.flows.corpus_build import CorpusBuildParams, corpus_build, resolve_request
from smelt.flows.flow import flow
from smelt.flows.shards_build import shards_build
from smelt.flows.tokenizer_train import tokenizer_train
from smelt.flows.train import train_flow
from smelt.prep import shards as shard_sets
from smelt.prep import tokenizer as tokenizers
from smelt.prep.layout import TokenizerLayout
from smelt.prep.shards import recorded_fingerprint as shards_fingerprint
from smelt.tasks.ablation import publish_ablation
from smelt.tasks.evaluate import evaluate as evaluate_task
from smelt.tasks.evaluate import load_inputs
from smelt.training.checkpoint import complete_steps

log = logging.getLogger(__name__)
Runner = Literal["process", "thread", "dask"]
Notify = Callable[[str], None]  # one line per stage, for the command line


@flow(name="data-ablation")
def data_ablation(
    config: AblationConfig,
    output: str | None = None,
    force: bool = False,
    runner: Runner = "process",
    workers: int | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Build, train and evaluate every variant of `config`; returns the ranked report.

    Args:
        config: the base recipe, its variants, the tokenizer, proxy model and evaluation.
        output: where everything goes (default: the config's `output`).
        force: rebuild corpora, tokenizer and shards even when current.
        runner: task runner of the corpus and shard stages.
        workers: parallel workers of those stages (default: every core).
    """
    root = output or config.output
    if not root:
        raise ConfigError("the ablation needs an output: set `output:` or pass --output")
    say = notify or get_run_logger().info
    with tags(f"ablation:{config.name}"):
        load_inputs(config.eval.tasks, config.eval.texts, config.eval.limit)  # fail fast
        tokenizer = shared_tokenizer(config, root, force, runner, workers, say)
        results = {}
        for name in config.recipes():
            with tags(f"variant:{name}"):
                variant_flow = ablation_variant.with_options(flow_run_name=f"{config.name}: {name}")
                results[name] = variant_flow(
                    config, name, root, tokenizer, force, runner, workers, notify
                )
        return publish_ablation(
            results, config.rank_metric(), config.proxy.seeds, root, config.name
        )


@flow(name="data-ablation-variant")
def ablation_variant(
    config: AblationConfig,
    variant: str,
    root: str,
    tokenizer: str,
    force: bool = False,
    runner: Runner = "process",
    workers: int | None = None,
    notify: Notify | None = None,
) -> list[dict[str, Any]]:
    """One variant: its corpus and shards, then a proxy run and an evaluation per seed."""
    say = notify or get_run_logger().info
    layout = AblationLayout(root)
    build_corpus(
        variant, config.recipes()[variant], layout.corpus(variant), force, runner, workers, say
    )
    data_key = build_shards(config, variant, layout, tokenizer, force, runner, workers, say)
    inputs = load_inputs(config.eval.tasks, config.eval.texts, config.eval.limit)
    settings = EvalSettings(
        batch_size=config.eval.batch_size,
        limit=config.eval.limit,
        val_batches=config.eval.val_batches,
    )
    results = []
    for seed in config.proxy.seeds:
        train_config = config.proxy.train_config(
            layout.shards(variant), tokenizer, layout.run(variant, data_key, seed), seed
        )
        if run_is_finished(train_config):
            say(f"{variant}: proxy run seed {seed} is finished: reused")
        else:
            say(f"{variant}: training seed {seed} ({train_config.max_steps} steps)")
            train_flow(config=train_config)
        steps = complete_steps(train_config.output)
        last = max(steps)
        eval_uri = layout.eval(variant, data_key, seed)
        [result] = evaluate_steps(
            {last: steps[last]},
            EvalLayout(eval_uri),
            inputs.identity(settings),
            lambda uri: evaluate_task(uri, inputs, settings),
        )
        write_json(eval_uri, result)
        results.append(result)
        say(f"{variant}: seed {seed} evaluated -> {eval_uri}")
    return results


# ---- stages, skipped when current ----------------------------------------------------------


def build_corpus(
    variant: str,
    recipe: Recipe,
    output: str,
    force: bool,
    runner: Runner,
    workers: int | None,
    say: Notify,
) -> str:
    """The variant's corpus (built unless current); returns its fingerprint."""
    params = CorpusBuildParams(
        inputs=recipe.inputs or [],
        output=output,
        config_path=recipe.config,
        config_overrides=recipe.overrides,
        runner=runner,
        workers=workers,
    )
    request = resolve_request(params)
    current = current_fingerprint(request)
    if current is not None and not force:
        say(f"{variant}: corpus is current: reused")
        return current
    found = corpus_fingerprint(output)
    build = corpus_build.with_options(flow_run_name=f"{variant}: corpus")
    if found is not None:  # another recipe's corpus in this variant's folder
        say(f"{variant}: the recipe changed: rebuilding its corpus")
        storage.delete(output, recursive=True)
    say(f"{variant}: building the corpus")
    try:
        build(params=params)
    except PlanMismatchError:  # an unfinished build of another recipe was left there
        storage.delete(output, recursive=True)
        build(params=params)
    return current_fingerprint(request) or ""


def shared_tokenizer(
    config: AblationConfig,
    root: str,
    force: bool,
    runner: Runner,
    workers: int | None,
    say: Notify,
) -> str:
    """The tokenizer every variant uses: given, or trained on the `train_on` variant's corpus
    (built first); returns its tokenizer.json URI."""
    plan = config.tokenizer
    if plan.uri:
        uri = TokenizerLayout.file_uri(plan.uri)
        storage.require_readable(uri)
        return uri
    layout = AblationLayout(root)
    source = plan.train_on
    build_corpus(
        source, config.recipes()[source], layout.corpus(source), force, runner, workers, say
    )
    wanted = tokenizers.fingerprint_for(layout.corpus(source), plan.vocab_size, plan.sample_bytes)
    if tokenizers.is_current(layout.tokenizer, wanted) and not force:
        say(f"tokenizer (trained on {source}) is current: reused")
    else:
        say(f"training the shared tokenizer on {source}'s corpus")
        tokenizer_train.with_options(flow_run_name=f"{config.name}: tokenizer")(
            corpus=layout.corpus(source),
            output=layout.tokenizer,
            vocab_size=plan.vocab_size,
            sample_bytes=plan.sample_bytes,
            force=force,
        )
    return TokenizerLayout.file_uri(layout.tokenizer)


def build_shards(
    config: AblationConfig,
    variant: str,
    layout: AblationLayout,
    tokenizer: str,
    force: bool,
    runner: Runner,
    workers: int | None,
    say: Notify,
) -> str:
    """The variant's shards with the shared tokenizer (built unless current); returns their key,
    which names the variant's proxy runs."""
    output = layout.shards(variant)
    settings = config.shards
    wanted = shard_sets.fingerprint_for(
        layout.corpus(variant), tokenizer, settings.val_fraction, settings.shard_tokens
    )
    if shard_sets.is_current(output, wanted) and not force:
        say(f"{variant}: shards are current: reused")
        return wanted
    say(f"{variant}: tokenizing into shards")
    shards_build.with_options(flow_run_name=f"{variant}: shards")(
        corpus=layout.corpus(variant),
        tokenizer=tokenizer,
        output=output,
        val_fraction=settings.val_fraction,
        shard_tokens=settings.shard_tokens,
        runner=runner,
        workers=workers,
        force=force,
    )
    return shards_fingerprint(output) or ""

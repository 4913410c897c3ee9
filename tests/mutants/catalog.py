"""The deliberate breakages `make mutants` applies, one at a time, and the tests that must catch
each one (every test named here must fail with its mutant applied).

An entry is data: the file, the exact text to replace (it must occur once), the replacement,
and the pytest node ids. To guard a new behaviour, add an entry next to the test written for
it, and run `python -m tests.mutants --only NAME` before calling the behaviour done.
`tests/test_mutants.py` checks on every test run that each entry still applies to the tree.
"""

from __future__ import annotations

from tests.mutants.mutant import Mutant

RESUME_TESTS = (
    "tests/training/test_resume.py::test_sigkill_then_resume_matches_uninterrupted_run",
    "tests/training/test_s3.py::test_s3_outage_during_upload_then_resume",
    "tests/training/test_distributed.py::test_two_ranks_match_one_process_and_resume_exactly",
)

MUTANTS: list[Mutant] = [
    # ---- training --------------------------------------------------------------------------
    Mutant(
        name="training-never-resumes",
        breaks="a rerun on the same output starts over instead of resuming",
        path="training/preflight.py",
        old="    resume_step = max(steps) if steps and not discard else None\n",
        new="    resume_step = None\n",
        tests=RESUME_TESTS,
    ),
    Mutant(
        name="loader-resumes-at-epoch-start",
        breaks="a resumed loader restarts its epoch instead of the exact next window",
        path="training/loader.py",
        old="    def restore(self, epoch: int, position: int) -> None:\n"
        "        self.epoch, self.position = epoch, position\n",
        new="    def restore(self, epoch: int, position: int) -> None:\n"
        "        self.epoch, self.position = epoch, 0\n",
        tests=(
            "tests/loader/test_loader.py::test_state_restored_in_a_fresh_process_continues_exactly",
            "tests/training/test_resume.py::test_sigkill_then_resume_matches_uninterrupted_run",
        ),
    ),
    Mutant(
        name="checkpoint-marker-uploaded-first",
        breaks="a checkpoint's COMPLETE marker reaches S3 before its files",
        path="training/checkpoint.py",
        old='    marker = read_marker(local)\n    for name in sorted(marker["files"]):\n',
        new=(
            "    marker = read_marker(local)\n    remote.marker.write(marker)\n"
            '    for name in sorted(marker["files"]):\n'
        ),
        tests=("tests/training/test_manager.py::test_marker_is_uploaded_last_and_deleted_first",),
    ),
    Mutant(
        name="trainer-drops-document-mask",
        breaks="--doc-mask no longer reaches the model during training",
        path="training/loop.py",
        old=(
            "targets=batch.targets.to(self.device, non_blocking=True),\n"
            "                    doc_ids=_maybe(batch.doc_ids, self.device),\n"
        ),
        new=(
            "targets=batch.targets.to(self.device, non_blocking=True),\n"
            "                    doc_ids=None,\n"
        ),
        tests=(
            "tests/training/test_trainer_wiring.py::test_document_masking_reaches_every_forward",
        ),
    ),
    Mutant(
        name="trainer-never-clips",
        breaks="--grad-clip measures the gradient norm but no longer clips it",
        path="training/loop.py",
        old="clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)",
        new='clip_grad_norm_(self.raw_model.parameters(), float("inf"))',
        tests=(
            "tests/training/test_trainer_wiring.py::test_the_optimizer_steps_on_clipped_gradients",
        ),
    ),
    # ---- stages and shards -----------------------------------------------------------------
    Mutant(
        name="stage-marker-ignores-inputs",
        breaks="a done-marker of other inputs is trusted (stale outputs served)",
        path="storage/stage.py",
        old=(
            "        if self.fingerprint is not None and manifest.get(FINGERPRINT_KEY) != "
            "self.fingerprint:\n"
        ),
        new="        if False:\n",
        tests=(
            "tests/storage/test_stage.py::test_other_inputs_do_the_work_again",
            "tests/shards/test_stage.py::test_other_settings_rebuild",
        ),
    ),
    Mutant(
        name="shard-check-skips-checksum",
        breaks="a shard whose bytes do not match the manifest's SHA-256 passes verification",
        path="prep/shard_check.py",
        old="    if digest != shard.sha256:\n",
        new="    if False:\n",
        tests=("tests/shards/test_verify.py::test_flipped_byte_is_refused_by_verify_and_loader",),
    ),
    # ---- corpus: quality ----------------------------------------------------------------------
    Mutant(
        name="code-judged-as-prose",
        breaks="the prose rules judge fenced code listings as prose",
        path="corpus/filters/text_utils.py",
        old="        if in_code:\n            code_chars += len(line) + 1\n",
        new="        if False:\n            code_chars += len(line) + 1\n",
        tests=(
            "tests/corpus/test_prose_rules.py::test_prose_rules_skip_fenced_code",
            "tests/corpus/test_prose_rules.py::test_each_prose_rule_ignores_the_listing",
        ),
    ),
    Mutant(
        name="language-filter-keeps-every-language",
        breaks="`[filters.language] languages` no longer drops documents in other languages",
        path="corpus/filters/language.py",
        old="self.keep = frozenset(config.languages)",
        new="self.keep = frozenset()",
        tests=("tests/corpus/test_language.py::test_languages_keeps_only_those_and_runs_first",),
    ),
    # ---- corpus: PII and dedup -------------------------------------------------------------
    Mutant(
        name="build-skips-pii-redaction",
        breaks="the corpus build publishes documents without PII redaction",
        path="corpus/stages.py",
        old="    if not config.pii.enabled:\n        return iter(docs)\n    from smelt.corpus.pii",
        new="    return iter(docs)\n    from smelt.corpus.pii",
        tests=(
            "tests/corpus_build/test_pii_build.py::test_default_build_redacts_planted_pii_with_ner",
            "tests/corpus_build/test_pii_build.py::"
            "test_a_document_whose_redaction_fails_is_quarantined_not_published",
            "tests/corpus_build/test_flow.py::test_flow_builds_and_publishes_a_stats_artifact",
        ),
    ),
    Mutant(
        name="pii-fails-open",
        breaks="a document whose redaction raises is published unredacted",
        path="corpus/pii/redact.py",
        old=(
            "            except Exception as exc:  # noqa: BLE001 - fail closed: any error "
            "quarantines\n"
        ),
        new=(
            "            except Exception as exc:  # noqa: BLE001 - fail closed: any error "
            "quarantines\n                yield doc\n                continue\n"
        ),
        tests=(
            "tests/pii/test_redact.py::test_failing_recognizer_quarantines_the_document",
            "tests/pii/test_redact.py::test_ner_failure_on_one_document_quarantines_only_it",
            "tests/corpus_build/test_pii_build.py::"
            "test_a_document_whose_redaction_fails_is_quarantined_not_published",
        ),
    ),
    Mutant(
        name="ner-off-given-names-only",
        breaks="PERSON names come from the given-name list alone (spaCy NER never runs)",
        path="corpus/pii/person.py",
        old="    if not snippets:\n        return found\n",
        new="    return found\n",
        tests=(
            "tests/pii/test_redact.py::test_person_recall_of_the_model_on_names_no_list_carries",
            "tests/corpus_build/test_pii_build.py::test_default_build_redacts_planted_pii_with_ner",
        ),
    ),
    Mutant(
        name="lsh-12-of-20-bands",
        breaks="8 of the 20 LSH bands never match (their keys are random)",
        path="corpus/dedup/lsh.py",
        old="        keys[:, band] = key\n",
        new=(
            "        keys[:, band] = key if band < num_bands - 8 else "
            "np.random.default_rng().integers(0, 2**63, docs, dtype=np.uint64)\n"
        ),
        tests=(
            "tests/dedup/test_scurve.py::"
            "test_removed_share_follows_the_s_curve_at_each_jaccard_level",
        ),
    ),
    # ---- evaluation ------------------------------------------------------------------------
    Mutant(
        name="acc-norm-by-words",
        breaks="acc_norm divides by the choice's words instead of its characters",
        path="evaluation/layouts.py",
        old="lengths=tuple(len(choice) for choice in choices),",
        new="lengths=tuple(len(choice.split()) for choice in choices),",
        tests=(
            "tests/evaluation/test_layouts.py::test_hellaswag_prompt_is_the_harness_preprocessing",
            "tests/evaluation/test_agreement.py::test_accuracies_equal_the_harness_count_for_count",
        ),
    ),
    Mutant(
        name="context-keeps-trailing-space",
        breaks="a context's trailing spaces stay in the context instead of starting the "
        "continuation (lm-evaluation-harness moves them)",
        path="evaluation/scorer.py",
        old="            n_spaces = len(context) - len(context.rstrip())\n",
        new="            n_spaces = 0\n",
        tests=("tests/evaluation/test_scorer.py::test_pairs_are_split_as_the_harness_splits_them",),
    ),
    # ---- deployments -----------------------------------------------------------------------
    Mutant(
        name="worker-leaves-pods-running",
        breaks="the RunPod worker no longer terminates a run's pod when the run ends",
        path="deployments/runpod_worker.py",
        old=('worker stopped, a late duplicate): when a run ends, none of its pods may bill."""\n'),
        new=(
            'worker stopped, a late duplicate): when a run ends, none of its pods may bill."""\n'
            "        return\n"
        ),
        tests=(
            "tests/deployments/test_runpod_worker.py::"
            "test_flow_run_completes_in_a_pod_which_is_then_terminated",
        ),
    ),
    # ---- supervised fine-tuning and training mixtures -----------------------------------------
    Mutant(
        name="sft-loss-on-every-token",
        breaks="fine-tuning puts loss on every token (system, user, role headers), not on the "
        "assistant's answers only",
        path="training/conversations.py",
        old="targets[r, at : end - 1] = np.where(mask[1:], ids[1:], IGNORE_INDEX)",
        new="targets[r, at : end - 1] = ids[1:]",
        tests=("tests/sft/test_masks.py::test_exactly_the_assistant_tokens_carry_loss",),
    ),
    Mutant(
        name="mixture-ignores-weights",
        breaks="a mixture draws every source equally, whatever its weight",
        path="training/mixture.py",
        old="self._weights = np.array([s.weight for s in phase.sets], dtype=np.float64)",
        new="self._weights = np.ones(len(phase.sets), dtype=np.float64)",
        tests=(
            "tests/training/test_mixture_loader.py::"
            "test_weights_are_respected_and_every_token_is_counted",
        ),
    ),
    Mutant(
        name="task-run-retry-redoes-its-group",
        breaks="on a pool, a task run's retry runs again the items that had succeeded",
        path="tasks/executor.py",
        old="                if index not in done\n",
        new="                if index is not None\n",
        tests=(
            "tests/failures/test_task_errors.py::"
            "test_on_a_pool_a_task_run_stands_for_a_few_items_and_retries_only_the_failed",
        ),
    ),
    Mutant(
        name="torchrun-rank-finalizes",
        breaks="a rank of a multi-rank run exits through interpreter finalization, where a "
        "thread torch left behind can hold it forever",
        path="training/distributed.py",
        old="    os._exit(code)\n",
        new="    return code\n",
        tests=(
            "tests/training/test_rank_exit.py::"
            "test_a_rank_of_many_exits_with_its_code_and_output_despite_a_stuck_thread",
        ),
    ),
]

"""lm-evaluation-harness, run offline on an exported folder and local task files: the reference
smelt's scores must equal.

`write_task_yamls` writes one harness task per smelt task. A published set includes the
harness's own definition of it (`lm_eval/tasks/<set>/*.yaml`, prompt functions and all) and
only points its data at the local file (`dataset_path: json` or `parquet`, `dataset_kwargs:
{data_files: ...}`); the generic layout and text sets get small definitions of their own.
`python reference.py RESULTS.json MODEL_DIR TASK_DIR TASK ...` runs `simple_evaluate` (run it
in a child process with HF_*_OFFLINE=1 and private caches, see `run_reference`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

# smelt task name -> (the harness's yaml under lm_eval/tasks, the split it scores)
PUBLISHED = {
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "piqa": ("piqa/piqa.yaml", "validation"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "boolq": ("super_glue/boolq/default.yaml", "validation"),
    "lambada": ("lambada/lambada_openai.yaml", "test"),
}
SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")


def _data(path: Path, split: str) -> dict:
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return {
        "dataset_path": builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path)}},
        **{key: None for key in SPLIT_KEYS},
        f"{split}_split": split,
    }


def write_task_yamls(
    folder: Path, tasks: dict[str, Path], texts: dict[str, Path]
) -> dict[str, str]:
    """Harness task definitions for smelt's task and text files; returns smelt name -> harness
    task name."""
    import lm_eval

    builtin = Path(lm_eval.__file__).parent / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    names = {}
    for name, path in tasks.items():
        harness_name = f"smelt_ref_{name}"
        if name in PUBLISHED:
            source, split = PUBLISHED[name]
            config = {"include": str(builtin / source), "task": harness_name, "tag": []}
            config.update(_data(path, split))
        else:
            config = {
                "task": harness_name,
                "output_type": "multiple_choice",
                "doc_to_text": "{{context}}",
                "doc_to_choice": "choices",
                "doc_to_target": "label",
                "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
                **_data(path, "test"),
            }
        if name in ("boolq", "winogrande"):  # their harness definitions list acc only
            config["metric_list"] = [{"metric": "acc"}, {"metric": "acc_norm"}]
        (folder / f"{harness_name}.yaml").write_text(yaml.safe_dump(config))
        names[name] = harness_name
    for name, path in texts.items():
        harness_name = f"smelt_ref_text_{name}"
        config = {
            "task": harness_name,
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "bits_per_byte"}, {"metric": "byte_perplexity"}],
            **_data(path, "test"),
        }
        (folder / f"{harness_name}.yaml").write_text(yaml.safe_dump(config))
        names[name] = harness_name
    return names


def run_reference(
    model_dir: Path, task_dir: Path, harness_tasks: list[str], workdir: Path, batch_size: int = 16
) -> dict:
    """Run the harness in a child process, offline, with caches under `workdir`; returns its
    results as {harness task: {metric: value}} plus the per-sample records."""
    out = workdir / "lm_eval_results.json"
    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(workdir / "hf"),
        "HF_DATASETS_CACHE": str(workdir / "hf" / "datasets"),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        __file__,
        str(out),
        str(model_dir),
        str(task_dir),
        str(batch_size),
        *harness_tasks,
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"lm-eval failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def _main(argv: list[str]) -> None:
    out, model_dir, task_dir, batch_size, *task_names = argv
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(1)
    manager = TaskManager(include_path=task_dir, include_defaults=False)
    results = simple_evaluate(
        model="hf",
        # logits_cache off: with it, a one-token continuation whose context + continuation
        # equals another request's context + continuation[:-1] (LAMBADA's last word and a
        # Winogrande option built from the same sentence, say) takes its log-probability from
        # the first position of the other request's continuation instead of the last
        # (`torch.gather` on the untrimmed logits in `HFLM._loglikelihood_tokens`, 0.4.13), so
        # the harness's own result would depend on which other tasks run beside it.
        model_args={"pretrained": model_dir, "dtype": "float32", "logits_cache": False},
        tasks=task_names,
        batch_size=int(batch_size),
        device="cpu",
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=0,
    )
    summary = {
        "results": {
            name: {k.split(",")[0]: v for k, v in metrics.items() if isinstance(v, int | float)}
            for name, metrics in results["results"].items()
        },
        "samples": {
            name: [{"doc_id": s["doc_id"], "resps": s["filtered_resps"]} for s in samples]
            for name, samples in results["samples"].items()
        },
    }
    Path(out).write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    _main(sys.argv[1:])

"""One table from paper_gpu.py's and qwen2vl_gpu.py's results: every figure, its ratio to the
plain reference measured in the same run, the GPU targets, and the study's training time
estimated from the measured throughput.

The study: 4 families (the paper profile of each) on VQA-RAD frame, 3,064 training questions,
20 epochs for the classifiers and 5 for qwen2vl; each family at the paper profile's batch size and
precision (auto: bf16 on a GPU, fp32 on a CPU), its strategy the profile's (default; for resnet_bert
full fine-tuning). Training steps only: validation, feature caching
and model loading are left out, and named so.

    python bench/gpu_report.py --paper bench/results/paper_gpu.json --qwen2vl bench/results/qwen2vl_gpu.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vqalab.benchmark.common import write_results
from vqalab.io import read_json

STUDY_EPOCHS = {"resnet_bert": 20, "pubmedclip": 20, "vilt": 20, "qwen2vl": 5}
STUDY_LIMIT_S = 600
# bench/qwen2vl_gpu.py's generation figure before predictions were batched by question length (H200,
# batch 8, 8 new tokens).
OLD_GENERATE_SAMPLES_PER_S = 7.5


def find(rows, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def report(paper: dict, qwen: dict | None) -> tuple[list[dict], dict]:
    rows, env = paper["rows"], paper["environment"]
    on_gpu = env.get("gpu") is not None
    auto_precision = "bf16" if on_gpu else "fp32"
    paper_batch, cached_batch = paper["paper_batch_size"], paper["cached_batch_size"]
    measured = sorted({r["batch_size"] for r in rows})
    # The study runs at the paper profile's batch; a smoke run at other sizes estimates at its largest (and says so).
    study_batch = paper_batch if paper_batch in measured else measured[-1]
    lines = []

    def add(figure, value, *, unit="samples/s", reference=None, target=None, ok=None, note=""):
        lines.append({"figure": figure, "value": value, "unit": unit, "reference": reference,
                      "ratio": value / reference if value is not None and reference else None,
                      "target": target, "ok": ok, "note": note})

    for r in rows:
        if r["kind"] == "vqalab" and r["reference_samples_per_s"]:
            add(f"{r['family']} {r['strategy']} b{r['batch_size']} {r['precision']}", r["samples_per_s"],
                reference=r["reference_samples_per_s"], target=">= 0.9x reference", ok=r["ratio_to_reference"] >= 0.9)
    full = find(rows, family="resnet_bert", strategy="full", precision=auto_precision, batch_size=paper_batch)
    if full:
        add(f"resnet_bert full at the paper profile's batch {paper_batch} ({auto_precision})", full["samples_per_s"],
            reference=full["reference_samples_per_s"], target=">= 3,000", ok=full["samples_per_s"] >= 3000)
    for fp32 in (r for r in rows if r["family"] == "resnet_bert" and r["strategy"] == "full"
                 and r["precision"] == "fp32" and r["batch_size"] >= 64):
        bf16 = find(rows, family="resnet_bert", strategy="full", precision="bf16", batch_size=fp32["batch_size"])
        if bf16:
            add(f"resnet_bert full b{fp32['batch_size']}: bf16 over fp32", bf16["samples_per_s"],
                unit="samples/s (bf16)", reference=fp32["samples_per_s"], target="ratio >= 1.0",
                ok=bf16["samples_per_s"] >= fp32["samples_per_s"], note="reference column: fp32")
    cached = find(rows, family="resnet_bert", strategy="frozen", batch_size=cached_batch)
    if cached:
        add(f"resnet_bert frozen (cached features) at the recipe's batch {cached_batch} ({cached['precision']})",
            cached["samples_per_s"], target=">= 100,000", ok=cached["samples_per_s"] >= 100_000)

    # The study's time: each family's paper profile (strategy default; resnet_bert's is full
    # fine-tuning, at the profile's precision, auto).
    per_family, missing = {}, []
    for family in ("resnet_bert", "pubmedclip", "vilt"):
        row = (find(rows, family=family, strategy="default", batch_size=study_batch)
               or (find(rows, family=family, strategy="full", precision=auto_precision, batch_size=study_batch)
                   if family == "resnet_bert" else None))
        if row is None:
            missing.append(family)
            continue
        per_family[family] = paper["study_questions"] * STUDY_EPOCHS[family] / row["samples_per_s"]
    if qwen:
        train = find(qwen["rows"], mode="train", gradient_checkpointing=qwen["paper_gradient_checkpointing"])
        for r in qwen["rows"]:
            if r["mode"] == "train":
                add(f"qwen2vl LoRA {r['image_px']} px b{r['batch_size']} train, checkpointing "
                    f"{'on' if r['gradient_checkpointing'] else 'off'}", r["samples_per_s"], target=">= 45",
                    ok=r["samples_per_s"] >= 45, note=f"attention {r['attn_implementation']}")
        generate = find(qwen["rows"], mode="generate")
        add(f"qwen2vl generate b{generate['batch_size']}, {generate['max_new_tokens']} new tokens",
            generate["samples_per_s"], reference=OLD_GENERATE_SAMPLES_PER_S, target=">= 2x the old 7.5",
            ok=generate["samples_per_s"] >= 2 * OLD_GENERATE_SAMPLES_PER_S, note="reference column: the old figure")
        per_family["qwen2vl"] = paper["study_questions"] * STUDY_EPOCHS["qwen2vl"] / train["samples_per_s"]
    else:
        missing.append("qwen2vl")
    total = sum(per_family.values())
    notes = [f"missing: {', '.join(missing)}"] if missing else ["training steps only"]
    if study_batch != paper_batch:
        notes.append(f"classifiers at batch {study_batch}, not the paper profile's {paper_batch}")
    add("study training time (" + " + ".join(f"{f} {s:.0f} s" for f, s in per_family.items()) + ")", total,
        unit="s", target=f"<= {STUDY_LIMIT_S} s", ok=total <= STUDY_LIMIT_S if not missing else None,
        note="; ".join(notes))
    return lines, {"per_family_s": per_family, "total_s": total, "missing": missing,
                   "classifier_batch_size": study_batch}


def table(lines: list[dict], env: dict) -> str:
    def num(value, spec=",.1f"):
        return "-" if value is None else format(value, spec)

    out = [f"device: {env.get('gpu') or env['device']}; torch {env['torch']}, CUDA {env['cuda']}, transformers "
           f"{env['transformers']}, peft {env['peft']}, flash-attn {env.get('flash-attn')}",
           "", "| figure | value | unit | reference | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for line in lines:
        met = {True: "yes", False: "NO", None: "-"}[line["ok"]]
        note = f" ({line['note']})" if line["note"] else ""
        out.append(f"| {line['figure']}{note} | {num(line['value'])} | {line['unit']} | {num(line['reference'])} "
                   f"| {num(line['ratio'], '.2f')} | {line['target'] or '-'} | {met} |")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", type=Path, required=True)
    parser.add_argument("--qwen2vl", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON of the table and the estimate")
    args = parser.parse_args(argv)
    paper = read_json(args.paper)
    qwen = read_json(args.qwen2vl) if args.qwen2vl else None
    lines, estimate = report(paper, qwen)
    text = table(lines, paper["environment"])
    print(text)
    if paper["environment"].get("gpu") is None:
        print("\n(no GPU: the targets are for an H100/H200 at the study's sizes; this run only checks the code path)")
    if args.out:
        write_results(args.out, {"lines": lines, "study_estimate": estimate, "environment": paper["environment"]},
                      table=text)


if __name__ == "__main__":
    main()

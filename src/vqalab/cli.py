"""``vqalab``: the project's command line, one subcommand per tool.

    vqalab predict --model models/resnet_bert --image photo.png --question "what shape is it?"
    vqalab compare --all-commits
    vqalab compose dataset=vqa_rad

Each subcommand owns its arguments (``vqalab predict --help``); its module is imported only when
it runs, so a command does not pay for the imports of another.
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "predict": ("vqalab.predict", "answer questions about images with a trained checkpoint"),
    "compare": ("vqalab.report.compare", "the study's table across experiments (also: vqalab-compare)"),
    "compose": ("vqalab.compose", "write params.yaml from conf/ (for dvc repro; dvc exp run composes it itself)"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vqalab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items()))
    parser.add_argument("command", choices=COMMANDS, help="see below")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's arguments")
    args = parser.parse_args(argv)
    module, _ = COMMANDS[args.command]
    importlib.import_module(module).main(args.arguments, prog=f"vqalab {args.command}")


if __name__ == "__main__":
    main()

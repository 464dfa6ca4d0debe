"""Command line: `python -m smt summary | convert | inspect | validate`."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="table of every registered variant: size, cost, reference fidelity")
    p.add_argument("--no-reference", action="store_true", help="skip the reference-logit check")
    p = sub.add_parser("convert", help="convert a checkpoint (e.g. an official .pth) to .safetensors or .pth",
                       description="Convert weights between formats and key layouts; the round trip is exact.")
    p.add_argument("src", help="input: official release .pth, a state dict, ours, or .safetensors")
    p.add_argument("dst", help="output: .safetensors, or any other suffix for torch.save")
    p.add_argument("--to-official", action="store_true",
                   help="write the authors' key layout (patch_embed1..., block1.0...) for their own code")
    p.add_argument("--overwrite", action="store_true", help="replace dst if it exists")
    p = sub.add_parser("inspect", help="what a checkpoint holds (format, entries, tensors, variant, config), "
                                       "read without running anything from it",
                       description="Describe a checkpoint file without running anything from it: its format, "
                                   "top-level entries, tensors, parameters and bytes per dtype, key layout, the SMT "
                                   "variant it matches (or the nearest and how it differs) and a pickled config.")
    p.add_argument("file", help="a .pth/.pt file (zip or legacy torch.save format) or a .safetensors file")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p = sub.add_parser("validate", help="top-1/top-5 on an ImageFolder dataset (also under torchrun)")
    from .validate import add_arguments

    add_arguments(p)
    for action in sub.choices.values():
        if not any(a.dest == "debug" for a in action._actions):
            action.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    if args.command == "summary":
        from .summary import main as summary_main

        return summary_main(check_reference=not args.no_reference)
    from .inputs import cli_errors

    with cli_errors(args.debug) as code:
        return _command(args)
    return code[0]


def _command(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from .checkpoint import convert_checkpoint, identify_variant, infer_config
        from .inputs import Checks, check_checkpoint, check_output_file
        from .keys import checkpoint_filter_fn

        c = Checks()
        c(check_checkpoint, args.src, "src")
        c(check_output_file, args.dst, "dst", overwrite=args.overwrite, example="weights.safetensors")
        c.done()
        state = convert_checkpoint(args.src, args.dst, to_official=args.to_official)
        try:
            ours = checkpoint_filter_fn(state) if args.to_official else state
            variant = identify_variant(infer_config(ours)) or "custom SMT"
        except ValueError:
            variant = "SMT"
        layout = "the authors' key layout" if args.to_official else "timm layout"
        print(f"wrote {args.dst}: {len(state)} tensors of {variant}, {layout}")
        return 0
    if args.command == "inspect":
        from .inspection import format_inspection, inspect_checkpoint

        report = inspect_checkpoint(args.file)
        print(json.dumps(report, indent=2) if args.json else format_inspection(report))
        return 0
    from .validate import main as validate_main

    return validate_main(args)


if __name__ == "__main__":
    sys.exit(main())

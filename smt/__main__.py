"""Command line: `python -m smt summary` (more subcommands in later modules)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="table of every registered variant: size, cost, reference fidelity")
    p.add_argument("--no-reference", action="store_true", help="skip the reference-logit check")
    args = parser.parse_args(argv)
    if args.command == "summary":
        from .summary import main as summary_main

        return summary_main(check_reference=not args.no_reference)
    return 2


if __name__ == "__main__":
    sys.exit(main())

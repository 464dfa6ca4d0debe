"""Command line of the analyses: `python -m viz run ...`, `python -m viz figures ...`, `python -m viz claims ...`,
`python -m viz explorable ...` and `python -m viz demo` (the main job)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from .demo import main as demo

        return demo(argv[1:])
    if argv[:1] == ["claims"]:
        from .figures.cli import claims_main as claims

        try:
            return claims(argv[1:])
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if argv[:1] == ["figures"]:
        from .figures import main as figures

        return figures(argv[1:])
    if argv[:1] == ["explorable"]:
        from .explorable import main as explorable

        return explorable(argv[1:])
    from smt.inputs import cli_errors

    from . import run

    parser = argparse.ArgumentParser(prog="python -m viz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    sub.add_parser("figures", help="render the paper figures (python -m viz figures --help)")
    sub.add_parser("claims", help="the paper's claims with intervals and verdicts (python -m viz claims --help)")
    sub.add_parser("explorable", help="the SAM playground and the figure set as a static site (python -m viz "
                                      "explorable --help)")
    sub.add_parser("demo", help="the main job: report and figures on the demo model (python -m viz demo --help)")
    args = parser.parse_args(argv)
    with cli_errors(args.debug) as code:
        from .validation import check_run_args

        check_run_args(args)  # every input, before any work (a bad one: one line each, exit code 2)
        args.func(args)
    return code[0] if code else 0


if __name__ == "__main__":
    sys.exit(main())

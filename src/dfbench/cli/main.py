"""The `dfbench` command: parse the arguments, load the one command module they name, run it,
and turn any DfbenchError into one line and an exit code.

Commands that draw their own output (a server, progress bars, a report) run as they are; the
others get a spinner fed by the library's log records. Rich allows one live display at a time,
so the two never mix.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

from dfbench.cli.parser import build_parser
from dfbench.errors import DfbenchError

# command -> (module, function, draws its own output)
_COMMANDS = {
    "plan": ("dfbench.cli.cluster", "run_cluster_command", False),
    "provision": ("dfbench.cli.cluster", "run_cluster_command", False),
    "status": ("dfbench.cli.cluster", "run_cluster_command", False),
    "doctor": ("dfbench.cli.cluster", "run_doctor", False),
    "teardown": ("dfbench.cli.cluster", "run_cluster_command", False),
    "clusters": ("dfbench.cli.fleet", "run_clusters", False),
    "sweep": ("dfbench.cli.fleet", "run_sweep", False),
    "deploy": ("dfbench.cli.remote", "run_deploy", False),
    "exec": ("dfbench.cli.remote", "run_remote_command", False),
    "logs": ("dfbench.cli.remote", "run_remote_command", False),
    "tunnel": ("dfbench.cli.remote", "run_tunnel", True),
    "health": ("dfbench.cli.remote", "run_health", True),
    "shell": ("dfbench.cli.remote", "run_shell", True),
    "data": ("dfbench.cli.data", "run_data", True),
    "bench": ("dfbench.cli.bench", "run_bench", True),
    "compare": ("dfbench.cli.bench", "run_compare", True),
    "ab": ("dfbench.cli.bench", "run_ab", True),
    "worker": ("dfbench.cli.bench", "run_worker", True),
    "github": ("dfbench.cli.github", "run_github", True),
    "engine": ("dfbench.cli.engines", "run_engine", False),
    "verify-aws": ("dfbench.cli.verify", "run_verify_aws", True),
}


def main(argv: Sequence[str] | None = None) -> int:
    logger = logging.getLogger("dfbench")
    try:
        args = build_parser().parse_args(argv)
        logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
        module, function, self_displayed = _COMMANDS[args.command]
        run = getattr(importlib.import_module(module), function)
        if self_displayed:
            return run(args)
        if args.verbose:
            logging.getLogger("botocore.retryhandler").setLevel(logging.DEBUG)
        from dfbench.cli.output import ProgressHandler, err

        with err.status(f"dfbench {args.command}…") as spinner:
            handler = ProgressHandler(spinner)
            logger.addHandler(handler)
            try:
                return run(args)
            finally:
                logger.removeHandler(handler)
    except DfbenchError as error:
        _print_error(f"[red]error:[/] {_escape(str(error))}")
        return error.exit_code
    except KeyboardInterrupt:
        _print_error("[yellow]interrupted.[/] Every dfbench command converges when run again.")
        return 130


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)  # the message carries user input (a region, a tag): text, never markup


def _print_error(markup: str) -> None:
    from dfbench.cli.output import err

    err.print(markup, markup=True)


if __name__ == "__main__":
    sys.exit(main())

"""The ``lpzero`` console entry point. It imports nothing before :func:`main` runs, so that Ctrl-C while the
command's modules are still being imported ends like Ctrl-C anywhere else: one line and exit status 130
(``cli.main`` handles it from then on)."""
import sys


def main() -> int:
    try:
        from lpzero_core.workbench.cli import main as run
    except KeyboardInterrupt:
        print("lpzero: interrupted while starting; nothing was done, rerun the same command", file=sys.stderr)
        return 130
    return run()

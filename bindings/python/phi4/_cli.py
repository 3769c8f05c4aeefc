"""The commands a wheel puts on the PATH: `phi4`, `phi4-server` and `phi4-hub` run the tools
bundled in the package (phi4/bin/: the command-line tool — chat, generate, quantize, bench, pull …
—, the OpenAI-compatible server and the Hugging Face Hub downloader), passing every argument
through.

Wheels made by `make wheel` carry the tools; a package built from source with
`pip install ./bindings/python` does not (build them with `make build` and `make server`).
"""
import os
import sys


def _run(name: str) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.path.join(here, "bin", name)
    if not os.path.isfile(tool):
        sys.exit(f"{name}: this install has no {name} (wheels from `make wheel` carry it; "
                 "from a source checkout: make build, make server)")
    if not os.access(tool, os.X_OK):
        try:
            os.chmod(tool, 0o755)
        except OSError:
            pass
    os.execv(tool, [tool] + sys.argv[1:])


def main() -> None:
    """`phi4`."""
    _run("phi4")


def server() -> None:
    """`phi4-server`."""
    _run("phi4-server")


def hub() -> None:
    """`phi4-hub`."""
    _run("phi4-hub")


if __name__ == "__main__":
    main()

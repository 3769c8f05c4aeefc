"""The `phi4` command a wheel puts on the PATH: runs the phi4 command-line tool bundled in the
package (phi4/bin/phi4: chat, generate, quantize, bench, ...), passing every argument through.

Wheels made by `make wheel` carry the tool; a package built from source with
`pip install ./bindings/python` does not (build it with `swift build -c release --product phi4`).
"""
import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.path.join(here, "bin", "phi4")
    if not os.path.isfile(tool):
        sys.exit("phi4: this install has no command-line tool (wheels from `make wheel` carry one; "
                 "from a source checkout: swift build -c release --product phi4)")
    if not os.access(tool, os.X_OK):
        try:
            os.chmod(tool, 0o755)
        except OSError:
            pass
    os.execv(tool, [tool] + sys.argv[1:])


if __name__ == "__main__":
    main()

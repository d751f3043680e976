"""Regenerate wire_pb2.py from wire.proto (needs grpcio-tools, a dev dependency)."""

from __future__ import annotations

import pathlib
import sys


def main() -> int:
    from grpc_tools import protoc

    here = pathlib.Path(__file__).resolve().parent
    root = here.parent.parent
    return protoc.main(
        [
            "protoc",
            f"-I{root}",
            f"--python_out={root}",
            f"--pyi_out={root}",
            str(here.relative_to(root) / "wire.proto"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

"""Command line: `aiecg <command>`."""


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("aiecg: command line not built yet")

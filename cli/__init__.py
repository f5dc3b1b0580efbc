"""Headless commands (train, eval, predict, gradcheck, bench, screenshot) and the app launcher."""


def run(argv) -> int:
    if not argv:
        from visualizer.app import run_app
        return run_app()
    raise SystemExit(f"unknown command {argv[0]!r}")

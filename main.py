"""ConvScope entry point: the app by default, headless commands for scripting.

``convscope`` (installed), ``python -m convscope`` and ``python main.py`` (in a checkout
installed with ``pip install -e .``) all come here; every module is imported as
``convscope.…``, never by its folder's name.
"""
import sys


def main(argv=None) -> int:
    from convscope.cli import run
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

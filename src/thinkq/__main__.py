"""``python -m thinkq``: the same as the ``thinkq`` command."""

from thinkq.cli import main

if __name__ == "__main__":
    main()

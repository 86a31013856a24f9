"""``python -m dk2020flow.cli``: the command line."""

from dk2020flow.cli import main

main()

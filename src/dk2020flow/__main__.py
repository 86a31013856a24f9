"""`python -m dk2020flow …` is the same as the `dk2020flow` command."""

from dk2020flow.cli import main

main()

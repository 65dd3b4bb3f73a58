"""`python -m deskpal`: the same as the `deskpal` command."""

from deskpal.cli import main

main()

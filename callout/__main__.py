"""`python -m callout`: the same CLI as the `callout` console script."""

from callout.cli import main

raise SystemExit(main())

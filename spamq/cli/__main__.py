"""``python -m spamq.cli``: the same as the ``spamq`` command."""

from spamq.cli.main import main

raise SystemExit(main())

"""The ``spamq`` command line: the main parser and the operator subcommands."""

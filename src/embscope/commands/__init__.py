"""CLI command handlers; each imports its heavy dependencies lazily."""

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOT_HEALTHY = 3

"""CLI command handlers; each imports its heavy dependencies lazily."""

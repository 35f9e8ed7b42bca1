"""The command-line commands, one module per group. Each module imports only click, the standard
library and `annotator.cli.common` at module level, and the core inside its functions. The root
group that gathers them (with the TUI's `label`) is `annotator.main`."""

"""The labelling app (Textual): `annotator label NAME`. Calls the store only through
`annotator.store.*` use cases, in workers; never imported by the core or by `annotator.cli`.
This package's __init__ imports nothing, so listing the command stays free of textual."""

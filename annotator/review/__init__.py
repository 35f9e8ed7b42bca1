"""Review in FiftyOne: mirror a store dataset into a persistent FiftyOne dataset (`push`), serve
the FiftyOne App on it (`app`), and bring the decisions made there back into the store as new
revisions (`pull`). FiftyOne is an optional extra: it is imported inside functions only, and a
missing install raises MissingDependencyError. Depends on annotator.store, never on cli or tui."""

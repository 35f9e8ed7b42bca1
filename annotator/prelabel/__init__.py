"""Model-assisted prelabelling: resolving a model (torchvision's registry, a TorchScript file or
a user's factory) and its weights, mapping its categories onto a dataset's classes, running it
over the dataset's images and storing what it proposes, and evaluating a run against the labels
people accepted. Depends on `annotator.store` and the shared annotation type, never on the CLI
or the TUI; torch, torchvision and pycocotools are imported inside the functions that use them."""

"""Dataset formats: COCO, YOLO and ImageFolder readers and writers (one module each, pure
conversion apart from file I/O), the import and export use cases built on the store's bulk
path, and the export manifest. Depends on the store; never on the CLI or the TUI."""

"""The app's widgets: image canvas, class and label lists, status bar."""

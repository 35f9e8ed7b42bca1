"""The app's screens: labelling, overview, help, queue chooser, prompts."""

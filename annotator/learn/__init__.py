"""Learning from the labels people gave: image embeddings from a torchvision backbone (`embed`)
and a classifier trained on them whose proposals are stored as a model run (`train`). torch and
scikit-learn are imported inside functions; nothing here imports the UI."""

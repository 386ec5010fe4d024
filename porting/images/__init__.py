"""Images and datasets, below training and deployment: folders (which files, readable?), labels (which output
each image is), preprocessing (what the model's card says) and pipelines (mindspore.dataset)."""

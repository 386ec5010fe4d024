"""Deployment: opening a ported model in any of its files (runtimes), evaluating and predicting with it,
int8 quantization and benchmarks. Above the images and the converters, below the API."""

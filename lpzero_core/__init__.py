"""LPZero workbench: zero-cost proxies for language-model architectures, searched by genetic programming."""
__version__ = "0.1.0"

"""The pure-PyTorch reference backend: the ground truth every fused backend is tested against,
drawing the same noise (the Philox stream of docs/design.md) with torch ops."""

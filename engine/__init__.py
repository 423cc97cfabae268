"""Video Engine core: frame interpolation in plain torch/numpy/OpenCV (no ComfyUI imports)."""
import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())

"""Model-serving service: FastAPI app over a repository of SavedModels."""

import os

# Keep TensorFlow's C++ start-up chatter (CUDA probing, CPU flags) out of the logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

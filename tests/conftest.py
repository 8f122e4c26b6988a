import os
import sys

# Keep TensorFlow quiet and single-threaded enough for 2-core CI machines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow runs channels_first convolutions on the CPU only through oneDNN, which it
# turns on by itself only on CPUs with AVX-512 VNNI and newer: on here, so that the suite
# runs the same on every CI machine (AVX2 ones included).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
sys.path.insert(0, os.path.dirname(__file__))

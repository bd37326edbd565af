"""rlpad: pad scarce RL datasets with generative models and measure the lift."""
import os

# oneDNN's CPU kernels, before anything imports TensorFlow. TF turns them on by itself only on
# CPUs with AVX-512 (or newer); on an AVX2 AMD EPYC a Breakout train step took 52 ms with TF's
# default kernels and 39 ms with oneDNN's (bench/dqn_throughput.py). Setting it where TF already
# would changes nothing; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# TF's INFO lines (that oneDNN is on, ...) off, here rather than in the CLI so that Spark's
# Python workers, started by a JVM that never saw the driver's environment, stay quiet too.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

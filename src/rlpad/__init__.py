"""rlpad: pad scarce RL datasets with generative models and measure the lift."""
__version__ = "0.1.0"

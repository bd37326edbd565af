"""Offline Q-learning of a fresh head on embedded transitions (stage 4's refit), one module a
family: `sgd` (offline DQN by SGD, the whole loop one tf.function), `exact` (LSPI and fitted Q
iteration by least squares), `iql` (implicit Q-learning by least squares), `seed` (the seed's
own refit, for comparison), all over `data` (the transitions, the result, the head's features).
The head is ReLU -> Dense(actions) above the cut.
"""
from .data import RefitResult, Transitions
from .exact import FqiSettings, LspiSettings, fqi_head, lspi_head
from .iql import IqlSettings, iql_head
from .seed import SeedRefitSettings, seed_head, seed_refit_step
from .sgd import RefitSettings, _refit_loop, refit_head

__all__ = ["FqiSettings", "IqlSettings", "LspiSettings", "RefitResult", "RefitSettings",
           "SeedRefitSettings", "Transitions", "_refit_loop", "fqi_head", "iql_head", "lspi_head",
           "refit_head", "seed_head", "seed_refit_step"]

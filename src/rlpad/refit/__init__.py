"""The refit of a fresh head on embedded transitions (stage 4), one module a family: `sgd`
(offline DQN by SGD, the whole loop one tf.function), `exact` (LSPI and fitted Q iteration by
least squares), `iql` (implicit Q-learning by least squares), `seed` (the seed's own refit, for
comparison), `bc` (behaviour cloning), all over `data` (the transitions, the result, the head's
features).
The head is ReLU -> Dense(actions) above the cut.
"""
from .bc import BcSettings, bc_head
from .data import RefitResult, Transitions
from .exact import FqiSettings, LspiSettings, fqi_head, lspi_head
from .iql import IqlSettings, iql_head
from .seed import SeedRefitSettings, seed_head, seed_refit_step
from .sgd import RefitSettings, _refit_loop, refit_head

__all__ = ["BcSettings", "FqiSettings", "IqlSettings", "LspiSettings", "RefitResult", "RefitSettings",
           "SeedRefitSettings", "Transitions", "_refit_loop", "bc_head", "fqi_head", "iql_head", "lspi_head",
           "refit_head", "seed_head", "seed_refit_step"]

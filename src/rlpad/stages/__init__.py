"""Pipeline stages: plain functions `run(cfg, store, run_id, force) -> metrics`.

Each stage reads only verified upstream manifests and publishes through the store;
the algorithms they call (dqn, gan, refit) know nothing about storage.
"""

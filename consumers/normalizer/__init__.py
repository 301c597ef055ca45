"""The normalizer (``callstream normalize``): platform callbacks from ``calls.callbacks.raw`` into
canonical CallEvents on ``calls.events``, exactly once, inside Kafka transactions.

See ``docs/normalizer.md`` for the mapping table, the guarantees and the settings.
"""

"""The callbacks gateway (``callstream gateway``): the platform's callbacks, stored raw in Kafka.

Modules: :mod:`.settings` (``CALLSTREAM_GATEWAY_*``), :mod:`.auth` (pure checks),
:mod:`.record` (body -> Kafka record), :mod:`.writer` (the acks=all producer),
:mod:`.app` (the aiohttp routes), :mod:`.metrics`, :mod:`.server` (wires them), :mod:`.cli`.
"""

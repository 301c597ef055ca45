"""The dispatcher (``callstream dispatch``): call requests from Kafka to the voice platform.

See ``docs/dispatcher.md``. Modules, by job: :mod:`.settings`, :mod:`.exceptions`,
:mod:`.mapping` (CallRequest -> platform body), :mod:`.platform_client` (the one HTTP session),
:mod:`.outcomes` (HTTP answer -> decision), :mod:`.backoff`, :mod:`.ratelimit`, :mod:`.offsets`
(commit watermark), :mod:`.dedupe` (state rebuilt from calls.dispatches), :mod:`.results`
(DispatchResult / CallEvent / DLQ / retry records), :mod:`.kafka_io` (poll thread, producer),
:mod:`.metrics`, :mod:`.service` (the asyncio core) and :mod:`.cli`.
"""
